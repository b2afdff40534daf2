//! `Backend` (kgateway `gateway.kgateway.dev/v1alpha1`): an AI backend with priority groups of
//! providers, or a static list of hosts (e.g. an MCP server).

use serde::Deserialize;

/// `spec` of a Backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendSpec {
    /// `AI` or `Static`.
    #[serde(rename = "type")]
    pub backend_type: BackendType,
    /// Providers, for `type: AI`.
    #[serde(default)]
    pub ai: Option<AiBackend>,
    /// Hosts, for `type: Static`.
    #[serde(default, rename = "static")]
    pub static_hosts: Option<StaticBackend>,
}

/// What a Backend points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum BackendType {
    /// LLM providers, translated by the adapter.
    #[serde(alias = "ai")]
    AI,
    /// Plain hosts, proxied unchanged.
    #[serde(alias = "static")]
    Static,
}

/// `spec.ai`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AiBackend {
    /// Groups tried in order: group 0 first, the next only when the previous fails.
    pub priority_groups: Vec<PriorityGroup>,
    /// OpenAI-format operations served besides chat completions and the model list, as path
    /// suffixes (`/embeddings`): POSTed requests ending so are forwarded untranslated. Only
    /// for Backends whose providers are all OpenAI-kind; anything else the gateway refuses.
    #[serde(default)]
    pub allowed_operations: Vec<String>,
}

/// `spec.ai.priorityGroups[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PriorityGroup {
    /// Providers of equal priority; load is balanced among them.
    pub providers: Vec<Provider>,
}

/// `spec.ai.priorityGroups[].providers[]`: a name and exactly one provider section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Provider {
    /// Unique within the Backend; the endpoint metadata and metrics name the provider by it.
    pub name: String,
    /// OpenAI (also Ollama and any OpenAI-compatible server, with `host`/`port`).
    #[serde(default)]
    pub openai: Option<ProviderSettings>,
    /// Anthropic Messages API.
    #[serde(default)]
    pub anthropic: Option<ProviderSettings>,
    /// Google Gemini.
    #[serde(default)]
    pub gemini: Option<ProviderSettings>,
}

/// The settings of one provider section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSettings {
    /// Host name; defaults to the provider's public API host.
    #[serde(default)]
    pub host: Option<String>,
    /// Port; defaults to 443 for the public API host, else 80.
    #[serde(default)]
    pub port: Option<u16>,
    /// Path prefix before the API path (e.g. `/openai` behind a corporate proxy).
    #[serde(default)]
    pub path: Option<String>,
    /// Model the provider is asked for, replacing the client's.
    #[serde(default)]
    pub model: Option<String>,
    /// Anthropic's `anthropic-version` header (anthropic only).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Credentials; none for a local server.
    #[serde(default)]
    pub auth_token: Option<AuthToken>,
}

/// `authToken`: where the API key comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthToken {
    /// `SecretRef` (a Kubernetes Secret, read at render time) or `Inline`.
    pub kind: AuthTokenKind,
    /// The Secret, for `kind: SecretRef`.
    #[serde(default)]
    pub secret_ref: Option<SecretRef>,
    /// The key itself, for `kind: Inline` (discouraged: it ends up in a committed file).
    #[serde(default)]
    pub inline: Option<String>,
}

/// Where a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum AuthTokenKind {
    /// A Secret: `<secrets-dir>/<name>/<key>` or the environment.
    SecretRef,
    /// Written in the YAML.
    Inline,
}

/// `secretRef`: a Kubernetes Secret and the key inside it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name: the folder under the secrets directory.
    pub name: String,
    /// Key inside the Secret (the file in that folder); default `Authorization`.
    #[serde(default)]
    pub key: Option<String>,
    /// Namespace; informative (one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `spec.static`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticBackend {
    /// The hosts, balanced equally.
    pub hosts: Vec<StaticHost>,
    /// What the hosts speak: `MCP` (Streamable HTTP) or `HTTP` (default). Either way the
    /// gateway passes requests through untouched; `MCP` marks the route as an MCP route.
    #[serde(default)]
    pub protocol: Option<StaticProtocol>,
}

/// `spec.static.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StaticProtocol {
    /// Model Context Protocol over Streamable HTTP.
    #[serde(alias = "mcp")]
    MCP,
    /// Any HTTP service.
    #[serde(alias = "http")]
    HTTP,
}

/// `spec.static.hosts[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticHost {
    /// DNS name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}
