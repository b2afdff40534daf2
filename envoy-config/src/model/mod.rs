//! The typed input model: one file per kind of the guide. Field names are the guide's; where
//! kgateway's real API spells a field differently, the other spelling is accepted as an alias.
//! Every struct denies unknown fields, so a typo is an error with its path, never ignored.

pub mod backend;
pub mod backend_config_policy;
pub mod endpoint_overrides;
pub mod gateway_parameters;
pub mod http_route;
pub mod prometheus_rule;
pub mod traffic_policy;

use serde::Deserialize;
use std::collections::BTreeMap;

/// A Kubernetes-style object: the envelope shared by every kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Object<Spec> {
    /// API group and version; recorded, not interpreted (kgateway and Gateway API versions differ).
    pub api_version: String,
    /// Kind of the object.
    pub kind: String,
    /// Name and labels.
    pub metadata: Metadata,
    /// The kind-specific part.
    pub spec: Spec,
}

/// `metadata`: names are what references resolve against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Name, unique per kind.
    pub name: String,
    /// Namespace; all objects are taken to be in one namespace (one gateway), so it is not used
    /// to resolve references.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels, copied to generated Kubernetes objects.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, copied to generated Kubernetes objects.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A policy's `targetRefs[]` entry: the object it applies to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetRef {
    /// API group of the target; informative.
    #[serde(default)]
    pub group: Option<String>,
    /// Kind of the target (`Backend`, `HTTPRoute`).
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Gateway API `sectionName`; not supported (a policy applies to the whole target).
    #[serde(default)]
    pub section_name: Option<String>,
}
