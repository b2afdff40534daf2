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
use crate::secrets::SecretStore;
use std::collections::{BTreeMap, BTreeSet};
use tollgate_core::config::{ProviderEndpoint, ProviderKind};

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
    /// DNS settings for every DNS cluster.
    pub dns: DnsPlan,
    /// JWT providers; `Some` when a policy keys on `jwt.*`.
    pub jwt: Option<Vec<JwtProvider>>,
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

/// One HTTPRoute.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// HTTPRoute name (Envoy route names are `<name>/<rule>/<match>`).
    pub name: String,
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
    /// Response or tool-result caching.
    pub caching: Option<Caching>,
    /// Semantic cache.
    pub semantic_cache: Option<SemanticCache>,
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
        &mut errors,
    );
    plan.routes = catalog
        .http_routes
        .iter()
        .map(|route| route_plan(route, &plan.backends))
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

/// Every targetRef and backendRef must name a defined object of the right kind: one error per
/// missing reference, naming it.
fn check_references(catalog: &Catalog) -> Vec<ConfigError> {
    let backends: BTreeSet<&str> = catalog.backends.iter().map(|b| b.name()).collect();
    let routes: BTreeSet<&str> = catalog.http_routes.iter().map(|r| r.name()).collect();
    let mut errors = Vec::new();
    let mut check_target = |location: &Location,
                            path: String,
                            target: &TargetRef,
                            allowed: &[&str]| {
        let defined = match target.kind.as_str() {
            "Backend" if allowed.contains(&"Backend") => backends.contains(target.name.as_str()),
            "HTTPRoute" if allowed.contains(&"HTTPRoute") => routes.contains(target.name.as_str()),
            other => {
                errors.push(ConfigError::new(
                    location.at(format!("{path}.kind")),
                    format!("cannot target a {other}; expected {}", allowed.join(" or ")),
                ));
                return;
            }
        };
        if !defined {
            errors.push(ConfigError::new(
                location.at(path),
                format!("{} {:?} is not defined", target.kind, target.name),
            ));
        }
    };
    for policy in &catalog.traffic_policies {
        for (i, target) in policy.spec().target_refs.iter().enumerate() {
            check_target(
                &policy.location,
                format!("spec.targetRefs[{i}]"),
                target,
                &["HTTPRoute", "Backend"],
            );
        }
    }
    for policy in &catalog.backend_config_policies {
        for (i, target) in policy.spec().target_refs.iter().enumerate() {
            check_target(
                &policy.location,
                format!("spec.targetRefs[{i}]"),
                target,
                &["Backend"],
            );
        }
    }
    for route in &catalog.http_routes {
        for (r, rule) in route.spec().rules.iter().enumerate() {
            for (b, backend_ref) in rule.backend_refs.iter().enumerate() {
                let path = format!("spec.rules[{r}].backendRefs[{b}]");
                let kind = backend_ref.kind.as_deref().unwrap_or("Backend");
                if kind != "Backend" {
                    errors.push(ConfigError::new(
                        route.location.at(format!("{path}.kind")),
                        format!("cannot route to a {kind}; expected Backend"),
                    ));
                } else if !backends.contains(backend_ref.name.as_str()) {
                    errors.push(ConfigError::new(
                        route.location.at(path),
                        format!("Backend {:?} is not defined", backend_ref.name),
                    ));
                }
            }
        }
    }
    errors
}

/// An override: where it was given, and whether anything used it.
type Overrides = BTreeMap<String, (OverrideSource, bool)>;

/// Where an override was given and what it says.
#[derive(Debug, Clone)]
struct OverrideSource {
    location: Location,
    address: Address,
}

