//! Kubernetes objects: the GatewayParameters' deployment settings as a strategic-merge patch
//! of the gateway Deployment (Envoy's bootstrap has no place for replicas or resources), with
//! the provider keys as environment variables read from their Secrets (`secretKeyRef`), the
//! Kubernetes form of `secrets.env`: no key is written anywhere.

use super::istio::Workload;
use crate::input::SourceDocument;
use crate::secrets::{provider_key_variable, DEFAULT_SECRET_KEY};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Container name the patch targets in the gateway Deployment.
pub const PROXY_CONTAINER: &str = "envoy";

/// `env` entries of the proxy container: `TOLLGATE_KEY_<BACKEND>_<PROVIDER>` from the Secret
/// and key each AI provider's `authToken.secretRef` names (default key `Authorization`), in
/// name order. Inline tokens have no Secret to point at; they reach Envoy through
/// `secrets.env` only.
pub fn provider_key_env(documents: &[SourceDocument]) -> Vec<Value> {
    let mut env = BTreeMap::new();
    for backend in documents.iter().filter(|d| d.kind == "Backend") {
        let groups = backend
            .value
            .get("spec")
            .and_then(|s| s.get("ai"))
            .and_then(|a| a.get("priorityGroups"))
            .and_then(|g| g.as_sequence());
        for provider in groups
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("providers")?.as_sequence())
            .flatten()
        {
            let Some(name) = provider.get("name").and_then(|n| n.as_str()) else {
                continue;
            };
            let secret = ["openai", "anthropic", "gemini"]
                .iter()
                .find_map(|kind| provider.get(*kind)?.get("authToken")?.get("secretRef"));
            let Some(secret_name) = secret.and_then(|s| s.get("name")).and_then(|n| n.as_str())
            else {
                continue;
            };
            let key = secret
                .and_then(|s| s.get("key"))
                .and_then(|k| k.as_str())
                .unwrap_or(DEFAULT_SECRET_KEY);
            let variable = provider_key_variable(&backend.name, name);
            env.insert(
                variable.clone(),
                json!({"name": variable, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}),
            );
        }
    }
    env.into_values().collect()
}

/// The patch, when any GatewayParameters sets `kube.deployment` or a provider key comes from a
/// Secret; values are copied as written.
pub fn deployment_patch(documents: &[SourceDocument], workload: &Workload) -> Option<Value> {
    let deployments: Vec<&serde_norway::Value> = documents
        .iter()
        .filter(|d| d.kind == "GatewayParameters")
        .filter_map(|d| d.value.get("spec")?.get("kube")?.get("deployment"))
        .collect();
    let env = provider_key_env(documents);
    if deployments.is_empty() && env.is_empty() {
        return None;
    }
    let as_json = |v: &serde_norway::Value| serde_json::to_value(v).unwrap_or(Value::Null);
    let mut container = json!({"name": PROXY_CONTAINER});
    let mut spec = json!({});
    for deployment in deployments {
        if let Some(replicas) = deployment.get("replicas") {
            spec["replicas"] = as_json(replicas);
        }
        if let Some(resources) = deployment.get("container").and_then(|c| c.get("resources")) {
            container["resources"] = as_json(resources);
        }
    }
    if !env.is_empty() {
        container["env"] = json!(env);
    }
    spec["template"] = json!({"spec": {"containers": [container]}});
    Some(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": workload.app, "namespace": workload.namespace},
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::read_documents;

    #[test]
    fn provider_keys_come_from_their_secrets_and_inline_tokens_are_left_to_secrets_env() {
        let yaml = r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata: {name: my-llm}
spec:
  type: AI
  ai:
    priorityGroups:
    - providers:
      - name: gpt
        openai: {authToken: {kind: SecretRef, secretRef: {name: openai-secret, key: api-key}}}
      - name: claude
        anthropic: {authToken: {kind: Inline, inline: sk-inline}}
"#;
        let documents = read_documents("t.yaml", yaml).unwrap();
        assert_eq!(
            provider_key_env(&documents),
            [
                json!({"name": "TOLLGATE_KEY_MY_LLM_GPT", "valueFrom": {"secretKeyRef": {"name": "openai-secret", "key": "api-key"}}})
            ]
        );
    }
}
