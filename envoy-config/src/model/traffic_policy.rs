//! `TrafficPolicy`: token budgets, response and semantic caching, MCP tool-result caching
//! (on HTTPRoutes) and load balancing with health checks (on Backends), plus the JWT providers
//! that `jwt.*` descriptor values need.

use super::TargetRef;
use crate::duration::{Duration, Quantity};
use serde::Deserialize;

/// `spec` of a TrafficPolicy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPolicySpec {
    /// What it applies to: HTTPRoutes or Backends.
    pub target_refs: Vec<TargetRef>,
    /// Token (or request) buckets.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Response caching or MCP tool-result caching.
    #[serde(default)]
    pub caching: Option<Caching>,
    /// AI features: semantic cache.
    #[serde(default)]
    pub ai: Option<AiPolicy>,
    /// Load balancing and health checks (Backend targets).
    #[serde(default)]
    pub load_balancer: Option<LoadBalancer>,
    /// JWT authentication of the targeted HTTPRoutes (and the claims `jwt.*` values read).
    #[serde(default)]
    pub jwt: Option<Jwt>,
    /// Static client API keys for the targeted HTTPRoutes (Envoy's `api_key_auth`).
    #[serde(default)]
    pub api_key_auth: Option<ApiKeyAuth>,
}

/// `spec.rateLimit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimit {
    /// Buckets enforced in the gateway (the budget stage): the guide's list, or kgateway's
    /// `local: {tokenBucket: {maxTokens, tokensPerFill, fillInterval}}` (one request bucket
    /// shared by the route's callers). May be empty in a policy that only sets `global`.
    #[serde(default, deserialize_with = "local_buckets")]
    pub local: Vec<TokenBucket>,
    /// Keep the budgets in the budget service (Redis behind it), so every replica shares one
    /// budget; absent: each Envoy keeps them in its shared data. There is one budget service:
    /// naming it in one TrafficPolicy (even one without `local` buckets) moves every budget there.
    #[serde(default)]
    pub global: Option<GlobalRateLimit>,
}

/// `spec.rateLimit.global`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalRateLimit {
    /// The budget service (`services/budget`).
    pub backend: ServiceRef,
    /// When the service fails or times out: `true` serves the request unmetered (counted),
    /// `false` (default) answers 503.
    #[serde(default)]
    pub fail_open: bool,
    /// Call timeout (default 200ms).
    #[serde(default)]
    pub timeout: Option<Duration>,
}

/// kgateway's `rateLimit.local`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KgatewayLocal {
    token_bucket: KgatewayTokenBucket,
}

/// kgateway's `rateLimit.local.tokenBucket` (Envoy's TokenBucket: `tokensPerFill` defaults to 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KgatewayTokenBucket {
    max_tokens: u64,
    #[serde(default = "one")]
    tokens_per_fill: u64,
    fill_interval: Duration,
}

fn one() -> u64 {
    1
}

/// Reads `rateLimit.local` in either spelling. A visitor rather than an intermediate value, so
/// the caller's path tracking reaches inside (`spec.rateLimit.local[0].fillInterval`).
fn local_buckets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TokenBucket>, D::Error> {
    struct Local;
    impl<'de> serde::de::Visitor<'de> for Local {
        type Value = Vec<TokenBucket>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of buckets, or kgateway's {tokenBucket: {...}}")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::<TokenBucket>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let k = KgatewayLocal::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
            Ok(vec![TokenBucket {
                max_tokens: k.token_bucket.max_tokens,
                tokens_per_fill: k.token_bucket.tokens_per_fill,
                fill_interval: k.token_bucket.fill_interval,
                unit: BucketUnit::Requests,
                descriptors: Vec::new(),
            }])
        }
    }
    d.deserialize_any(Local)
}

/// `spec.rateLimit.local[]`: one bucket per descriptor value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenBucket {
    /// Capacity.
    pub max_tokens: u64,
    /// Tokens added each `fillInterval`.
    pub tokens_per_fill: u64,
    /// Refill period.
    pub fill_interval: Duration,
    /// What is counted: LLM `tokens` or `requests`.
    #[serde(rename = "type")]
    pub unit: BucketUnit,
    /// Who a bucket belongs to.
    #[serde(default)]
    pub descriptors: Vec<Descriptor>,
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketUnit {
    /// Prompt + completion tokens, reconciled with the real usage after the response.
    #[serde(alias = "TOKENS", alias = "Tokens")]
    Tokens,
    /// Requests.
    #[serde(alias = "REQUESTS", alias = "Requests")]
    Requests,
    /// Cost: `maxTokens` and `tokensPerFill` are millionths of a US dollar (`5000000` = $5),
    /// priced by the pricing table (cached input at its own price).
    #[serde(alias = "COST", alias = "Cost")]
    Cost,
}

/// `descriptors[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Descriptor {
    /// Key/value pairs identifying the caller.
    pub entries: Vec<DescriptorEntry>,
}

/// `descriptors[].entries[]`: `value` is an expression such as `jwt.sub` or `header.x-user`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DescriptorEntry {
    /// Name of the dimension.
    pub key: String,
    /// Where its value comes from.
    pub value: String,
}