fn endpoint_overrides(
    catalog: &Catalog,
    options: &PlanOptions,
    errors: &mut Vec<ConfigError>,
) -> Overrides {
    let mut overrides = Overrides::new();
    for document in &catalog.endpoint_overrides {
        for (name, url) in &document.spec().endpoints {
            let location = document.location.at(format!("spec.endpoints.{name}"));
            match endpoint::parse_url(url) {
                Ok(address) => {
                    overrides.insert(name.clone(), (OverrideSource { location, address }, false));
                }
                Err(message) => errors.push(ConfigError::new(location, message)),
            }
        }
    }
    for (name, url) in &options.endpoints {
        let location = Location::file("--endpoint").at(name.clone());
        match endpoint::parse_url(url) {
            Ok(address) => {
                overrides.insert(name.clone(), (OverrideSource { location, address }, false));
            }
            Err(message) => errors.push(ConfigError::new(location, message)),
        }
    }
    overrides
}

fn take_override(overrides: &mut Overrides, name: &str) -> Option<Address> {
    overrides.get_mut(name).map(|(source, used)| {
        *used = true;
        source.address.clone()
    })
}

fn backend_plan(
    backend: &Located<crate::model::backend::BackendSpec>,
    overrides: &mut Overrides,
    secrets: &SecretStore,
    models: &mut BTreeSet<(String, String)>,
    errors: &mut Vec<ConfigError>,
) -> Option<BackendPlan> {
    let spec = backend.spec();
    let location = &backend.location;
    let mut priorities = Vec::new();
    match spec.backend_type {
        BackendType::AI => {
            let Some(ai) = &spec.ai else {
                errors.push(ConfigError::new(
                    location.at("spec.ai"),
                    "a Backend of type AI needs spec.ai",
                ));
                return None;
            };
            if ai.priority_groups.is_empty() {
                errors.push(ConfigError::new(
                    location.at("spec.ai.priorityGroups"),
                    "needs at least one priority group",
                ));
            }
            let mut names = BTreeSet::new();
            for (g, group) in ai.priority_groups.iter().enumerate() {
                if group.providers.is_empty() {
                    errors.push(ConfigError::new(
                        location.at(format!("spec.ai.priorityGroups[{g}].providers")),
                        "needs at least one provider",
                    ));
                }
                let mut endpoints = Vec::new();
                for (p, provider) in group.providers.iter().enumerate() {
                    let path = format!("spec.ai.priorityGroups[{g}].providers[{p}]");
                    if !names.insert(provider.name.clone()) {
                        errors.push(ConfigError::new(
                            location.at(format!("{path}.name")),
                            format!(
                                "provider name {:?} is used twice in this Backend",
                                provider.name
                            ),
                        ));
                    }
                    let sections: Vec<(ProviderKind, &str, &ProviderSettings)> = [
                        (ProviderKind::Openai, "openai", provider.openai.as_ref()),
                        (
                            ProviderKind::Anthropic,
                            "anthropic",
                            provider.anthropic.as_ref(),
                        ),
                        (ProviderKind::Gemini, "gemini", provider.gemini.as_ref()),
                    ]
                    .into_iter()
                    .filter_map(|(kind, key, settings)| settings.map(|s| (kind, key, s)))
                    .collect();
                    let [(kind, key, settings)] = sections.as_slice() else {
                        errors.push(ConfigError::new(
                            location.at(path),
                            format!(
                                "provider {:?} needs exactly one of openai, anthropic, gemini",
                                provider.name
                            ),
                        ));
                        continue;
                    };
                    let path = format!("{path}.{key}");
                    if settings.api_version.is_some() && *kind != ProviderKind::Anthropic {
                        errors.push(ConfigError::new(
                            location.at(format!("{path}.apiVersion")),
                            "only anthropic providers take apiVersion",
                        ));
                    }
                    let address = take_override(overrides, &provider.name).unwrap_or_else(|| {
                        endpoint::from_settings(
                            *kind,
                            settings.host.as_deref(),
                            settings.port,
                            settings.path.as_deref(),
                        )
                    });
                    let api_key = match &settings.auth_token {
                        None => None,
                        Some(token) => match (token.kind, &token.secret_ref, &token.inline) {
                            (AuthTokenKind::SecretRef, Some(secret), _) => {
                                match secrets.resolve(&secret.name, secret.key.as_deref()) {
                                    Ok((value, _origin)) => Some(value.expose().to_string()),
                                    Err(message) => {
                                        errors.push(ConfigError::new(
                                            location.at(format!("{path}.authToken.secretRef")),
                                            message,
                                        ));
                                        None
                                    }
                                }
                            }
                            (AuthTokenKind::Inline, _, Some(inline)) => Some(
                                crate::secrets::SecretValue::inline(inline)
                                    .expose()
                                    .to_string(),
                            ),
                            (AuthTokenKind::SecretRef, None, _) => {
                                errors.push(ConfigError::new(
                                    location.at(format!("{path}.authToken")),
                                    "kind SecretRef needs secretRef.name",
                                ));
                                None
                            }
                            (AuthTokenKind::Inline, _, None) => {
                                errors.push(ConfigError::new(
                                    location.at(format!("{path}.authToken")),
                                    "kind Inline needs inline",
                                ));
                                None
                            }
                        },
                    };
                    if let Some(model) = &settings.model {
                        models.insert((endpoint::kind_name(*kind).to_string(), model.clone()));
                    }
                    endpoints.push(EndpointPlan {
                        name: provider.name.clone(),
                        provider: Some(ProviderEndpoint {
                            name: provider.name.clone(),
                            kind: *kind,
                            model: settings.model.clone(),
                            override_model: settings.model.is_some(),
                            authority: address.authority(),
                            path_prefix: address.path_prefix.clone(),
                            api_key,
                            api_version: settings.api_version.clone(),
                        }),
                        address,
                    });
                }
                priorities.push(endpoints);
            }
        }
        BackendType::Static => {
            let Some(static_hosts) = &spec.static_hosts else {
                errors.push(ConfigError::new(
                    location.at("spec.static"),
                    "a Backend of type Static needs spec.static",
                ));
                return None;
            };
            let endpoints = static_hosts
                .hosts
                .iter()
                .map(|h| {
                    let address = take_override(overrides, &h.host)
                        .or_else(|| take_override(overrides, backend.name()))
                        .unwrap_or(Address {
                            host: h.host.clone(),
                            port: h.port,
                            tls: h.port == 443,
                            path_prefix: String::new(),
                        });
                    EndpointPlan {
                        name: h.host.clone(),
                        address,
                        provider: None,
                    }
                })
                .collect();
            priorities.push(endpoints);
        }
    }
    if spec.ai.is_some() && spec.backend_type == BackendType::Static {
        errors.push(ConfigError::new(
            location.at("spec.ai"),
            "spec.ai is for type AI",
        ));
    }
    if spec.static_hosts.is_some() && spec.backend_type == BackendType::AI {
        errors.push(ConfigError::new(
            location.at("spec.static"),
            "spec.static is for type Static",
        ));
    }
    Some(BackendPlan {
        name: backend.name().to_string(),
        location: location.clone(),
        is_ai: spec.backend_type == BackendType::AI,
        priorities,
        connection: ConnectionSettings::default(),
        load_balancer: None,
    })
}

