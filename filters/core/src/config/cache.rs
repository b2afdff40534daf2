//! The cache stage's section of [`super::DownstreamConfig`]: the response cache (exact keys
//! over the request) and the MCP tool-result cache, per route. The semantic cache adds its
//! policy next to these.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Configuration of the cache stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Response cache of every LLM route that `routes` does not list (hand-written configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseCachePolicy>,
    /// Policies by HTTPRoute name: the part of Envoy's route name (`xds.route_name`) before
    /// the first `/`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, RouteCachePolicies>,
    /// Semantic cache of every LLM route that `routes` does not list (hand-written configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticCachePolicy>,
}

/// The caching policies of one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCachePolicies {
    /// Response cache (LLM routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseCachePolicy>,
    /// MCP tool-result cache (MCP routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolCachePolicy>,
    /// Semantic cache (LLM routes): an external service finds similar earlier prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticCachePolicy>,
}

/// What a cache may store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Only answers that should repeat (see `filters/cache/README.md`).
    #[default]
    Safe,
    /// Any complete 200.
    Aggressive,
}

/// Default entry lifetime: the guide's `1h`.
pub const DEFAULT_TTL_MS: u64 = 3_600_000;
/// Default bound on stored bytes (the guide's `100Mi`).
pub const DEFAULT_MAX_SIZE_BYTES: u64 = 100 * 1024 * 1024;

/// Shared-data storage of one cache: its bound, its key space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreLimits {
    /// Hard bound on the bytes of every stored entry together.
    #[serde(default = "default_max_size")]
    pub max_size_bytes: u64,
    /// Largest single entry; larger answers are not stored. Default: 1/8 of `max_size_bytes`,
    /// at most 4 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entry_bytes: Option<u64>,
    /// Number of shared-data slots (the bounded key space). Default: one per 16 KiB of
    /// `max_size_bytes`, between 64 and 16384.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_size_bytes: DEFAULT_MAX_SIZE_BYTES,
            max_entry_bytes: None,
            slots: None,
        }
    }
}

impl StoreLimits {
    /// The largest entry stored.
    pub fn entry_limit(&self) -> u64 {
        self.max_entry_bytes
            .unwrap_or_else(|| (self.max_size_bytes / 8).min(4 * 1024 * 1024))
            .min(self.max_size_bytes)
    }

    /// The number of slots.
    pub fn slot_count(&self) -> u32 {
        self.slots.unwrap_or_else(|| {
            u32::try_from((self.max_size_bytes / (16 * 1024)).clamp(64, 16384)).unwrap_or(16384)
        })
    }
}

fn default_max_size() -> u64 {
    DEFAULT_MAX_SIZE_BYTES
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_MS
}

/// What makes two requests the same, besides route, backend, protocol, stream and caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Request headers in the key (matched case-insensitively; values exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// JSON paths into the request body (`$.model`, `$.messages`, `$.a.b[0]`). Empty: the
    /// whole body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_paths: Vec<String>,
}

/// The response cache of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseCachePolicy {
    /// What may be stored.
    #[serde(default)]
    pub mode: CacheMode,
    /// Entry lifetime in milliseconds.
    #[serde(default = "default_ttl")]
    pub ttl_ms: u64,
    /// What the key is made of.
    #[serde(default)]
    pub key: KeyConfig,
    /// Storage bound and key space.
    #[serde(default)]
    pub store: StoreLimits,
}

impl Default for ResponseCachePolicy {
    fn default() -> Self {
        Self {
            mode: CacheMode::Safe,
            ttl_ms: DEFAULT_TTL_MS,
            key: KeyConfig::default(),
            store: StoreLimits::default(),
        }
    }
}

/// The MCP tool-result cache of a route: `tools/call` answers, by rules on the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCachePolicy {
    /// Rules, first match wins; a call no rule matches is not cached.
    pub rules: Vec<ToolCacheRule>,
    /// Request headers in the key besides the caller's credentials (`authorization` is
    /// always in the key of a tool call).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Storage bound and key space.
    #[serde(default)]
    pub store: StoreLimits,
}

/// One tool-cache rule: `json_path` (default `$.params.name`) in `values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCacheRule {
    /// JSON path into the JSON-RPC request.
    #[serde(default = "default_tool_path")]
    pub json_path: String,
    /// String values that match.
    pub values: Vec<String>,
    /// Lifetime of matching results, ms; `None` with `enabled`: the default 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// `false`: matching calls are never cached.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// Default lifetime of a tool result.
pub const DEFAULT_TOOL_TTL_MS: u64 = 300_000;

fn default_tool_path() -> String {
    "$.params.name".to_string()
}

fn default_true() -> bool {
    true
}

impl CacheConfig {
    /// The policies of a route (`route_name` is Envoy's `xds.route_name`, `None` when the host
    /// gave none): its entry in `routes`, else the default response cache.
    pub fn policies_for(
        &self,
        route_name: Option<&str>,
    ) -> (Option<&ResponseCachePolicy>, Option<&ToolCachePolicy>) {
        let listed = route_name
            .map(|r| r.split('/').next().unwrap_or(r))
            .and_then(|r| self.routes.get(r));
        match listed {
            Some(p) => (p.response.as_ref(), p.tools.as_ref()),
            None => (self.response.as_ref(), None),
        }
    }
}

/// Default time the request waits for the semantic-cache service before it goes on without it.
pub const DEFAULT_SEMANTIC_TIMEOUT_MS: u64 = 250;
/// Default lifetime of a semantic entry: the guide's `24h`.
pub const DEFAULT_SEMANTIC_TTL_MS: u64 = 24 * 3_600_000;
/// Default largest answer sent to the service to store.
pub const DEFAULT_SEMANTIC_MAX_ENTRY_BYTES: u64 = 1024 * 1024;

/// The semantic cache of a route: the service of `services/semantic-cache/PROTOCOL.md`, called
/// with `dispatch_http_call`; when it is slow or down the request goes on (fail open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticCachePolicy {
    /// Envoy cluster of the service (`service/<name>`).
    pub cluster: String,
    /// `:authority` of the calls (`<name>:<port>`).
    pub authority: String,
    /// How long a lookup may hold the request, ms; the store is not waited for.
    #[serde(default = "default_semantic_timeout")]
    pub timeout_ms: u64,
    /// Cosine similarity a hit needs, from 0 to 1.
    pub similarity_threshold: f64,
    /// Entry lifetime, ms.
    #[serde(default = "default_semantic_ttl")]
    pub ttl_ms: u64,
    /// Larger answers are not stored.
    #[serde(default = "default_semantic_max_entry")]
    pub max_entry_bytes: u64,
}

fn default_semantic_timeout() -> u64 {
    DEFAULT_SEMANTIC_TIMEOUT_MS
}

fn default_semantic_ttl() -> u64 {
    DEFAULT_SEMANTIC_TTL_MS
}

fn default_semantic_max_entry() -> u64 {
    DEFAULT_SEMANTIC_MAX_ENTRY_BYTES
}

impl CacheConfig {
    /// The semantic cache of a route (`route_name` as in [`CacheConfig::policies_for`]): its
    /// entry in `routes`, else `semantic` when the route is not listed.
    pub fn semantic_for(&self, route_name: Option<&str>) -> Option<&SemanticCachePolicy> {
        let listed = route_name
            .map(|r| r.split('/').next().unwrap_or(r))
            .and_then(|r| self.routes.get(r));
        match listed {
            Some(p) => p.semantic.as_ref(),
            None => self.semantic.as_ref(),
        }
    }
}