/// `spec.caching`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Caching {
    /// Off switch.
    pub enabled: bool,
    /// `safe` (only deterministic requests) or `aggressive`.
    #[serde(default)]
    pub mode: Option<CacheMode>,
    /// Entry lifetime.
    #[serde(default)]
    pub ttl: Option<Duration>,
    /// Cache capacity.
    #[serde(default)]
    pub max_size: Option<Quantity>,
    /// What makes two requests the same.
    #[serde(default)]
    pub key_generator: Option<KeyGenerator>,
    /// MCP tool-result rules, first match wins.
    #[serde(default)]
    pub rules: Vec<CacheRule>,
}

/// `caching.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Cache only requests whose answer is deterministic (temperature 0 or unset seed rules).
    Safe,
    /// Cache every identical request.
    Aggressive,
}

/// `caching.keyGenerator`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyGenerator {
    /// Request headers in the key.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Body fields in the key.
    #[serde(default)]
    pub body: Option<BodyKey>,
}

/// `keyGenerator.body`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BodyKey {
    /// JSON paths (`$.model`).
    pub json_paths: Vec<String>,
}

/// `caching.rules[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheRule {
    /// Which requests.
    #[serde(rename = "match")]
    pub matcher: CacheRuleMatch,
    /// Lifetime of matching entries.
    #[serde(default)]
    pub ttl: Option<Duration>,
    /// `false`: never cache matching requests.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `caching.rules[].match`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheRuleMatch {
    /// JSON path into the request body.
    pub json_path: String,
    /// Values that match.
    pub values: Vec<String>,
}

/// `spec.ai`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AiPolicy {
    /// Similarity cache backed by an external service.
    #[serde(default)]
    pub semantic_cache: Option<SemanticCache>,
}

/// `spec.ai.semanticCache`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SemanticCache {
    /// Off switch.
    pub enabled: bool,
    /// Cosine similarity a hit needs, in [0, 1].
    pub similarity_threshold: f64,
    /// The embedding/lookup service.
    pub backend: ServiceRef,
    /// Entry lifetime.
    #[serde(default)]
    pub ttl: Option<Duration>,
}

/// A Kubernetes Service by name and port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceRef {
    /// Only `Service`.
    pub kind: String,
    /// Service name (its DNS name in the namespace).
    pub name: String,
    /// Service port.
    pub port: u16,
}

/// `spec.loadBalancer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancer {
    /// Envoy's LB policy.
    #[serde(rename = "type")]
    pub policy: LbPolicy,
    /// Active health checking.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

/// Load-balancing policies Envoy has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(clippy::upper_case_acronyms)]
pub enum LbPolicy {
    /// Fewest active requests (power of two choices).
    LeastRequest,
    /// In turn.
    RoundRobin,
    /// At random.
    Random,
}

/// `loadBalancer.healthCheck`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    /// Between checks.
    pub interval: Duration,
    /// A check slower than this fails.
    pub timeout: Duration,
    /// Successes to become healthy.
    pub healthy_threshold: u32,
    /// Failures to become unhealthy.
    pub unhealthy_threshold: u32,
    /// HTTP path to GET; without it (and without `http.path`) the check is a TCP connect.
    #[serde(default)]
    pub path: Option<String>,
    /// kgateway's spelling: `http: {path, host}`.
    #[serde(default)]
    pub http: Option<HttpHealthCheck>,
}

/// `healthCheck.http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpHealthCheck {
    /// Path to GET.
    pub path: String,
    /// `Host` header; defaults to the cluster name.
    #[serde(default)]
    pub host: Option<String>,
}

/// `spec.jwt`: who issues the tokens the targeted HTTPRoutes require (and budgets key on).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Jwt {
    /// Accepted issuers.
    pub providers: Vec<JwtProvider>,
    /// `true`: a request without a valid token passes, anonymous (OpenAI SDKs always send
    /// `Authorization: Bearer <key>`, which is no JWT). Default `false`: no valid token, 401.
    #[serde(default)]
    pub optional: bool,
}

/// `spec.apiKeyAuth`: clients known by a static API key each, read from Secrets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyAuth {
    /// The clients; the name is forwarded in `x-tollgate-client` for budgets to key on.
    pub clients: Vec<ApiKeyClient>,
    /// Request header carrying the key; default `Authorization` (as `Bearer <key>`, what the
    /// OpenAI SDKs send).
    #[serde(default)]
    pub header: Option<String>,
}

/// `spec.apiKeyAuth.clients[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiKeyClient {
    /// Client name: letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// The Secret holding this client's key.
    pub secret_ref: crate::model::backend::SecretRef,
}

/// `spec.jwt.providers[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtProvider {
    /// Name of the provider.
    pub name: String,
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values; empty accepts any.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Signing keys.
    pub jwks: Jwks,
}

/// `jwks`: inline keys (the only source supported so far).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Jwks {
    /// A JWKS document, inline.
    pub local: LocalJwks,
}

/// `jwks.local`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalJwks {
    /// The JWKS JSON.
    pub inline: String,
}
