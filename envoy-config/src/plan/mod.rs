//! The resolved gateway: every reference followed, every policy merged onto its target,
//! secrets read and endpoints placed. The outputs (Envoy, Istio, Prometheus) are pure functions
//! of this plan.

use crate::catalog::{Catalog, Located};
use crate::duration::Duration;
use crate::endpoint::{self, Address};
use crate::error::{ConfigError, ConfigErrors, Location};
use crate::model::backend::{AuthTokenKind, BackendType, ProviderSettings};
use crate::model::backend_config_policy::{
    H2UpgradePolicy, Http2ProtocolOptions, OutlierDetection, TcpKeepalive,
};
use crate::model::http_route::{HeaderMatchType, PathMatchType};
use crate::model::prometheus_rule::PrometheusRuleSpec;
use crate::model::traffic_policy::{
    Caching, HealthCheck, JwtProvider, LbPolicy, SemanticCache, TokenBucket,
};
use crate::model::TargetRef;
use crate::secrets::{SecretStore, SecretValue};
use std::collections::{BTreeMap, BTreeSet};
use tollgate_core::config::{ProviderEndpoint, ProviderKind, RouteKind, RouteScope};

mod backends;
mod durations;
mod gateway;
mod policies;
mod references;
mod routes;

use backends::{backend_plan, endpoint_overrides};
use durations::check_positive_durations;
use gateway::apply_gateway_parameters;
pub use gateway::dns_host_names;
use policies::{apply_backend_config_policies, apply_traffic_policies};
use references::check_references;
pub use routes::BACKEND_HEADER_PLACEHOLDER;
use routes::{check_allowed_operations, model_routes, route_plan};

/// Route timeout when a rule sets none: the guide's timeout table recommends 300 s for streaming
/// chat, its longest row; any chat request may stream, and Envoy picks the route before it knows.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::seconds(300);

/// The pseudo-header an HTTPRoute matches to route by the requested model. Clients do not send
/// it: the router reads the model from the body and sets its backend header, which the
/// generated route matches instead.
pub const MODEL_HEADER: &str = "x-tollgate-model";

/// Connect timeout when no policy sets one (Envoy's own default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::seconds(5);

/// What the caller controls beyond the YAML.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Where `SecretRef`s are read.
    pub secrets: SecretStore,
    /// `NAME=URL` overrides from the command line (win over `EndpointOverrides` documents).
    pub endpoints: BTreeMap<String, String>,
    /// Health-check path for Backends whose healthCheck names none (command line).
    pub health_check_path: Option<String>,
}

/// The resolved gateway.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One cluster each, by name.
    pub backends: Vec<BackendPlan>,
    /// Routes, in input order.
    pub routes: Vec<RoutePlan>,
    /// Services the filters call (semantic cache), by name.
    pub services: BTreeMap<String, ServicePlan>,
    /// The budget service token budgets keep their state in (`spec.rateLimit.global`).
    pub budget_service: Option<BudgetServicePlan>,
    /// DNS settings for every DNS cluster.
    pub dns: DnsPlan,
    /// JWT providers; `Some` when a policy authenticates a route with JWTs or keys on `jwt.*`.
    pub jwt: Option<Vec<JwtProvider>>,
    /// jwt_authn `requirement_map`: one requirement per JWT TrafficPolicy, by policy name;
    /// the routes a policy targets name it (RoutePolicies.jwt).
    pub jwt_requirements: BTreeMap<String, JwtRequirement>,
    /// Policies on each HTTPRoute (for the cache and budget filter configurations).
    pub route_policies: BTreeMap<String, RoutePolicies>,
    /// Memory limit of the proxy container, bytes (drives the overload manager).
    pub memory_limit_bytes: Option<u128>,
    /// Recording and alerting rules.
    pub prometheus_rules: Vec<Located<PrometheusRuleSpec>>,
    /// HorizontalPodAutoscalers, untyped.
    pub autoscalers: Vec<serde_norway::Value>,
    /// Every `(provider kind name, model)` a Backend asks for (for the price rules).
    pub models: BTreeSet<(String, String)>,
    /// Requested model -> Backend, from `x-tollgate-model` matches (RouterConfig.models).
    pub router_models: BTreeMap<String, String>,
    /// Metric naming and prices (set by `render` from its options and pricing table).
    pub metrics: crate::output::metrics_section::MetricsPlan,
}

