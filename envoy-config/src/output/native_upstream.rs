//! Backends that need no wasm upstream filter.
//!
//! A wasm upstream filter costs a VM crossing per phase on every attempt, even when it only
//! relays. Where every provider of a Backend speaks the client's format (OpenAI-compatible,
//! Ollama's `/v1`) with one credential, one path prefix and at most one model, nothing needs
//! translating: Envoy rewrites the path (`regex_rewrite`), the host (`host_rewrite_literal` or
//! `auto_host_rewrite`) and the credential (`%ENVIRONMENT(VAR)%` in `request_headers_to_add`,
//! so the key stays in the process environment, never in config_dump), drops the client's
//! provider control headers and the operator-revealing response headers, and names the
//! provider in the answer from the endpoint metadata. The downstream route stage writes the
//! Backend's model into the body (`RouterConfig.native_backends`). Measured in
//! docs/envoy-facts.md ("Backends without an adapter").

use crate::plan::{BackendPlan, Plan, RulePlan};
use crate::secrets::provider_key_variable;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use tollgate_core::config::ProviderKind;
use tollgate_core::names::header;
use tollgate_core::operations::CHAT_COMPLETIONS;
use tollgate_core::translate::OPERATOR_RESPONSE_HEADERS;

/// Client request headers removed on the way to a native Backend: credentials, cookies and the
/// providers' control headers (the adapter matches the `openai-`, `anthropic-`, `x-goog-`
/// prefixes; Envoy removes exact names, so these are the ones the providers document).
pub const REMOVED_CLIENT_HEADERS: [&str; 14] = [
    // Who the client is, for the gateway's own stages: not the provider's business.
    header::CLIENT,
    "x-api-key",
    "cookie",
    "proxy-authorization",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "anthropic-version",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "x-goog-api-key",
    "x-goog-user-project",
    "x-goog-api-client",
    "x-goog-request-params",
];

/// How Envoy itself serves one native Backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeBackend {
    /// The provider's path prefix (before `/v1/...`).
    pub path_prefix: String,
    /// `host[:port]` when every endpoint has the same one; else each endpoint's hostname.
    pub authority: Option<String>,
    /// The environment variable holding the one key (`None`: no credential).
    pub key_variable: Option<String>,
    /// The model every provider is asked for (`None`: the client's).
    pub model: Option<String>,
    /// Client headers the providers accept although they are control headers.
    pub allowed_client_headers: Vec<String>,
}

/// Whether `backend` can be served without the adapter, and how.
fn native(backend: &BackendPlan) -> Option<NativeBackend> {
    if !backend.is_ai {
        return None;
    }
    let endpoints: Vec<_> = backend.priorities.iter().flatten().collect();
    let providers: Vec<_> = endpoints
        .iter()
        .filter_map(|e| e.provider.as_ref())
        .collect();
    let first = providers.first()?;
    if providers.len() != endpoints.len()
        || providers.iter().any(|p| p.kind != ProviderKind::Openai)
    {
        return None;
    }
    let model_of =
        |p: &tollgate_core::config::ProviderEndpoint| p.model.clone().filter(|_| p.override_model);
    let keyed = |p: &tollgate_core::config::ProviderEndpoint| {
        p.api_key.is_some() || p.api_key_env.is_some()
    };
    let same = providers.iter().all(|p| {
        p.path_prefix == first.path_prefix
            && model_of(p) == model_of(first)
            && keyed(p) == keyed(first)
            && p.allow_client_headers == first.allow_client_headers
    });
    // One credential for the whole cluster: Envoy injects it before it picks the endpoint.
    if !same || (keyed(first) && providers.len() > 1) {
        return None;
    }
    let authorities: BTreeSet<String> = providers.iter().map(|p| p.authority.clone()).collect();
    Some(NativeBackend {
        path_prefix: first.path_prefix.trim_end_matches('/').to_string(),
        authority: (authorities.len() == 1).then(|| first.authority.clone()),
        key_variable: keyed(first).then(|| provider_key_variable(&backend.name, &first.name)),
        model: model_of(first),
        allowed_client_headers: first.allow_client_headers.clone(),
    })
}

/// Every native Backend of the plan, by name. A Backend that a weighted rule shares with
/// others keeps its adapter: Envoy's path and header rewrites are per route, not per cluster.
pub fn native_backends(plan: &Plan) -> BTreeMap<String, NativeBackend> {
    let mut natives: BTreeMap<String, NativeBackend> = plan
        .backends
        .iter()
        .filter_map(|b| native(b).map(|n| (b.name.clone(), n)))
        .collect();
    for rule in plan.routes.iter().flat_map(|r| &r.rules) {
        if rule.backends.len() > 1 {
            for (name, _) in &rule.backends {
                natives.remove(name);
            }
        }
    }
    natives
}

/// The native Backend a rule sends to, if it is one.
pub fn rule_backend<'a>(
    rule: &RulePlan,
    natives: &'a BTreeMap<String, NativeBackend>,
) -> Option<&'a NativeBackend> {
    match rule.backends.as_slice() {
        [(name, _)] => natives.get(name),
        _ => None,
    }
}

/// Adds to a route entry (`match` + `route`) what the adapter would have done for `native`:
/// the path for the operation asked (chat completions and the route's opted-in operations),
/// the host, the credential, the headers.
pub fn apply(entry: &mut Value, native: &NativeBackend, operations: &[String]) {
    let mut suffixes = vec![regex_escape(CHAT_COMPLETIONS)];
    suffixes.extend(operations.iter().map(|o| regex_escape(o)));
    entry["route"]["regex_rewrite"] = json!({
        "pattern": {"regex": format!("^[^?]*?({})(\\?.*)?$", suffixes.join("|"))},
        "substitution": format!("{}/v1\\1", native.path_prefix),
    });
    match &native.authority {
        Some(authority) => entry["route"]["host_rewrite_literal"] = json!(authority),
        None => entry["route"]["auto_host_rewrite"] = json!(true),
    }
    let mut remove: Vec<&str> = REMOVED_CLIENT_HEADERS
        .iter()
        .copied()
        .filter(|h| !native.allowed_client_headers.iter().any(|a| a == h))
        .collect();
    // The gateway's stages read the answer (usage, cached bodies): Envoy asks for it
    // uncompressed here, so the pipeline need not change a request header (a re-route).
    let mut add = vec![json!({
        "header": {"key": "accept-encoding", "value": "identity"},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    })];
    match &native.key_variable {
        Some(variable) => add.push(json!({
            "header": {"key": "authorization", "value": format!("Bearer %ENVIRONMENT({variable})%")},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        })),
        None => remove.push("authorization"),
    }
    entry["request_headers_to_add"] = json!(add);
    entry["request_headers_to_remove"] = json!(remove);
    entry["response_headers_to_add"] = json!([{
        "header": {"key": header::PROVIDER, "value": "%UPSTREAM_METADATA([\"tollgate\",\"provider\"])%"},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }]);
    entry["response_headers_to_remove"] = json!(OPERATOR_RESPONSE_HEADERS);
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_suffixes_are_escaped_for_re2() {
        assert_eq!(regex_escape("/v1.x/a+b"), "/v1\\.x/a\\+b");
    }
}
