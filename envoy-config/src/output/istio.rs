//! Istio `WasmPlugin` manifests for the downstream filters.
//!
//! Order: jwt claims must exist before the budget filter reads them, and Istio runs its own
//! authentication (RequestAuthentication = jwt_authn) between the AUTHN and AUTHZ phases. So
//! router, cache and budget go in `AUTHZ` (after authentication), ordered by priority (higher
//! runs first: router 30, cache 20, budget 10) to keep DESIGN.md §1's order: the router picks
//! the backend, a cache hit answers before the budget is charged. Metrics goes in `STATS`, after
//! them, so it sees cache hits and budget refusals too.
//!
//! Not expressible in a WasmPlugin (documented in FIELDS.md): `allow_on_headers_stop_iteration`
//! (the filters need it; Istio's generated filter must be patched with an EnvoyFilter until Istio
//! exposes it), a shared `vm_id`, and the upstream adapter (upstream HTTP filters are not a
//! WasmPlugin target).

use super::envoy::downstream_filters;
use super::OutputOptions;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// (phase, priority) of each downstream filter, by root_id.
pub const PLACEMENT: [(&str, &str, i32); 5] = [
    (tollgate_core::names::root_id::PIPELINE, "AUTHZ", 30),
    (tollgate_core::names::root_id::ROUTER, "AUTHZ", 30),
    (tollgate_core::names::root_id::CACHE, "AUTHZ", 20),
    (tollgate_core::names::root_id::BUDGET, "AUTHZ", 10),
    (tollgate_core::names::root_id::METRICS, "STATS", 0),
];

/// Where the plugins apply: the proxy Deployment's pods.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Namespace of the WasmPlugins.
    pub namespace: String,
    /// `app` label of the gateway pods.
    pub app: String,
}

/// The workload from the HorizontalPodAutoscaler's target, else `tollgate` in `default`.
pub fn workload(autoscalers: &[serde_norway::Value]) -> Workload {
    let first = autoscalers.first();
    let text = |v: Option<&serde_norway::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    Workload {
        namespace: text(
            first
                .and_then(|h| h.get("metadata"))
                .and_then(|m| m.get("namespace")),
        )
        .unwrap_or_else(|| "default".into()),
        app: text(
            first
                .and_then(|h| h.get("spec"))
                .and_then(|s| s.get("scaleTargetRef"))
                .and_then(|t| t.get("name")),
        )
        .unwrap_or_else(|| "tollgate".into()),
    }
}

/// One manifest per downstream filter of the output form (combined or separate), by file name.
pub fn wasm_plugins(
    configs: &BTreeMap<&'static str, String>,
    workload: &Workload,
    options: &OutputOptions,
) -> BTreeMap<String, Value> {
    let mut manifests = BTreeMap::new();
    for (filter, config) in downstream_filters(configs, options) {
        let Some((_, phase, priority)) = PLACEMENT
            .iter()
            .find(|(root, _, _)| *root == filter.root_id)
        else {
            continue;
        };
        let config: Value = serde_json::from_str(config).unwrap_or_else(|_| json!({}));
        manifests.insert(
            format!("wasmplugin-{}.yaml", filter.name),
            json!({
                "apiVersion": "extensions.istio.io/v1alpha1",
                "kind": "WasmPlugin",
                "metadata": {"name": filter.name, "namespace": workload.namespace},
                "spec": {
                    "selector": {"matchLabels": {"app": workload.app}},
                    "url": format!("{}{}", options.istio_wasm_url, filter.module),
                    // Istio uses pluginName as the root_id.
                    "pluginName": filter.root_id,
                    "phase": phase,
                    "priority": priority,
                    "type": "HTTP",
                    "failStrategy": "FAIL_CLOSE",
                    "pluginConfig": config,
                },
            }),
        );
    }
    manifests
}
