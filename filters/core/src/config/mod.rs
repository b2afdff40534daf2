//! The JSON plugin configurations of the filters.
//!
//! These types are the contract between the generator (`envoy-config`, which serializes them
//! into envoy.yaml) and the filters (which parse them in `on_configure`). Both sides use these
//! exact types, so the contract cannot drift.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub mod budget;
pub mod cache;
pub mod metrics;

pub use budget::BudgetConfig;
pub use cache::CacheConfig;
pub use metrics::MetricsConfig;

/// Configuration of the downstream pipeline (`root_id: tollgate`): one section per stage; a
/// stage whose section is absent does not run. Loaded alone (`root_id: cache`, ...), a stage
/// reads the same document and only its section counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamConfig {
    /// Routing: model → backend, request limits, which operations each route serves.
    #[serde(default)]
    pub route: RouterConfig,
    /// Response cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// Token and dollar budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    /// Requests, tokens, cost and latency metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
}

/// Default cap on a request body the router buffers to read the model (Envoy's default buffer limit).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Configuration of the downstream router role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Largest request body the router accepts; larger ones get a 413 in the OpenAI format.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Requested model (or alias) -> backend name. Empty: the route alone picks the backend.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// When true, a model missing from `models` is answered with a 404 `model_not_found`.
    #[serde(default)]
    pub require_known_model: bool,
    /// Request header the router sets to the chosen backend; the generated routes match on it.
    #[serde(default = "default_backend_header")]
    pub backend_header: String,
    /// What each route serves, by HTTPRoute name: the part of Envoy's route name
    /// (`xds.route_name`, generated as `<httproute>/<rule>/<match>`) before the first `/`.
    /// A request whose route is not listed is treated as an LLM route when `routes` is empty
    /// (hand-written configs), and refused otherwise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, RouteScope>,
    /// Backends served without a wasm upstream adapter (every provider speaks the client's
    /// format; Envoy rewrites path, host and credentials natively), by name: the model the
    /// route stage writes into the body when the Backend names one (`None`: the client's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub native_backends: BTreeMap<String, Option<String>>,
    /// Envoy route name → the one Backend its rule sends to, for the routes whose Backend is
    /// native (the route stage needs the Backend before Envoy's router picks it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub route_backends: BTreeMap<String, String>,
}

/// What one route (HTTPRoute) serves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteScope {
    /// LLM API, MCP or plain proxy; derived by the generator from the route's backends.
    pub kind: RouteKind,
    /// Models and aliases the route serves, listed by `GET …/models`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Further OpenAI-format operations (path suffixes such as `/embeddings`) an operator opted
    /// in for this route's backends; forwarded untranslated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

/// The kind of a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// OpenAI-format LLM API: only known operations are served.
    #[default]
    Llm,
    /// MCP (Streamable HTTP): passes through untouched.
    Mcp,
    /// A plain proxy route: passes through untouched.
    Proxy,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            models: BTreeMap::new(),
            require_known_model: false,
            backend_header: default_backend_header(),
            routes: BTreeMap::new(),
            native_backends: BTreeMap::new(),
            route_backends: BTreeMap::new(),
        }
    }
}

fn default_max_request_bytes() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}

fn default_backend_header() -> String {
    crate::names::header::BACKEND.to_string()
}

/// Which wire format a provider speaks. Ollama is `openai` (its OpenAI-compatible `/v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI chat completions (also Ollama and other OpenAI-compatible servers).
    Openai,
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini generateContent.
    Gemini,
}

/// Configuration of the upstream adapter role: one per cluster (= one Backend).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// Name of the Backend this cluster was generated from.
    pub backend: String,
    /// Every provider of the Backend; each is one endpoint of the cluster, and the endpoint's
    /// metadata `filter_metadata.tollgate.provider` holds the provider's `name`.
    pub providers: Vec<ProviderEndpoint>,
}

/// One provider endpoint, as the adapter needs it to rewrite a request for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEndpoint {
    /// The provider's name in the Backend (e.g. `gemini-flash`); unique within the Backend.
    pub name: String,
    /// Wire format it speaks.
    pub kind: ProviderKind,
    /// Model to ask for; `None` keeps the client's model.
    #[serde(default)]
    pub model: Option<String>,
    /// Replace the client's model with `model` (the guide's behaviour) or keep the client's.
    #[serde(default = "default_true")]
    pub override_model: bool,
    /// Value for `:authority` (host, plus `:port` when not the scheme's default).
    pub authority: String,
    /// Path prefix before the provider's API path (e.g. `` for api.openai.com, which serves `/v1/...`).
    #[serde(default)]
    pub path_prefix: String,
    /// API key inline; for hand-written test configs only (it shows in Envoy's config_dump).
    /// `None` with no `api_key_env` sends no credentials (e.g. a local Ollama). Never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Name of the Envoy process environment variable holding the API key, passed to the VM
    /// with `vm_config.environment_variables.host_env_keys` and read through WASI `environ`:
    /// the generator's way, which keeps keys out of config_dump and plugin configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Anthropic's `anthropic-version` header.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Client request headers this provider may receive although they steer a provider
    /// account: by default the adapter removes `authorization`, `x-api-key`, `cookie`,
    /// `proxy-authorization` and every `openai-*`, `anthropic-*` and `x-goog-*` header a client
    /// sends (what comes from clients is data). Lower-case names, matched exactly, e.g.
    /// `["anthropic-beta"]`. The credential headers (`authorization`, `x-api-key`,
    /// `x-goog-api-key`) are always the gateway's (set, or removed), whatever this says: after
    /// a retry they may hold another provider's key. `anthropic-version` may be allowed for an
    /// Anthropic provider without `api_version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_client_headers: Vec<String>,
}

fn default_true() -> bool {
    true
}