/// Records that `policy` sets `field` of `target`; a second policy setting it is an error.
fn claim(
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

fn apply_backend_config_policies(
    catalog: &Catalog,
    plan: &mut Plan,
    errors: &mut Vec<ConfigError>,
) {
    let mut setters = BTreeMap::new();
    for policy in &catalog.backend_config_policies {
        let spec = policy.spec();
        let at = &policy.location;
        for target in &spec.target_refs {
            let Some(backend) = plan.backends.iter_mut().find(|b| b.name == target.name) else {
                continue;
            };
            let target_name = format!("Backend/{}", backend.name);
            let settings = &mut backend.connection;
            let mut set_u32 =
                |slot: &mut Option<u32>, value: Option<u32>, field: &'static str, path: &str| {
                    if let Some(value) = value {
                        if claim(&mut setters, errors, &target_name, field, at, path) {
                            *slot = Some(value);
                        }
                    }
                };
            if let Some(pool) = &spec.connection_pool {
                if let Some(tcp) = &pool.tcp {
                    set_u32(
                        &mut settings.max_connections,
                        tcp.max_connections,
                        "max_connections",
                        "spec.connectionPool.tcp.maxConnections",
                    );
                }
                if let Some(http) = &pool.http {
                    set_u32(
                        &mut settings.max_pending_requests,
                        http.http1_max_pending_requests,
                        "max_pending_requests",
                        "spec.connectionPool.http.http1MaxPendingRequests",
                    );
                    set_u32(
                        &mut settings.max_requests,
                        http.http2_max_requests,
                        "max_requests",
                        "spec.connectionPool.http.http2MaxRequests",
                    );
                    set_u32(
                        &mut settings.max_requests_per_connection,
                        http.max_requests_per_connection,
                        "max_requests_per_connection",
                        "spec.connectionPool.http.maxRequestsPerConnection",
                    );
                    set_u32(
                        &mut settings.max_retries,
                        http.max_retries,
                        "max_retries",
                        "spec.connectionPool.http.maxRetries",
                    );
                }
            }
            if let Some(breakers) = &spec.circuit_breakers {
                set_u32(
                    &mut settings.max_connections,
                    breakers.max_connections,
                    "max_connections",
                    "spec.circuitBreakers.maxConnections",
                );
                set_u32(
                    &mut settings.max_pending_requests,
                    breakers.max_pending_requests,
                    "max_pending_requests",
                    "spec.circuitBreakers.maxPendingRequests",
                );
                set_u32(
                    &mut settings.max_requests,
                    breakers.max_requests,
                    "max_requests",
                    "spec.circuitBreakers.maxRequests",
                );
                set_u32(
                    &mut settings.max_retries,
                    breakers.max_retries,
                    "max_retries",
                    "spec.circuitBreakers.maxRetries",
                );
            }
            if let Some(common) = &spec.common_http_protocol_options {
                set_u32(
                    &mut settings.max_requests_per_connection,
                    common.max_requests_per_connection,
                    "max_requests_per_connection",
                    "spec.commonHttpProtocolOptions.maxRequestsPerConnection",
                );
                if let Some(idle) = common.idle_timeout {
                    if claim(
                        &mut setters,
                        errors,
                        &target_name,
                        "idle_timeout",
                        at,
                        "spec.commonHttpProtocolOptions.idleTimeout",
                    ) {
                        settings.idle_timeout = Some(idle);
                    }
                }
            }
            let connect_timeouts = [
                (
                    spec.connection_pool
                        .as_ref()
                        .and_then(|p| p.tcp.as_ref())
                        .and_then(|t| t.connect_timeout),
                    "spec.connectionPool.tcp.connectTimeout",
                ),
                (spec.connect_timeout, "spec.connectTimeout"),
            ];
            for (timeout, path) in connect_timeouts {
                if let Some(timeout) = timeout {
                    if claim(
                        &mut setters,
                        errors,
                        &target_name,
                        "connect_timeout",
                        at,
                        path,
                    ) {
                        settings.connect_timeout = Some(timeout);
                    }
                }
            }
            let upgrade = spec
                .connection_pool
                .as_ref()
                .and_then(|p| p.http.as_ref())
                .and_then(|h| h.h2_upgrade_policy);
            if let Some(upgrade) = upgrade {
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "h2_upgrade_policy",
                    at,
                    "spec.connectionPool.http.h2UpgradePolicy",
                ) && upgrade == H2UpgradePolicy::Upgrade
                {
                    settings
                        .http2
                        .get_or_insert_with(Http2ProtocolOptions::default);
                }
            }
            if let Some(options) = &spec.http2_protocol_options {
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "http2_protocol_options",
                    at,
                    "spec.http2ProtocolOptions",
                ) {
                    settings.http2 = Some(options.clone());
                }
            }
            if let Some(keepalive) = &spec.tcp_keepalive {
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "tcp_keepalive",
                    at,
                    "spec.tcpKeepalive",
                ) {
                    settings.keepalive = Some(keepalive.clone());
                }
            }
            if let Some(outlier) = &spec.outlier_detection {
                if let Some(percent) = outlier.max_ejection_percent.filter(|p| *p > 100) {
                    errors.push(ConfigError::new(
                        at.at("spec.outlierDetection.maxEjectionPercent"),
                        format!("expected a percentage from 0 to 100, got {percent}"),
                    ));
                }
                if claim(
                    &mut setters,
                    errors,
                    &target_name,
                    "outlier_detection",
                    at,
                    "spec.outlierDetection",
                ) {
                    settings.outlier = Some(outlier.clone());
                }
            }
        }
    }
    // HTTP/2 explicitly refused by one policy and configured by another is a contradiction.
    for policy in &catalog.backend_config_policies {
        let refuses = matches!(
            policy
                .spec()
                .connection_pool
                .as_ref()
                .and_then(|p| p.http.as_ref())
                .and_then(|h| h.h2_upgrade_policy),
            Some(H2UpgradePolicy::DoNotUpgrade)
        );
        for target in policy.spec().target_refs.iter().filter(|_| refuses) {
            if let Some(backend) = plan
                .backends
                .iter_mut()
                .find(|b| b.name == target.name && b.connection.http2.is_some())
            {
                errors.push(ConfigError::new(
                    policy
                        .location
                        .at("spec.connectionPool.http.h2UpgradePolicy"),
                    format!(
                        "DO_NOT_UPGRADE contradicts the http2ProtocolOptions set for Backend/{}",
                        backend.name
                    ),
                ));
            }
        }
    }
}

