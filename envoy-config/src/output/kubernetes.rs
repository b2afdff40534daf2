//! Kubernetes objects: the GatewayParameters' deployment settings as a strategic-merge patch
//! of the gateway Deployment (Envoy's bootstrap has no place for replicas or resources).

use super::istio::Workload;
use crate::input::SourceDocument;
use serde_json::{json, Value};

/// Container name the patch targets in the gateway Deployment.
pub const PROXY_CONTAINER: &str = "envoy";

/// The patch, when any GatewayParameters sets `kube.deployment`; values are copied as written.
pub fn deployment_patch(documents: &[SourceDocument], workload: &Workload) -> Option<Value> {
    let deployments: Vec<&serde_norway::Value> = documents
        .iter()
        .filter(|d| d.kind == "GatewayParameters")
        .filter_map(|d| d.value.get("spec")?.get("kube")?.get("deployment"))
        .collect();
    if deployments.is_empty() {
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
    spec["template"] = json!({"spec": {"containers": [container]}});
    Some(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": workload.app, "namespace": workload.namespace},
        "spec": spec,
    }))
}
