//! `HTTPRoute` (Gateway API): path matches to Backends, with Gateway API `timeouts` and `retry`.

use crate::duration::Duration;
use serde::Deserialize;

/// `spec` of an HTTPRoute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Gateways it attaches to; there is one gateway, so informative.
    #[serde(default)]
    pub parent_refs: Vec<serde_norway::Value>,
    /// Host names it serves; empty serves every host.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Rules, in order.
    pub rules: Vec<RouteRule>,
}

/// `rules[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteRule {
    /// Any of these matches selects the rule; none matches every request.
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    /// Where matching requests go (weighted).
    pub backend_refs: Vec<BackendRef>,
    /// Request and per-attempt timeouts.
    #[serde(default)]
    pub timeouts: Option<RouteTimeouts>,
    /// Retries (Gateway API `retry`).
    #[serde(default)]
    pub retry: Option<RouteRetry>,
}

/// `matches[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteMatch {
    /// Path match; Gateway API's default is `PathPrefix /`.
    #[serde(default)]
    pub path: Option<PathMatch>,
    /// Header matches, all required. `x-tollgate-model: <model>` routes by the body's model
    /// (the router reads it and names the backend in its routing header).
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
}

/// `matches[].headers[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: String,
    /// Value to match.
    pub value: String,
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub match_type: Option<HeaderMatchType>,
}

/// `matches[].headers[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HeaderMatchType {
    /// Whole value.
    Exact,
    /// RE2 regular expression.
    RegularExpression,
}

/// `matches[].path`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathMatch {
    /// Default `PathPrefix`.
    #[serde(default, rename = "type")]
    pub match_type: Option<PathMatchType>,
    /// The path.
    pub value: String,
}

/// `matches[].path.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PathMatchType {
    /// Segment-wise prefix.
    PathPrefix,
    /// Whole path.
    Exact,
    /// RE2 regular expression.
    RegularExpression,
}

/// `backendRefs[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendRef {
    /// Backend name.
    pub name: String,
    /// API group; informative.
    #[serde(default)]
    pub group: Option<String>,
    /// `Backend` (default).
    #[serde(default)]
    pub kind: Option<String>,
    /// Share of traffic among the rule's refs; default 1.
    #[serde(default)]
    pub weight: Option<u32>,
}

/// `timeouts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteTimeouts {
    /// Whole request, all retries included (Envoy route `timeout`).
    #[serde(default)]
    pub request: Option<Duration>,
    /// One attempt (Envoy `per_try_timeout`).
    #[serde(default)]
    pub backend_request: Option<Duration>,
}

/// `retry`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteRetry {
    /// Statuses retried besides 5xx, connect failures and resets. Absent: 429 when a Backend
    /// of the rule has several providers (a rate-limited provider fails over to another, in
    /// the next priority group if there is one); given: exactly these, so `codes: []` turns
    /// 429 failover off.
    #[serde(default)]
    pub codes: Option<Vec<u16>>,
    /// Retries after the first attempt.
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Base back-off between attempts.
    #[serde(default)]
    pub backoff: Option<Duration>,
}