fn apply_traffic_policies(
    catalog: &Catalog,
    plan: &mut Plan,
    health_check_path: Option<&str>,
    overrides: &mut Overrides,
    errors: &mut Vec<ConfigError>,
) {
    let mut setters = BTreeMap::new();
    let mut jwt_providers: Vec<JwtProvider> = Vec::new();
    let mut jwt_uses: Vec<Location> = Vec::new();
    for policy in &catalog.traffic_policies {
        let spec = policy.spec();
        let at = &policy.location;
        if let Some(jwt) = &spec.jwt {
            jwt_providers.extend(jwt.providers.iter().cloned());
        }
        if let Some(rate_limit) = &spec.rate_limit {
            for (b, bucket) in rate_limit.local.iter().enumerate() {
                let path = format!("spec.rateLimit.local[{b}]");
                if bucket.max_tokens == 0 || bucket.tokens_per_fill == 0 {
                    errors.push(ConfigError::new(
                        at.at(path.clone()),
                        "maxTokens and tokensPerFill must be at least 1",
                    ));
                }
                if bucket.fill_interval.millis == 0 {
                    errors.push(ConfigError::new(
                        at.at(format!("{path}.fillInterval")),
                        "must be longer than 0s",
                    ));
                }
                for (d, descriptor) in bucket.descriptors.iter().enumerate() {
                    for (e, entry) in descriptor.entries.iter().enumerate() {
                        if entry.value.starts_with("jwt.") {
                            jwt_uses
                                .push(at.at(format!("{path}.descriptors[{d}].entries[{e}].value")));
                        }
                    }
                }
            }
        }
        if let Some(semantic) = spec.ai.as_ref().and_then(|ai| ai.semantic_cache.as_ref()) {
            let path = "spec.ai.semanticCache";
            if !(0.0..=1.0).contains(&semantic.similarity_threshold) {
                errors.push(ConfigError::new(
                    at.at(format!("{path}.similarityThreshold")),
                    format!(
                        "expected a number from 0 to 1, got {}",
                        semantic.similarity_threshold
                    ),
                ));
            }
            if semantic.backend.kind != "Service" {
                errors.push(ConfigError::new(
                    at.at(format!("{path}.backend.kind")),
                    format!("expected Service, got {:?}", semantic.backend.kind),
                ));
            }
            let name = &semantic.backend.name;
            let address = take_override(overrides, name).unwrap_or(Address {
                host: name.clone(),
                port: semantic.backend.port,
                tls: false,
                path_prefix: String::new(),
            });
            plan.services.insert(
                name.clone(),
                ServicePlan {
                    cluster: format!("service/{name}"),
                    address,
                },
            );
        }
        for (t, target) in spec.target_refs.iter().enumerate() {
            let target_path = format!("spec.targetRefs[{t}]");
            match target.kind.as_str() {
                "Backend" => {
                    for (present, section) in [
                        (spec.rate_limit.is_some(), "rateLimit"),
                        (spec.caching.is_some(), "caching"),
                        (spec.ai.is_some(), "ai"),
                    ] {
                        if present {
                            errors.push(ConfigError::new(
                                at.at(format!("spec.{section}")),
                                format!("{section} applies to HTTPRoutes, but {target_path} is Backend {:?}", target.name),
                            ));
                        }
                    }
                    let Some(lb) = &spec.load_balancer else {
                        continue;
                    };
                    let Some(backend) = plan.backends.iter_mut().find(|b| b.name == target.name)
                    else {
                        continue;
                    };
                    if !claim(
                        &mut setters,
                        errors,
                        &format!("Backend/{}", backend.name),
                        "loadBalancer",
                        at,
                        "spec.loadBalancer",
                    ) {
                        continue;
                    }
                    let health_check = lb.health_check.as_ref().map(|check| HealthCheckPlan {
                        check: check.clone(),
                        path: check
                            .http
                            .as_ref()
                            .map(|h| h.path.clone())
                            .or_else(|| check.path.clone())
                            .or_else(|| health_check_path.map(str::to_string)),
                        host: check.http.as_ref().and_then(|h| h.host.clone()),
                    });
                    backend.load_balancer = Some(LoadBalancerPlan {
                        policy: lb.policy,
                        health_check,
                    });
                }
                "HTTPRoute" => {
                    if spec.load_balancer.is_some() {
                        errors.push(ConfigError::new(
                            at.at("spec.loadBalancer"),
                            format!("loadBalancer applies to Backends, but {target_path} is HTTPRoute {:?}", target.name),
                        ));
                    }
                    let route = format!("HTTPRoute/{}", target.name);
                    let policies = plan.route_policies.entry(target.name.clone()).or_default();
                    if let Some(rate_limit) = &spec.rate_limit {
                        policies
                            .token_buckets
                            .extend(rate_limit.local.iter().cloned());
                    }
                    if let Some(caching) = &spec.caching {
                        if claim(&mut setters, errors, &route, "caching", at, "spec.caching") {
                            policies.caching = Some(caching.clone());
                        }
                    }
                    if let Some(semantic) =
                        spec.ai.as_ref().and_then(|ai| ai.semantic_cache.as_ref())
                    {
                        if claim(
                            &mut setters,
                            errors,
                            &route,
                            "semanticCache",
                            at,
                            "spec.ai.semanticCache",
                        ) {
                            policies.semantic_cache = Some(semantic.clone());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if !jwt_uses.is_empty() {
        if jwt_providers.is_empty() {
            for location in jwt_uses {
                errors.push(ConfigError::new(
                    location,
                    "keys on a JWT claim, but no TrafficPolicy defines spec.jwt.providers to verify the token",
                ));
            }
        } else {
            plan.jwt = Some(jwt_providers);
        }
    }
}

fn route_plan(
    route: &Located<crate::model::http_route::HttpRouteSpec>,
    backends: &[BackendPlan],
) -> RoutePlan {
    let spec = route.spec();
    let rules = spec
        .rules
        .iter()
        .map(|rule| {
            let groups = rule
                .backend_refs
                .iter()
                .filter_map(|r| backends.iter().find(|b| b.name == r.name))
                .map(|b| b.priorities.len())
                .max()
                .unwrap_or(1);
            let retry = rule.retry.as_ref();
            let backend = rule
                .backend_refs
                .first()
                .map(|r| r.name.as_str())
                .unwrap_or_default();
            RulePlan {
                matches: rule
                    .matches
                    .iter()
                    .map(|m| match_plan(m, backend))
                    .collect(),
                backends: rule
                    .backend_refs
                    .iter()
                    .map(|r| (r.name.clone(), r.weight.unwrap_or(1)))
                    .collect(),
                timeout: rule
                    .timeouts
                    .as_ref()
                    .and_then(|t| t.request)
                    .unwrap_or(DEFAULT_ROUTE_TIMEOUT),
                per_try_timeout: rule.timeouts.as_ref().and_then(|t| t.backend_request),
                // Enough retries to reach every priority group once.
                num_retries: retry
                    .and_then(|r| r.attempts)
                    .unwrap_or(groups.saturating_sub(1).max(1) as u32),
                retry_codes: retry.map(|r| r.codes.clone()).unwrap_or_default(),
                retry_backoff: retry.and_then(|r| r.backoff),
            }
        })
        .collect();
    RoutePlan {
        name: route.name().to_string(),
        hostnames: if spec.hostnames.is_empty() {
            vec!["*".to_string()]
        } else {
            spec.hostnames.clone()
        },
        rules,
    }
}

fn apply_gateway_parameters(catalog: &Catalog, plan: &mut Plan, errors: &mut Vec<ConfigError>) {
    let mut setters = BTreeMap::new();
    for parameters in &catalog.gateway_parameters {
        let at = &parameters.location;
        let target = "the gateway";
        if let Some(dns) = parameters
            .spec()
            .raw_config
            .as_ref()
            .and_then(|r| r.config.dns.as_ref())
        {
            if let Some(rate) = dns.refresh_rate {
                if claim(
                    &mut setters,
                    errors,
                    target,
                    "dns_refresh_rate",
                    at,
                    "spec.rawConfig.config.dns.refreshRate",
                ) {
                    plan.dns.refresh_rate = Some(rate);
                }
            }
            if let Some(respect) = dns.respect_dns_ttl {
                if claim(
                    &mut setters,
                    errors,
                    target,
                    "respect_dns_ttl",
                    at,
                    "spec.rawConfig.config.dns.respectDnsTtl",
                ) {
                    plan.dns.respect_dns_ttl = Some(respect);
                }
            }
            if let Some(size) = dns.cache_max_size {
                if claim(
                    &mut setters,
                    errors,
                    target,
                    "dns cache size",
                    at,
                    "spec.rawConfig.config.dns.cacheMaxSize",
                ) {
                    plan.dns.cache_max_size = Some(size);
                    let hosts = dns_host_names(plan);
                    if hosts.len() > size as usize {
                        errors.push(ConfigError::new(
                            at.at("spec.rawConfig.config.dns.cacheMaxSize"),
                            format!(
                                "{size} is fewer than the {} host names the clusters resolve",
                                hosts.len()
                            ),
                        ));
                    }
                }
            }
        }
        let limits = parameters
            .spec()
            .kube
            .as_ref()
            .and_then(|k| k.deployment.container.as_ref())
            .and_then(|c| c.resources.as_ref())
            .and_then(|r| r.limits.as_ref());
        if let Some(memory) = limits.and_then(|l| l.memory) {
            if claim(
                &mut setters,
                errors,
                target,
                "memory limit",
                at,
                "spec.kube.deployment.container.resources.limits.memory",
            ) {
                plan.memory_limit_bytes = Some(memory.units());
            }
        }
    }
}

/// Host names (not IP addresses) that DNS clusters resolve.
pub fn dns_host_names(plan: &Plan) -> BTreeSet<String> {
    let endpoints = plan
        .backends
        .iter()
        .flat_map(|b| b.priorities.iter().flatten().map(|e| &e.address));
    endpoints
        .chain(plan.services.values().map(|s| &s.address))
        .filter(|a| a.host.parse::<std::net::IpAddr>().is_err())
        .map(|a| a.host.clone())
        .collect()
}

/// Stands for the router's backend header (RouterConfig.backend_header) in a planned match.
pub const BACKEND_HEADER_PLACEHOLDER: &str = "@router-backend-header";

/// `x-tollgate-model` matches: the model -> Backend map the router routes by. Such a rule needs
/// exactly one backendRef, an Exact value, and a model maps to one Backend only.
fn model_routes(catalog: &Catalog, errors: &mut Vec<ConfigError>) -> BTreeMap<String, String> {
    let mut models: BTreeMap<String, (String, Location)> = BTreeMap::new();
    for route in &catalog.http_routes {
        for (r, rule) in route.spec().rules.iter().enumerate() {
            for (m, matcher) in rule.matches.iter().enumerate() {
                for (h, header) in matcher.headers.iter().enumerate() {
                    if !header.name.eq_ignore_ascii_case(MODEL_HEADER) {
                        continue;
                    }
                    let path = format!("spec.rules[{r}].matches[{m}].headers[{h}]");
                    let location = route.location.at(path.clone());
                    if header.match_type == Some(HeaderMatchType::RegularExpression) {
                        errors.push(ConfigError::new(
                            route.location.at(format!("{path}.type")),
                            "a model match must be Exact",
                        ));
                        continue;
                    }
                    let [backend_ref] = rule.backend_refs.as_slice() else {
                        errors.push(ConfigError::new(
                            route.location.at(format!("spec.rules[{r}].backendRefs")),
                            format!("a rule matching {MODEL_HEADER} needs exactly one backendRef"),
                        ));
                        continue;
                    };
                    match models.get(&header.value) {
                        Some((backend, first)) if *backend != backend_ref.name => {
                            errors.push(ConfigError::new(
                                location,
                                format!(
                                    "model {:?} already routes to Backend {backend:?} ({first})",
                                    header.value
                                ),
                            ))
                        }
                        Some(_) => {}
                        None => {
                            models
                                .insert(header.value.clone(), (backend_ref.name.clone(), location));
                        }
                    }
                }
            }
        }
    }
    models
        .into_iter()
        .map(|(model, (backend, _))| (model, backend))
        .collect()
}

fn match_plan(matcher: &crate::model::http_route::RouteMatch, backend: &str) -> MatchPlan {
    let path = matcher.path.as_ref();
    MatchPlan {
        path_type: path
            .and_then(|p| p.match_type)
            .unwrap_or(PathMatchType::PathPrefix),
        path: path
            .map(|p| p.value.clone())
            .unwrap_or_else(|| "/".to_string()),
        headers: matcher
            .headers
            .iter()
            .map(|h| {
                if h.name.eq_ignore_ascii_case(MODEL_HEADER) {
                    (
                        BACKEND_HEADER_PLACEHOLDER.to_string(),
                        HeaderMatchType::Exact,
                        backend.to_string(),
                    )
                } else {
                    let match_type = h.match_type.unwrap_or(HeaderMatchType::Exact);
                    (h.name.to_ascii_lowercase(), match_type, h.value.clone())
                }
            })
            .collect(),
    }
}
