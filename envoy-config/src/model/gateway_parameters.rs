//! `GatewayParameters`: the gateway process itself: DNS behaviour and the deployment's size.
//! The guide writes it as two blocks with one name; they are merged section by section.

use crate::duration::{Duration, Quantity};
use serde::Deserialize;

/// `spec` of GatewayParameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayParametersSpec {
    /// Proxy settings.
    #[serde(default)]
    pub raw_config: Option<RawConfig>,
    /// Kubernetes deployment.
    #[serde(default)]
    pub kube: Option<Kube>,
}

/// `rawConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    /// `rawConfig.config`.
    pub config: RawProxyConfig,
}

/// `rawConfig.config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProxyConfig {
    /// DNS resolution of upstream hosts.
    #[serde(default)]
    pub dns: Option<Dns>,
}

/// `rawConfig.config.dns`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dns {
    /// How often hosts are re-resolved.
    #[serde(default)]
    pub refresh_rate: Option<Duration>,
    /// Use the record's TTL instead of `refreshRate`.
    #[serde(default)]
    pub respect_dns_ttl: Option<bool>,
    /// Most host names cached.
    #[serde(default)]
    pub cache_max_size: Option<u32>,
}

/// `kube`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kube {
    /// The proxy Deployment.
    pub deployment: Deployment,
}

/// `kube.deployment`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deployment {
    /// Pod count.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// The proxy container.
    #[serde(default)]
    pub container: Option<Container>,
}

/// `kube.deployment.container`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Container {
    /// Requests and limits.
    #[serde(default)]
    pub resources: Option<Resources>,
}

/// `resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// Guaranteed.
    #[serde(default)]
    pub requests: Option<ResourceList>,
    /// Ceiling.
    #[serde(default)]
    pub limits: Option<ResourceList>,
}

/// `cpu` and `memory` quantities.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceList {
    /// Cores (`"1"`, `500m`).
    #[serde(default)]
    pub cpu: Option<Quantity>,
    /// Bytes (`1Gi`).
    #[serde(default)]
    pub memory: Option<Quantity>,
}