/// One Backend.
#[derive(Debug, Clone)]
pub struct BackendPlan {
    /// Backend name = cluster name.
    pub name: String,
    /// Where it was defined.
    pub location: Location,
    /// True for AI backends (the adapter runs on the cluster).
    pub is_ai: bool,
    /// Endpoints per priority (index 0 first).
    pub priorities: Vec<Vec<EndpointPlan>>,
    /// Merged BackendConfigPolicies.
    pub connection: ConnectionSettings,
    /// Load balancing from a TrafficPolicy.
    pub load_balancer: Option<LoadBalancerPlan>,
}

/// One endpoint of a cluster.
#[derive(Debug, Clone)]
pub struct EndpointPlan {
    /// Provider name (AI) or host (Static); also the TLS match name.
    pub name: String,
    /// Where it is.
    pub address: Address,
    /// What the adapter needs (AI backends only).
    pub provider: Option<ProviderEndpoint>,
}

/// Envoy cluster settings gathered from BackendConfigPolicies; each remembers who set it.
#[derive(Debug, Clone, Default)]
pub struct ConnectionSettings {
    /// circuit_breakers max_connections.
    pub max_connections: Option<u32>,
    /// circuit_breakers max_pending_requests.
    pub max_pending_requests: Option<u32>,
    /// circuit_breakers max_requests.
    pub max_requests: Option<u32>,
    /// circuit_breakers max_retries.
    pub max_retries: Option<u32>,
    /// connect_timeout.
    pub connect_timeout: Option<Duration>,
    /// common_http_protocol_options.max_requests_per_connection.
    pub max_requests_per_connection: Option<u32>,
    /// common_http_protocol_options.idle_timeout.
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 to the upstream, with these options.
    pub http2: Option<Http2ProtocolOptions>,
    /// TCP keepalive.
    pub keepalive: Option<TcpKeepalive>,
    /// Outlier detection.
    pub outlier: Option<OutlierDetection>,
}

/// LB policy and health check of a Backend.
#[derive(Debug, Clone)]
pub struct LoadBalancerPlan {
    /// Envoy lb_policy.
    pub policy: LbPolicy,
    /// Active health check.
    pub health_check: Option<HealthCheckPlan>,
}

/// An active health check.
#[derive(Debug, Clone)]
pub struct HealthCheckPlan {
    /// From the YAML.
    pub check: HealthCheck,
    /// HTTP path, or `None` for a TCP connect check.
    pub path: Option<String>,
    /// HTTP Host header.
    pub host: Option<String>,
}

/// A Service reached by a filter (`dispatch_http_call`).
#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// Cluster name: `service/<name>`.
    pub cluster: String,
    /// Where it is.
    pub address: Address,
}

/// The global tier of the token budgets.
#[derive(Debug, Clone)]
pub struct BudgetServicePlan {
    /// Name of the Service (its key in `services`).
    pub service: String,
    /// Serve unmetered when it fails (else 503).
    pub fail_open: bool,
    /// Call timeout.
    pub timeout: Option<Duration>,
}

/// DNS settings.
#[derive(Debug, Clone, Default)]
pub struct DnsPlan {
    /// dns_refresh_rate.
    pub refresh_rate: Option<Duration>,
    /// respect_dns_ttl.
    pub respect_dns_ttl: Option<bool>,
    /// Checked: at least the number of host names the clusters resolve.
    pub cache_max_size: Option<u32>,
}

/// What a JWT TrafficPolicy requires on the routes it targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRequirement {
    /// Any one of these providers may have signed the token.
    pub providers: Vec<String>,
    /// A request without a valid token passes too, anonymous (`allow_missing_or_failed`).
    pub optional: bool,
}

/// Static client API keys on a route (`api_key_auth` per-route configuration).
#[derive(Debug, Clone)]
pub struct ApiKeysPlan {
    /// The TrafficPolicy that set them.
    pub policy: String,
    /// Header the key is read from (lower case).
    pub header: String,
    /// (client name, key).
    pub clients: Vec<(String, SecretValue)>,
}

/// One HTTPRoute.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// HTTPRoute name (Envoy route names are `<name>/<rule>/<match>`).
    pub name: String,
    /// Kind, models and opted-in operations (RouterConfig.routes).
    pub scope: RouteScope,
    /// True when a Backend of the route sends a provider key the gateway holds.
    pub holds_provider_keys: bool,
    /// Virtual host domains; `*` when the route names none.
    pub hostnames: Vec<String>,
    /// Rules.
    pub rules: Vec<RulePlan>,
}

