//! The semantic cache's part of the cache section: the guide's `semantic-cache` TrafficPolicy
//! becomes a policy on every HTTPRoute it targets, calling the cluster generated for its
//! Service; `enabled: false` and other routes get none.

use std::collections::BTreeMap;
use tollgate_config::output::cache_section::section;
use tollgate_config::plan::{Plan, PlanOptions};
use tollgate_config::render::{plan, InputFile, RenderRequest};
use tollgate_config::secrets::SecretStore;
use tollgate_core::config::cache::{
    SemanticCachePolicy, DEFAULT_SEMANTIC_MAX_ENTRY_BYTES, DEFAULT_SEMANTIC_TIMEOUT_MS,
};
use tollgate_core::config::CacheConfig;

fn input(path: &str) -> InputFile {
    InputFile {
        name: path.to_string(),
        text: std::fs::read_to_string(path).unwrap(),
    }
}

fn inline(name: &str, text: &str) -> InputFile {
    InputFile {
        name: name.to_string(),
        text: text.to_string(),
    }
}

/// Every guide block and the companion, as the stack renders them.
fn guide_and_companion() -> Vec<InputFile> {
    let mut names: Vec<String> = std::fs::read_dir("guide")
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names.push("examples/companion.yaml".into());
    names.iter().map(|n| input(n)).collect()
}

fn planned(inputs: Vec<InputFile>, endpoints: &[(&str, &str)]) -> Plan {
    let request = RenderRequest {
        inputs,
        plan: PlanOptions {
            secrets: SecretStore {
                dir: Some("tests/fixtures/secrets".into()),
                env: Default::default(),
            },
            endpoints: endpoints
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..Default::default()
        },
        ..Default::default()
    };
    let (_, _, plan) = plan(&request).unwrap_or_else(|e| panic!("{e}"));
    plan
}

/// Two LLM routes on one Backend; `policy` is a TrafficPolicy document appended.
fn routes_and(policy: &str) -> Vec<InputFile> {
    let base = r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata: {name: openai, namespace: ai-system}
spec:
  type: AI
  ai:
    priorityGroups:
    - providers:
      - name: openai
        openai:
          authToken: {kind: SecretRef, secretRef: {name: openai-secret}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: chat, namespace: ai-system}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /chat}}]
    backendRefs: [{name: openai}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other, namespace: ai-system}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /other}}]
    backendRefs: [{name: openai}]
---
"#;
    vec![inline("semantic.yaml", &format!("{base}{policy}"))]
}

fn semantic_of<'a>(config: &'a CacheConfig, route: &str) -> Option<&'a SemanticCachePolicy> {
    config.routes.get(route).and_then(|p| p.semantic.as_ref())
}

#[test]
fn the_guide_semantic_cache_calls_its_service_with_the_guide_threshold_and_ttl() {
    let plan = planned(guide_and_companion(), &[]);
    let config = section(&plan).expect("a cache section");
    assert_eq!(
        semantic_of(&config, "llm-routes"),
        Some(&SemanticCachePolicy {
            cluster: "service/semantic-cache-service".into(),
            authority: "semantic-cache-service:8080".into(),
            timeout_ms: DEFAULT_SEMANTIC_TIMEOUT_MS,
            similarity_threshold: 0.95,
            ttl_ms: 24 * 3_600_000,
            max_entry_bytes: DEFAULT_SEMANTIC_MAX_ENTRY_BYTES,
        })
    );
    assert_eq!(semantic_of(&config, "mcp-routes"), None);
    assert_eq!(config.semantic, None, "unlisted routes get none");
    let cluster = &plan.services["semantic-cache-service"];
    assert_eq!(cluster.cluster, "service/semantic-cache-service");
}

#[test]
fn an_endpoint_override_is_the_authority_called() {
    let plan = planned(
        guide_and_companion(),
        &[("semantic-cache-service", "http://127.0.0.1:18006")],
    );
    let config = section(&plan).unwrap();
    assert_eq!(
        semantic_of(&config, "llm-routes").map(|p| p.authority.as_str()),
        Some("127.0.0.1:18006")
    );
}

const POLICY: &str = r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: semantic, namespace: ai-system}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: chat}
  ai:
    semanticCache:
      enabled: ENABLED
      similarityThreshold: 0.9
      backend: {kind: Service, name: embedder, port: 9000}
"#;

#[test]
fn only_the_targeted_route_gets_the_policy_and_ttl_defaults_to_24h() {
    let config = section(&planned(
        routes_and(&POLICY.replace("ENABLED", "true")),
        &[],
    ))
    .unwrap();
    let policy = semantic_of(&config, "chat").unwrap();
    assert_eq!(policy.cluster, "service/embedder");
    assert_eq!(policy.authority, "embedder:9000");
    assert_eq!(policy.similarity_threshold, 0.9);
    assert_eq!(policy.ttl_ms, 24 * 3_600_000);
    assert_eq!(semantic_of(&config, "other"), None);
}

#[test]
fn a_disabled_semantic_cache_configures_nothing() {
    let plan = planned(routes_and(&POLICY.replace("ENABLED", "false")), &[]);
    assert_eq!(section(&plan), None);
}

#[test]
fn the_ttl_is_the_policys() {
    let policy = POLICY.replace("ENABLED", "true") + "      ttl: 90m\n";
    let config = section(&planned(routes_and(&policy), &[])).unwrap();
    assert_eq!(semantic_of(&config, "chat").unwrap().ttl_ms, 90 * 60_000);
}
