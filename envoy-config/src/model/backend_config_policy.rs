//! `BackendConfigPolicy`: how Envoy talks to a Backend's hosts: connection pool and circuit
//! breakers, HTTP/2, TCP keepalive, outlier detection. The guide's (Istio-like) spellings and
//! kgateway's (`circuitBreakers`, `commonHttpProtocolOptions`, `connectTimeout`,
//! `keepAliveTime`, `consecutive5xx`) are both accepted.

use super::TargetRef;
use crate::duration::Duration;
use serde::Deserialize;

/// `spec` of a BackendConfigPolicy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendConfigPolicySpec {
    /// The Backends it configures.
    pub target_refs: Vec<TargetRef>,
    /// The guide's connection pool.
    #[serde(default)]
    pub connection_pool: Option<ConnectionPool>,
    /// kgateway's circuit breakers (same Envoy fields as `connectionPool`'s limits).
    #[serde(default)]
    pub circuit_breakers: Option<CircuitBreakers>,
    /// kgateway's common HTTP options.
    #[serde(default)]
    pub common_http_protocol_options: Option<CommonHttpProtocolOptions>,
    /// kgateway's connect timeout (the guide's `connectionPool.tcp.connectTimeout`).
    #[serde(default)]
    pub connect_timeout: Option<Duration>,
    /// HTTP/2 to the upstream, with these settings.
    #[serde(default)]
    pub http2_protocol_options: Option<Http2ProtocolOptions>,
    /// TCP keepalive probes on upstream connections.
    #[serde(default)]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Passive health checking: eject hosts that keep failing.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
}

/// `connectionPool`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectionPool {
    /// TCP level.
    #[serde(default)]
    pub tcp: Option<TcpPool>,
    /// HTTP level.
    #[serde(default)]
    pub http: Option<HttpPool>,
}

/// `connectionPool.tcp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpPool {
    /// Most connections to the cluster.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Connect timeout.
    #[serde(default)]
    pub connect_timeout: Option<Duration>,
}

/// `connectionPool.http`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpPool {
    /// `UPGRADE` speaks HTTP/2 to the upstream.
    #[serde(default)]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// Most requests waiting for a connection.
    #[serde(default)]
    pub http1_max_pending_requests: Option<u32>,
    /// Most requests in flight.
    #[serde(default)]
    pub http2_max_requests: Option<u32>,
    /// Requests per connection before it is closed.
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    /// Most retries in flight.
    #[serde(default)]
    pub max_retries: Option<u32>,
}

/// `h2UpgradePolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// HTTP/1.1 (Istio's DEFAULT).
    Default,
    /// HTTP/1.1.
    DoNotUpgrade,
    /// HTTP/2.
    Upgrade,
}

/// kgateway `circuitBreakers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CircuitBreakers {
    /// Most connections.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Most pending requests.
    #[serde(default)]
    pub max_pending_requests: Option<u32>,
    /// Most requests in flight.
    #[serde(default)]
    pub max_requests: Option<u32>,
    /// Most retries in flight.
    #[serde(default)]
    pub max_retries: Option<u32>,
}

/// kgateway `commonHttpProtocolOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommonHttpProtocolOptions {
    /// Requests per connection.
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    /// Idle connections are closed after this.
    #[serde(default)]
    pub idle_timeout: Option<Duration>,
}

/// `http2ProtocolOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Http2ProtocolOptions {
    /// Streams per connection.
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    /// Per-stream flow-control window, bytes.
    #[serde(default)]
    pub initial_stream_window_size: Option<u32>,
    /// Per-connection flow-control window, bytes.
    #[serde(default)]
    pub initial_connection_window_size: Option<u32>,
}

/// `tcpKeepalive`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    #[serde(default, alias = "keepAliveTime")]
    pub keepalive_time: Option<Duration>,
    /// Between probes.
    #[serde(default, alias = "keepAliveInterval")]
    pub keepalive_interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped.
    #[serde(default, alias = "keepAliveProbes")]
    pub keepalive_probes: Option<u32>,
}

/// `outlierDetection`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection.
    #[serde(default, alias = "consecutive5xx")]
    pub consecutive5xx_errors: Option<u32>,
    /// Sweep interval.
    #[serde(default)]
    pub interval: Option<Duration>,
    /// First ejection length (multiplied by the number of ejections).
    #[serde(default)]
    pub base_ejection_time: Option<Duration>,
    /// Most hosts ejected at once, percent.
    #[serde(default)]
    pub max_ejection_percent: Option<u32>,
    /// Count connect failures and timeouts apart from upstream 5xx.
    #[serde(default)]
    pub split_external_local_origin_errors: Option<bool>,
}