/// One rule of an HTTPRoute.
#[derive(Debug, Clone)]
pub struct RulePlan {
    /// Matches; empty means `PathPrefix /`.
    pub matches: Vec<MatchPlan>,
    /// (Backend, weight).
    pub backends: Vec<(String, u32)>,
    /// Route timeout.
    pub timeout: Duration,
    /// Per-attempt timeout.
    pub per_try_timeout: Option<Duration>,
    /// Retries after the first attempt.
    pub num_retries: u32,
    /// Extra retried statuses (e.g. 429).
    pub retry_codes: Vec<u16>,
    /// Retry back-off base.
    pub retry_backoff: Option<Duration>,
}

/// One match of a rule: a path and required headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPlan {
    /// Path match type.
    pub path_type: PathMatchType,
    /// Path.
    pub path: String,
    /// (name, type, value), all required; a model match appears as the router's backend header.
    pub headers: Vec<(String, HeaderMatchType, String)>,
}

/// TrafficPolicy sections that apply to one HTTPRoute.
#[derive(Debug, Clone, Default)]
pub struct RoutePolicies {
    /// Token buckets.
    pub token_buckets: Vec<TokenBucket>,
    /// The same buckets by the TrafficPolicy that set them (its name), in input order: one
    /// budget per policy across every route it targets.
    pub token_budgets: Vec<(String, Vec<TokenBucket>)>,
    /// Response or tool-result caching.
    pub caching: Option<Caching>,
    /// Semantic cache.
    pub semantic_cache: Option<SemanticCache>,
    /// Name of the jwt_authn requirement (the JWT TrafficPolicy) the route requires.
    pub jwt: Option<String>,
    /// Static client API keys.
    pub api_keys: Option<ApiKeysPlan>,
}

impl RoutePolicies {
    /// True when a client must authenticate (a required JWT or an API key).
    pub fn requires_client_auth(&self, plan: &Plan) -> bool {
        let jwt_required = self
            .jwt
            .as_ref()
            .and_then(|name| plan.jwt_requirements.get(name))
            .is_some_and(|r| !r.optional);
        jwt_required || self.api_keys.is_some()
    }
}

/// Builds the plan; reference errors are reported before anything else, all at once.
pub fn build(catalog: &Catalog, options: &PlanOptions) -> Result<Plan, ConfigErrors> {
    let mut reference_errors = check_references(catalog);
    // Report in the order of the input files.
    reference_errors.sort_by_key(|e| catalog.files.iter().position(|f| *f == e.location.file));
    if !reference_errors.is_empty() {
        return Err(ConfigErrors(reference_errors));
    }
    let mut errors = Vec::new();
    check_positive_durations(catalog, &mut errors);
    let mut overrides = endpoint_overrides(catalog, options, &mut errors);
    let health_check_path = options.health_check_path.clone().or_else(|| {
        catalog
            .endpoint_overrides
            .iter()
            .find_map(|o| o.spec().health_check_path.clone())
    });

    let mut plan = Plan::default();
    for backend in &catalog.backends {
        if let Some(built) = backend_plan(
            backend,
            &mut overrides,
            &options.secrets,
            &mut plan.models,
            &mut errors,
        ) {
            plan.backends.push(built);
        }
    }
    apply_backend_config_policies(catalog, &mut plan, &mut errors);
    apply_traffic_policies(
        catalog,
        &mut plan,
        health_check_path.as_deref(),
        &mut overrides,
        &options.secrets,
        &mut errors,
    );
    check_allowed_operations(catalog, &mut errors);
    plan.routes = catalog
        .http_routes
        .iter()
        .map(|route| route_plan(route, catalog, &plan.backends, &mut errors))
        .collect();
    plan.router_models = model_routes(catalog, &mut errors);
    apply_gateway_parameters(catalog, &mut plan, &mut errors);
    plan.prometheus_rules = catalog.prometheus_rules.clone();
    plan.autoscalers = catalog
        .autoscalers
        .iter()
        .map(|d| d.value.clone())
        .collect();
    for (name, (source, used)) in &overrides {
        if !used {
            errors.push(ConfigError::new(
                source.location.clone(),
                format!(
                    "endpoint override {name:?} names no provider, static host, Backend or Service"
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Records that `policy` sets `field` of `target`; a second policy setting it is an error.
pub(super) fn claim(
    setters: &mut BTreeMap<(String, &'static str), String>,
    errors: &mut Vec<ConfigError>,
    target: &str,
    field: &'static str,
    policy: &Location,
    path: &str,
) -> bool {
    let who = policy.document.clone().unwrap_or_default();
    match setters.get(&(target.to_string(), field)) {
        Some(first) if *first != who => {
            errors.push(ConfigError::new(
                policy.at(path),
                format!("{first} already sets {field} of {target}; one policy per setting"),
            ));
            false
        }
        _ => {
            setters.insert((target.to_string(), field), who);
            true
        }
    }
}
