//! The Envoy bootstrap: admin, one listener whose HTTP connection manager runs the downstream
//! filters in order (jwt_authn when needed, router, cache, budget, metrics, then Envoy's
//! router), routes from the HTTPRoutes, one cluster per Backend (priority groups as endpoint
//! priorities, the adapter as upstream filter, every BackendConfigPolicy knob), one cluster per
//! Service the filters call, stats tags for the metric labels, and the overload manager when a
//! memory limit is known.

use super::OutputOptions;
use crate::error::{ConfigError, ConfigErrors};
use crate::model::http_route::{HeaderMatchType, PathMatchType};
use crate::model::traffic_policy::LbPolicy;
use crate::plan::{
    BackendPlan, EndpointPlan, MatchPlan, Plan, RoutePlan, RulePlan, BACKEND_HEADER_PLACEHOLDER,
    DEFAULT_CONNECT_TIMEOUT,
};
use crate::secrets::{provider_key_variable, SecretValue};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tollgate_core::config::{AdapterConfig, DownstreamConfig, RouterConfig};
use tollgate_core::names::root_id;

/// One `vm_id` for every tollgate plugin, so they share shared data (budgets, cache).
pub const VM_ID: &str = tollgate_core::names::VM_ID;

/// `payload_in_metadata` of every JWT provider: the budget filter reads claims at
/// `metadata.filter_metadata["envoy.filters.http.jwt_authn"].jwt_payload.<claim>`.
pub const JWT_PAYLOAD_METADATA_KEY: &str = "jwt_payload";

/// Label names extracted from metric names, in label order (see DESIGN.md §2 Metrics): a wasm
/// metric named `agentgateway_llm_tokens_total.direction.input.provider.openai.model.gpt-4o`
/// gets `{direction="input",provider="openai",model="gpt-4o"}`.
pub const METRIC_TAGS: [&str; 10] = [
    "direction",
    "provider",
    "model",
    "backend",
    "route",
    "user",
    "status",
    "result",
    "policy",
    "reason",
];

/// A downstream or upstream tollgate filter: plugin name, root_id and module file.
#[derive(Debug, Clone, Copy)]
pub struct WasmFilter {
    /// Plugin name in Envoy (logs, stats).
    pub name: &'static str,
    /// Root context id inside the module.
    pub root_id: &'static str,
    /// Module file under the wasm folder.
    pub module: &'static str,
}

/// The downstream filters, in chain order: one module whose pipeline runs every stage.
pub const DOWNSTREAM_FILTERS: [WasmFilter; 1] = [WasmFilter {
    name: "tollgate",
    root_id: root_id::PIPELINE,
    module: "tollgate.wasm",
}];

/// The separate form's downstream filters ([`super::FilterForm::Separate`]), in chain order:
/// one capability each, all from the same module (so one VM, sharing its data).
pub const CAPABILITY_FILTERS: [WasmFilter; 4] = [
    WasmFilter {
        name: "tollgate-router",
        root_id: root_id::ROUTER,
        module: "tollgate.wasm",
    },
    WasmFilter {
        name: "tollgate-cache",
        root_id: root_id::CACHE,
        module: "tollgate.wasm",
    },
    WasmFilter {
        name: "tollgate-budget",
        root_id: root_id::BUDGET,
        module: "tollgate.wasm",
    },
    WasmFilter {
        name: "tollgate-metrics",
        root_id: root_id::METRICS,
        module: "tollgate.wasm",
    },
];

/// The downstream filters the output form asks for, in chain order, with their plugin
/// configurations: the pipeline alone (combined), or the router plus each capability whose
/// section is configured (separate). `configs` is [`downstream_plugin_configs`].
pub fn downstream_filters<'a>(
    configs: &'a BTreeMap<&'static str, String>,
    options: &OutputOptions,
) -> Vec<(WasmFilter, &'a str)> {
    let filters: &[WasmFilter] = match options.filters {
        super::FilterForm::Combined => &DOWNSTREAM_FILTERS,
        super::FilterForm::Separate => &CAPABILITY_FILTERS,
    };
    filters
        .iter()
        .filter_map(|f| configs.get(f.root_id).map(|c| (*f, c.as_str())))
        .collect()
}

/// The upstream adapter: a second root context in the same module.
pub const ADAPTER_FILTER: WasmFilter = WasmFilter {
    name: "tollgate-adapter",
    root_id: root_id::ADAPTER,
    module: "tollgate.wasm",
};

/// The pipeline's configuration: routing from the plan, and a section per stage a policy asks
/// for (each built by its own `*_section` module).
pub fn downstream_config(plan: &Plan, router: &RouterConfig) -> DownstreamConfig {
    DownstreamConfig {
        route: router.clone(),
        cache: super::cache_section::section(plan),
        budget: super::budget_section::section(plan),
        metrics: super::metrics_section::section(plan),
    }
}

/// The plugin configuration (JSON) of each downstream filter, by root_id: the pipeline's
/// [`DownstreamConfig`]; for the separate form also the router's [`RouterConfig`] and the same
/// document for each capability whose section is configured (absent: that filter is not emitted).
pub fn downstream_plugin_configs(
    plan: &Plan,
    router: &RouterConfig,
) -> BTreeMap<&'static str, String> {
    let config = downstream_config(plan, router);
    let json = serde_json::to_string(&config).unwrap_or_else(|_| "{}".to_string());
    let route = serde_json::to_string(&config.route).unwrap_or_else(|_| "{}".to_string());
    let mut configs = BTreeMap::from([(root_id::PIPELINE, json.clone()), (root_id::ROUTER, route)]);
    for (root, configured) in [
        (root_id::CACHE, config.cache.is_some()),
        (root_id::BUDGET, config.budget.is_some()),
        (root_id::METRICS, config.metrics.is_some()),
    ] {
        if configured {
            configs.insert(root, json.clone());
        }
    }
    configs
}

/// The router configuration the plan implies: the model -> Backend map of the HTTPRoutes'
/// `x-tollgate-model` matches (empty: the routes alone pick the backend), and what each
/// HTTPRoute serves (kind, models, opted-in operations).
pub fn router_config(plan: &Plan) -> RouterConfig {
    let natives = super::native_upstream::native_backends(plan);
    let mut route_backends = BTreeMap::new();
    for route in &plan.routes {
        for (r, rule) in route.rules.iter().enumerate() {
            if let [(backend, _)] = rule.backends.as_slice() {
                if natives.contains_key(backend) {
                    for m in 0..rule.matches.len().max(1) {
                        route_backends.insert(format!("{}/{r}/{m}", route.name), backend.clone());
                    }
                }
            }
        }
    }
    RouterConfig {
        models: plan.router_models.clone(),
        routes: plan
            .routes
            .iter()
            .map(|route| (route.name.clone(), route.scope.clone()))
            .collect(),
        native_backends: natives
            .iter()
            .map(|(name, native)| (name.clone(), native.model.clone()))
            .collect(),
        route_backends,
        ..RouterConfig::default()
    }
}

/// The adapter configuration of one AI Backend's cluster. A provider's key is never in it:
/// only the name of the Envoy environment variable holding it ([`provider_key_variable`]).
pub fn adapter_config(backend: &BackendPlan) -> AdapterConfig {
    AdapterConfig {
        backend: backend.name.clone(),
        providers: backend
            .priorities
            .iter()
            .flatten()
            .filter_map(|e| e.provider.clone())
            .map(|mut provider| {
                if provider.api_key.take().is_some() {
                    provider.api_key_env =
                        Some(provider_key_variable(&backend.name, &provider.name));
                }
                provider
            })
            .collect(),
    }
}

/// Every provider key of the plan by the environment variable the adapter reads it from: the
/// contents of `secrets.env`. Two providers whose names map to the same variable are an error
/// (at the second Backend).
pub fn provider_keys(plan: &Plan) -> Result<BTreeMap<String, SecretValue>, ConfigErrors> {
    let mut keys: BTreeMap<String, (String, SecretValue)> = BTreeMap::new();
    let mut errors = Vec::new();
    for backend in &plan.backends {
        for provider in backend
            .priorities
            .iter()
            .flatten()
            .filter_map(|e| e.provider.as_ref())
        {
            let Some(key) = &provider.api_key else {
                continue;
            };
            let variable = provider_key_variable(&backend.name, &provider.name);
            let owner = format!("{}/{}", backend.name, provider.name);
            match keys.get(&variable) {
                Some((first, _)) if *first != owner => errors.push(ConfigError::new(
                    backend.location.clone(),
                    format!(
                        "provider {owner} and {first} both need environment variable {variable}: rename one"
                    ),
                )),
                _ => {
                    keys.insert(variable, (owner, SecretValue::resolved(key.clone())));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(keys.into_iter().map(|(k, (_, v))| (k, v)).collect())
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The environment variables every tollgate plugin's VM may read (`host_env_keys`): the
/// provider keys' names. The same list on every plugin: plugins whose `environment_variables`
/// differ get a VM each (docs/envoy-facts.md: one VM per list, several MB each).
pub fn host_env_keys(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .backends
        .iter()
        .flat_map(|b| {
            b.priorities
                .iter()
                .flatten()
                .filter_map(|e| e.provider.as_ref())
                .filter(|p| p.api_key.is_some())
                .map(|p| provider_key_variable(&b.name, &p.name))
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The complete bootstrap.
pub fn bootstrap(plan: &Plan, options: &OutputOptions) -> Value {
    let router = router_config(plan);
    let mut clusters: Vec<Value> = plan
        .backends
        .iter()
        .map(|b| backend_cluster(b, plan, options))
        .collect();
    clusters.extend(plan.services.values().map(|s| {
        json!({
            "name": s.cluster,
            "type": "STRICT_DNS",
            "connect_timeout": DEFAULT_CONNECT_TIMEOUT.to_envoy(),
            "load_assignment": {"cluster_name": s.cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": socket_address(&s.address.host, s.address.port)
            }}]}]},
        })
    }));
    let mut listeners = vec![listener(plan, &router, options)];
    if let Some(port) = options.stats_port {
        listeners.push(stats_listener(port, options));
        clusters.push(admin_cluster(options));
    }
    let mut bootstrap = json!({
        "admin": {"address": socket_address(&options.admin_address, options.admin_port)},
        "static_resources": {
            "listeners": listeners,
            "clusters": clusters,
        },
        "stats_config": stats_config(plan.metrics.naming),
    });
    let mut overload = plan
        .memory_limit_bytes
        .map(overload_manager)
        .unwrap_or_else(|| json!({"resource_monitors": []}));
    if let Some(monitors) = overload["resource_monitors"].as_array_mut() {
        monitors.push(json!({
            "name": "envoy.resource_monitors.global_downstream_max_connections",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                "max_active_downstream_connections": limits::MAX_DOWNSTREAM_CONNECTIONS,
            },
        }));
    }
    bootstrap["overload_manager"] = overload;
    bootstrap
}

fn socket_address(host: &str, port: u16) -> Value {
    json!({"socket_address": {"address": host, "port_value": port}})
}

/// A `envoy.filters.http.wasm` filter entry; `env_keys` are the Envoy environment variables
/// its VM may read (the provider keys, see [`host_env_keys`]).
pub fn wasm_filter(
    filter: &WasmFilter,
    configuration: &str,
    env_keys: &[String],
    options: &OutputOptions,
) -> Value {
    let mut wasm = json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": filter.name,
                "root_id": filter.root_id,
                "vm_config": {
                    "vm_id": VM_ID,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": format!("{}/{}", options.wasm_dir.trim_end_matches('/'), filter.module)}},
                },
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
                // The filters pause on request headers to read the body; without this Envoy
                // never resumes them.
                "allow_on_headers_stop_iteration": true,
                // A trap costs the requests until Envoy reloads the VM, not the worker for good
                // (FAIL_CLOSED) nor a request let through unfiltered (FAIL_OPEN): measured in
                // integration/host/tests/differential.rs.
                "failure_policy": "FAIL_RELOAD",
            },
        },
    });
    if !env_keys.is_empty() {
        wasm["typed_config"]["config"]["vm_config"]["environment_variables"] =
            json!({"host_env_keys": env_keys});
    }
    wasm
}

fn listener(plan: &Plan, router: &RouterConfig, options: &OutputOptions) -> Value {
    let mut http_filters = Vec::new();
    // First: it reads the client's accept-encoding before anything else, and compresses last,
    // after the pipeline has read the identity answer.
    if options.compression {
        http_filters.push(super::compression::filter());
    }
    http_filters.extend(client_auth_filters(plan));
    let configs = downstream_plugin_configs(plan, router);
    let env_keys = host_env_keys(plan);
    for (filter, configuration) in downstream_filters(&configs, options) {
        http_filters.push(wasm_filter(&filter, configuration, &env_keys, options));
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        // No x-envoy-* headers to providers (x-envoy-original-path would tell them the
        // client's path) nor to clients.
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", "suppress_envoy_headers": true},
    }));
    let mut hcm = hardened_hcm("tollgate", options);
    hcm["stream_idle_timeout"] = json!(stream_idle_timeout(plan).to_envoy());
    hcm["route_config"] = route_config(plan, router, options);
    if plan.jwt.is_some() || plan.route_policies.values().any(|p| p.api_keys.is_some()) {
        hcm["local_reply_config"] = auth_local_replies();
    }
    hcm["http_filters"] = json!(http_filters);
    if let Some(log) =
        super::metrics_section::access_log(super::metrics_section::section(plan).as_ref())
    {
        hcm["access_log"] = log;
    }
    json!({
        "name": "tollgate",
        "address": socket_address(&options.listen_address, options.listen_port),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }]}],
    })
}

/// Limits of the clients' side of every listener; the reasons are in FIELDS.md ("Listener").
pub mod limits {
    use crate::duration::Duration;

    /// Time a client has to send its whole request headers (slowloris).
    pub const REQUEST_HEADERS_TIMEOUT: Duration = Duration::seconds(10);
    /// Floor of the stream idle timeout: the guide's streaming timeout. It is raised to the
    /// longest route timeout so that a slow provider never hits it before its route timeout.
    pub const MIN_STREAM_IDLE_TIMEOUT: Duration = crate::plan::DEFAULT_ROUTE_TIMEOUT;
    /// Idle client connections are closed after this long.
    pub const CONNECTION_IDLE_TIMEOUT: Duration = Duration::seconds(3600);
    /// Largest request header block, KiB.
    pub const MAX_REQUEST_HEADERS_KB: u32 = 32;
    /// Most headers in one request.
    pub const MAX_HEADERS_COUNT: u32 = 100;
    /// Streams one HTTP/2 client connection may have open at once.
    pub const MAX_CONCURRENT_STREAMS: u32 = 100;
    /// Requests served on one client connection before Envoy asks the client to reconnect.
    pub const MAX_REQUESTS_PER_CONNECTION: u32 = 1000;
    /// HTTP/2 flow-control windows (Envoy's edge recommendation).
    pub const INITIAL_STREAM_WINDOW_SIZE: u32 = 65_536;
    /// See [`INITIAL_STREAM_WINDOW_SIZE`].
    pub const INITIAL_CONNECTION_WINDOW_SIZE: u32 = 1_048_576;
    /// Client connections open at once, all listeners together (Envoy's global connection
    /// limit; past it new connections are closed at accept).
    pub const MAX_DOWNSTREAM_CONNECTIONS: u64 = 20_000;
    /// The `server` header of every answer (the provider's is replaced).
    pub const SERVER_NAME: &str = "tollgate";
}

/// The HTTP connection manager settings every listener facing clients shares: client address
/// from the connection (plus trusted proxies), timeouts and size limits against slow or
/// oversized requests, and paths normalised before any route or filter reads them.
fn hardened_hcm(stat_prefix: &str, options: &OutputOptions) -> Value {
    json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "use_remote_address": true,
        "xff_num_trusted_hops": options.xff_num_trusted_hops,
        "request_headers_timeout": limits::REQUEST_HEADERS_TIMEOUT.to_envoy(),
        "max_request_headers_kb": limits::MAX_REQUEST_HEADERS_KB,
        "common_http_protocol_options": {
            "idle_timeout": limits::CONNECTION_IDLE_TIMEOUT.to_envoy(),
            "max_headers_count": limits::MAX_HEADERS_COUNT,
            "max_requests_per_connection": limits::MAX_REQUESTS_PER_CONNECTION,
            "headers_with_underscores_action": "REJECT_REQUEST",
        },
        "http2_protocol_options": {
            "max_concurrent_streams": limits::MAX_CONCURRENT_STREAMS,
            "initial_stream_window_size": limits::INITIAL_STREAM_WINDOW_SIZE,
            "initial_connection_window_size": limits::INITIAL_CONNECTION_WINDOW_SIZE,
        },
        "normalize_path": true,
        "merge_slashes": true,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "server_header_transformation": "OVERWRITE",
        "server_name": limits::SERVER_NAME,
    })
}

/// The longest route timeout, and at least [`limits::MIN_STREAM_IDLE_TIMEOUT`]: a provider may
/// think (reasoning models) or pause between chunks for minutes, and the route timeout is
/// what bounds a request, not the idle timer.
fn stream_idle_timeout(plan: &Plan) -> crate::duration::Duration {
    plan.routes
        .iter()
        .flat_map(|r| r.rules.iter().map(|rule| rule.timeout))
        .chain(std::iter::once(limits::MIN_STREAM_IDLE_TIMEOUT))
        .max()
        .unwrap_or(limits::MIN_STREAM_IDLE_TIMEOUT)
}

/// Name of the static cluster the stats listener forwards to (Envoy's own admin).
pub const ADMIN_CLUSTER: &str = "tollgate-admin";

/// Paths of admin the stats listener serves; anything else is a 404 there.
pub const STATS_PATHS: [&str; 2] = ["/stats/prometheus", "/ready"];

/// The stats listener Prometheus scrapes, so admin (config_dump, quitquitquit) stays on
/// loopback: `GET /stats/prometheus` and `GET /ready` forwarded to admin, 404 for the rest.
fn stats_listener(port: u16, options: &OutputOptions) -> Value {
    let mut routes: Vec<Value> = STATS_PATHS
        .iter()
        .map(|path| {
            json!({
                "name": format!("admin{path}"),
                "match": {"path": path, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
                "route": {"cluster": ADMIN_CLUSTER, "timeout": "10s"},
            })
        })
        .collect();
    routes.push(json!({
        "name": "not-served",
        "match": {"prefix": "/"},
        "direct_response": {"status": 404, "body": {"inline_string": "not found\n"}},
    }));
    let mut hcm = hardened_hcm("tollgate_stats", options);
    hcm["route_config"] = json!({
        "name": "tollgate-stats",
        "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": routes}],
    });
    hcm["http_filters"] = json!([{
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }]);
    json!({
        "name": "tollgate-stats",
        "address": socket_address(&options.stats_address, port),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }]}],
    })
}

/// The static cluster of Envoy's own admin endpoint (loopback when admin listens on any address).
fn admin_cluster(options: &OutputOptions) -> Value {
    let host = match options.admin_address.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        other => other,
    };
    json!({
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": socket_address(host, options.admin_port)
        }}]}]},
    })
}

/// Filter names the routes' `typed_per_filter_config` refer to.
pub mod auth_filter {
    /// Envoy's JWT filter.
    pub const JWT: &str = "envoy.filters.http.jwt_authn";
    /// Envoy's static API key filter.
    pub const API_KEY: &str = "envoy.filters.http.api_key_auth";
    /// Removes the client-sent client header before authentication sets it.
    pub const STRIP_CLIENT: &str = "envoy.filters.http.header_mutation";
}

/// The client authentication filters, before the pipeline: strip a client-sent
/// `x-tollgate-client`, then JWT and API keys, each acting only on the routes whose
/// `typed_per_filter_config` names it (the HTTPRoutes the policies target).
fn client_auth_filters(plan: &Plan) -> Vec<Value> {
    let api_keys = plan.route_policies.values().any(|p| p.api_keys.is_some());
    let mut filters = vec![json!({
        "name": auth_filter::STRIP_CLIENT,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"remove": CLIENT_HEADER}]},
        },
    })];
    if let Some(providers) = &plan.jwt {
        filters.push(jwt_authn(plan, providers));
    }
    if api_keys {
        // Disabled by default: only a route's ApiKeyAuthPerRoute enables it.
        filters.push(json!({
            "name": auth_filter::API_KEY,
            "disabled": true,
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth"},
        }));
    }
    filters
}

/// True when envoy.yaml holds static client API keys (Envoy's api_key_auth takes them
/// inline only; its admin `/config_dump` redacts them).
pub fn holds_client_keys(plan: &Plan) -> bool {
    plan.route_policies.values().any(|p| p.api_keys.is_some())
}

/// The client header (budgets key on it), set from the JWT's `sub` or the API key's client.
const CLIENT_HEADER: &str = tollgate_core::names::header::CLIENT;

/// jwt_authn with one requirement per JWT TrafficPolicy and no rules: a route is verified
/// only when its `typed_per_filter_config` names its requirement, so other routes (an OpenAI
/// SDK sending `Authorization: Bearer <its own key>`) are untouched.
fn jwt_authn(plan: &Plan, providers: &[crate::model::traffic_policy::JwtProvider]) -> Value {
    let mut by_name = serde_json::Map::new();
    for provider in providers {
        let mut config = json!({
            "issuer": provider.issuer,
            "local_jwks": {"inline_string": provider.jwks.local.inline},
            "payload_in_metadata": JWT_PAYLOAD_METADATA_KEY,
            "forward": true,
            "claim_to_headers": [{"header_name": CLIENT_HEADER, "claim_name": "sub"}],
        });
        if !provider.audiences.is_empty() {
            config["audiences"] = json!(provider.audiences);
        }
        by_name.insert(provider.name.clone(), config);
    }
    let requirements: serde_json::Map<String, Value> = plan
        .jwt_requirements
        .iter()
        .map(|(name, requirement)| {
            let mut any: Vec<Value> = requirement
                .providers
                .iter()
                .map(|p| json!({"provider_name": p}))
                .collect();
            if requirement.optional {
                // Without a valid token the request passes, anonymous: an OpenAI SDK always
                // sends `Authorization: Bearer <its key>`, which is no JWT. A bad token gains
                // nothing over none (no claims, no client header).
                any.push(json!({"allow_missing_or_failed": {}}));
            }
            let requirement = match any.as_slice() {
                [one] => one.clone(),
                _ => json!({"requires_any": {"requirements": any}}),
            };
            (name.clone(), requirement)
        })
        .collect();
    json!({
        "name": auth_filter::JWT,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": by_name,
            "requirement_map": requirements,
        },
    })
}

/// The per-route configuration of the authentication filters for one HTTPRoute's routes
/// (empty: no policy targets the route).
fn route_auth(plan: &Plan, route: &RoutePlan) -> serde_json::Map<String, Value> {
    let mut config = serde_json::Map::new();
    let Some(policies) = plan.route_policies.get(&route.name) else {
        return config;
    };
    if let Some(requirement) = &policies.jwt {
        config.insert(
            auth_filter::JWT.to_string(),
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
                "requirement_name": requirement,
            }),
        );
    }
    if let Some(keys) = &policies.api_keys {
        let credentials: Vec<Value> = keys
            .clients
            .iter()
            .map(|(client, key)| json!({"key": key.expose(), "client": client}))
            .collect();
        config.insert(
            auth_filter::API_KEY.to_string(),
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuthPerRoute",
                "credentials": credentials,
                // `authorization` takes `Bearer <key>` as the OpenAI SDKs send it.
                "key_sources": [{"header": keys.header}],
                // The key stops here; the client's name goes on for budgets.
                "forwarding": {"header": CLIENT_HEADER, "hide_credentials": true},
            }),
        );
    }
    config
}

/// The authentication filters' 401 and 403 (plain text from Envoy) as OpenAI-format errors:
/// they answer before the pipeline, whose response path never sees them.
fn auth_local_replies() -> Value {
    let mapper = |status: u16, kind: &str, code: &str| {
        json!({
            // Only Envoy's own replies: the pipeline marks the requests it answered itself.
            "filter": {"and_filter": {"filters": [
                {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": status, "runtime_key": "tollgate.local_reply.unused"}}}},
                {"header_filter": {"header": {"name": tollgate_core::names::header::LOCAL_REPLY, "present_match": true, "invert_match": true}}},
            ]}},
            "body_format_override": {"json_format": {"error": {
                "message": "%LOCAL_REPLY_BODY%",
                "type": kind,
                "param": null,
                "code": code,
            }}},
        })
    };
    json!({"mappers": [
        mapper(401, "authentication_error", "invalid_api_key"),
        mapper(403, "permission_error", "permission_denied"),
    ]})
}

/// Envoy buffers at most this much of a request body; twice the router's cap, so an oversized
/// body reaches the router, which answers in the OpenAI error format rather than Envoy's 413.
pub fn request_body_buffer_limit(router: &RouterConfig) -> u64 {
    (router.max_request_bytes as u64).saturating_mul(2)
}

/// (precedence class, path length, header matches, HTTPRoute index, route): the keys routes
/// are ordered by.
type SortableRoute = (u8, usize, usize, usize, Value);

fn route_config(plan: &Plan, router: &RouterConfig, options: &OutputOptions) -> Value {
    // Virtual hosts by host-name set; routes in Gateway API precedence order inside each.
    let mut hosts: BTreeMap<Vec<String>, Vec<SortableRoute>> = BTreeMap::new();
    let natives = super::native_upstream::native_backends(plan);
    for (route_index, route) in plan.routes.iter().enumerate() {
        let mut per_filter = route_auth(plan, route);
        if let Some(compressor) = options
            .compression
            .then(|| super::compression::per_route(route.scope.kind))
            .flatten()
        {
            per_filter.insert(super::compression::FILTER.to_string(), compressor);
        }
        for (class, length, headers, mut entry) in route_entries(route, router, &natives) {
            if !per_filter.is_empty() {
                entry["typed_per_filter_config"] = Value::Object(per_filter.clone());
            }
            hosts.entry(route.hostnames.clone()).or_default().push((
                class,
                length,
                headers,
                route_index,
                entry,
            ));
        }
    }
    let virtual_hosts: Vec<Value> = hosts
        .into_iter()
        .map(|(domains, mut routes)| {
            // Gateway API precedence: Exact first, then longer prefixes, then regexes; more
            // header matches first; input order breaks ties.
            routes.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(b.1.cmp(&a.1))
                    .then(b.2.cmp(&a.2))
                    .then(a.3.cmp(&b.3))
            });
            let name = if domains == ["*"] {
                "tollgate".to_string()
            } else {
                domains.join(",")
            };
            json!({
                "name": name,
                "domains": domains,
                "request_body_buffer_limit": request_body_buffer_limit(router),
                "routes": routes.into_iter().map(|r| r.4).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"name": "tollgate", "virtual_hosts": virtual_hosts})
}

/// (precedence class, path length, header count, route) for every match of every rule.
fn route_entries(
    route: &RoutePlan,
    router: &RouterConfig,
    natives: &BTreeMap<String, super::native_upstream::NativeBackend>,
) -> Vec<(u8, usize, usize, Value)> {
    let mut entries = Vec::new();
    for (r, rule) in route.rules.iter().enumerate() {
        let everything = MatchPlan {
            path_type: PathMatchType::PathPrefix,
            path: "/".to_string(),
            headers: vec![],
        };
        let matches = if rule.matches.is_empty() {
            vec![everything]
        } else {
            rule.matches.clone()
        };
        for (m, plan) in matches.iter().enumerate() {
            let value = &plan.path;
            let (class, mut matcher) = match plan.path_type {
                PathMatchType::Exact => (0, json!({"path": value})),
                PathMatchType::PathPrefix if value == "/" => (1, json!({"prefix": "/"})),
                // Gateway API prefixes match whole segments, as path_separated_prefix does.
                PathMatchType::PathPrefix => (
                    1,
                    json!({"path_separated_prefix": value.trim_end_matches('/')}),
                ),
                PathMatchType::RegularExpression => (2, json!({"safe_regex": {"regex": value}})),
            };
            if !plan.headers.is_empty() {
                let headers: Vec<Value> = plan
                    .headers
                    .iter()
                    .map(|(name, match_type, value)| {
                        let name = if name == BACKEND_HEADER_PLACEHOLDER {
                            router.backend_header.as_str()
                        } else {
                            name.as_str()
                        };
                        let string_match = match match_type {
                            HeaderMatchType::Exact => json!({"exact": value}),
                            HeaderMatchType::RegularExpression => {
                                json!({"safe_regex": {"regex": value}})
                            }
                        };
                        json!({"name": name, "string_match": string_match})
                    })
                    .collect();
                matcher["headers"] = json!(headers);
            }
            let mut entry = json!({
                "name": format!("{}/{r}/{m}", route.name),
                "match": matcher,
                "route": route_action(rule),
            });
            if let Some(native) = super::native_upstream::rule_backend(rule, natives) {
                super::native_upstream::apply(&mut entry, native, &route.scope.operations);
            }
            entries.push((class, value.len(), plan.headers.len(), entry));
        }
    }
    entries
}

fn route_action(rule: &RulePlan) -> Value {
    let mut retry_on = vec!["5xx", "connect-failure", "reset"];
    if !rule.retry_codes.is_empty() {
        retry_on.push("retriable-status-codes");
    }
    let mut retry_policy = json!({
        "retry_on": retry_on.join(","),
        "num_retries": rule.num_retries,
        // Each retry goes to the next priority group, and to another host.
        "retry_priority": {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        },
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
        }],
        "host_selection_retry_max_attempts": 3,
    });
    if !rule.retry_codes.is_empty() {
        retry_policy["retriable_status_codes"] = json!(rule.retry_codes);
    }
    if let Some(per_try) = rule.per_try_timeout {
        retry_policy["per_try_timeout"] = json!(per_try.to_envoy());
    }
    if let Some(backoff) = rule.retry_backoff {
        retry_policy["retry_back_off"] = json!({"base_interval": backoff.to_envoy()});
    }
    let mut action = json!({"timeout": rule.timeout.to_envoy(), "retry_policy": retry_policy});
    match rule.backends.as_slice() {
        [(name, _)] => action["cluster"] = json!(name),
        many => {
            action["weighted_clusters"] = json!({"clusters": many.iter().map(|(name, weight)| json!({"name": name, "weight": weight})).collect::<Vec<_>>()});
        }
    }
    action
}

fn backend_cluster(backend: &BackendPlan, plan: &Plan, options: &OutputOptions) -> Value {
    let settings = &backend.connection;
    let lb_policy = match backend.load_balancer.as_ref().map(|lb| lb.policy) {
        Some(LbPolicy::LeastRequest) => "LEAST_REQUEST",
        Some(LbPolicy::Random) => "RANDOM",
        Some(LbPolicy::RoundRobin) | None => "ROUND_ROBIN",
    };
    let endpoints: Vec<Value> = backend
        .priorities
        .iter()
        .enumerate()
        .map(|(priority, group)| json!({"priority": priority, "lb_endpoints": group.iter().map(lb_endpoint).collect::<Vec<_>>()}))
        .collect();
    let mut cluster = json!({
        "name": backend.name,
        "type": "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": settings.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT).to_envoy(),
        "lb_policy": lb_policy,
        "load_assignment": {"cluster_name": backend.name, "endpoints": endpoints},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": http_protocol_options(backend, plan, options),
        },
    });
    if let Some(rate) = plan.dns.refresh_rate {
        cluster["dns_refresh_rate"] = json!(rate.to_envoy());
    }
    if let Some(respect) = plan.dns.respect_dns_ttl {
        cluster["respect_dns_ttl"] = json!(respect);
    }
    let tls_matches: Vec<Value> = backend
        .priorities
        .iter()
        .flatten()
        .filter(|e| e.address.tls)
        .map(|e| {
            json!({
                "name": e.name,
                "match": {"tollgate_tls": e.name},
                "transport_socket": upstream_tls(&e.address.host, settings.http2.is_some(), options),
            })
        })
        .collect();
    if !tls_matches.is_empty() {
        cluster["transport_socket_matches"] = json!(tls_matches);
    }
    let thresholds: Vec<(&str, Option<u32>)> = vec![
        ("max_connections", settings.max_connections),
        ("max_pending_requests", settings.max_pending_requests),
        ("max_requests", settings.max_requests),
        ("max_retries", settings.max_retries),
    ];
    if thresholds.iter().any(|(_, v)| v.is_some()) {
        let mut threshold = json!({"priority": "DEFAULT"});
        for (field, value) in thresholds {
            if let Some(value) = value {
                threshold[field] = json!(value);
            }
        }
        cluster["circuit_breakers"] = json!({"thresholds": [threshold]});
    }
    if let Some(keepalive) = &settings.keepalive {
        let mut tcp = json!({});
        if let Some(time) = keepalive.keepalive_time {
            tcp["keepalive_time"] = json!(time.whole_seconds());
        }
        if let Some(interval) = keepalive.keepalive_interval {
            tcp["keepalive_interval"] = json!(interval.whole_seconds());
        }
        if let Some(probes) = keepalive.keepalive_probes {
            tcp["keepalive_probes"] = json!(probes);
        }
        cluster["upstream_connection_options"] = json!({"tcp_keepalive": tcp});
    }
    if let Some(outlier) = &settings.outlier {
        let mut detection = json!({});
        if let Some(n) = outlier.consecutive5xx_errors {
            detection["consecutive_5xx"] = json!(n);
        }
        if let Some(interval) = outlier.interval {
            detection["interval"] = json!(interval.to_envoy());
        }
        if let Some(base) = outlier.base_ejection_time {
            detection["base_ejection_time"] = json!(base.to_envoy());
        }
        if let Some(percent) = outlier.max_ejection_percent {
            detection["max_ejection_percent"] = json!(percent);
        }
        if let Some(split) = outlier.split_external_local_origin_errors {
            detection["split_external_local_origin_errors"] = json!(split);
        }
        cluster["outlier_detection"] = detection;
    }
    if let Some(check) = backend
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.health_check.as_ref())
    {
        let mut health_check = json!({
            "timeout": check.check.timeout.to_envoy(),
            "interval": check.check.interval.to_envoy(),
            // Without traffic Envoy would check only every 60 s (its no_traffic_interval), and a
            // host failed by its first check (often timed out while Envoy was still loading the
            // wasm modules) would stay failed that long: check at the configured interval.
            "no_traffic_interval": check.check.interval.to_envoy(),
            "healthy_threshold": check.check.healthy_threshold,
            "unhealthy_threshold": check.check.unhealthy_threshold,
        });
        match &check.path {
            Some(path) => {
                let mut http = json!({"path": path});
                if let Some(host) = &check.host {
                    http["host"] = json!(host);
                }
                if settings.http2.is_some() {
                    http["codec_client_type"] = json!("HTTP2");
                }
                health_check["http_health_check"] = http;
            }
            None => health_check["tcp_health_check"] = json!({}),
        }
        cluster["health_checks"] = json!([health_check]);
    }
    cluster
}

fn lb_endpoint(endpoint: &EndpointPlan) -> Value {
    let mut metadata = json!({"tollgate": {"provider": endpoint.name}});
    if endpoint.address.tls {
        metadata["envoy.transport_socket_match"] = json!({"tollgate_tls": endpoint.name});
    }
    json!({
        "endpoint": {"address": socket_address(&endpoint.address.host, endpoint.address.port), "hostname": endpoint.address.host},
        "metadata": {"filter_metadata": metadata},
    })
}

fn upstream_tls(sni: &str, http2: bool, options: &OutputOptions) -> Value {
    let alpn = if http2 {
        json!(["h2"])
    } else {
        json!(["http/1.1"])
    };
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": {
                "alpn_protocols": alpn,
                "validation_context": {
                    "trusted_ca": {"filename": options.ca_file},
                    "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": sni}}],
                },
            },
        },
    })
}

fn http_protocol_options(backend: &BackendPlan, plan: &Plan, options: &OutputOptions) -> Value {
    let settings = &backend.connection;
    let mut protocol = json!({"@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"});
    let mut common = json!({});
    if let Some(n) = settings.max_requests_per_connection {
        common["max_requests_per_connection"] = json!(n);
    }
    if let Some(idle) = settings.idle_timeout {
        common["idle_timeout"] = json!(idle.to_envoy());
    }
    if common.as_object().is_some_and(|c| !c.is_empty()) {
        protocol["common_http_protocol_options"] = common;
    }
    protocol["explicit_http_config"] = match &settings.http2 {
        Some(h2) => {
            let mut options = json!({});
            if let Some(n) = h2.max_concurrent_streams {
                options["max_concurrent_streams"] = json!(n);
            }
            if let Some(n) = h2.initial_stream_window_size {
                options["initial_stream_window_size"] = json!(n);
            }
            if let Some(n) = h2.initial_connection_window_size {
                options["initial_connection_window_size"] = json!(n);
            }
            json!({"http2_protocol_options": options})
        }
        None => json!({"http_protocol_options": {}}),
    };
    // Backends whose providers all speak the client's format are served by Envoy alone.
    let native = super::native_upstream::native_backends(plan).contains_key(&backend.name);
    if backend.is_ai && !native {
        let adapter =
            serde_json::to_string(&adapter_config(backend)).unwrap_or_else(|_| "{}".to_string());
        protocol["http_filters"] = json!([
            wasm_filter(&ADAPTER_FILTER, &adapter, &host_env_keys(plan), options),
            {
                "name": "envoy.filters.http.upstream_codec",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"},
            },
        ]);
    }
    protocol
}

/// Stats tags that turn wasm metric names into Prometheus labels, and histogram buckets.
///
/// The metrics stage encodes its labels Istio's way (`provider=.=openai;.;model=.=gpt-4.1;.;name`,
/// `tollgate_core::names::metric`): one `[.;](label=\.=(.*?);\.;)` regex per label of the
/// naming in use, in label order. Other stages' counters use the dotted style
/// (`name.result.hit`): [`METRIC_TAGS`] not already labels of the naming keep their
/// `.tag.value` regexes (a tag name may appear only once in stats_tags).
/// Histogram buckets: one entry per histogram of the naming, matched on the name's suffix.
pub fn stats_config(naming: tollgate_core::config::metrics::MetricNaming) -> Value {
    use tollgate_core::names::metric;
    let names = naming.table();
    let mut labels: Vec<&str> = metric::TAGS.iter().map(|t| names.tag_name(*t)).collect();
    let mut tags: Vec<Value> = labels
        .iter()
        .map(|label| json!({"tag_name": label, "regex": metric::tag_regex(label)}))
        .collect();
    for tag in METRIC_TAGS {
        if !labels.contains(&tag) {
            labels.push(tag);
            tags.push(
                json!({"tag_name": tag, "regex": format!(r"^wasmcustom\..*?(\.{tag}\.([^.]+))")}),
            );
        }
    }
    let buckets: Vec<Value> = names
        .defs
        .iter()
        .filter(|d| d.kind == metric::Kind::Histogram)
        .map(|d| json!({"match": {"suffix": d.name}, "buckets": d.buckets}))
        .collect();
    json!({
        "use_all_default_tags": true,
        "stats_tags": tags,
        "histogram_bucket_settings": buckets,
    })
}

/// Sheds load before the container's memory limit kills the proxy: shrink the heap at 90 %,
/// stop accepting requests at 95 %.
fn overload_manager(limit_bytes: u128) -> Value {
    let trigger = |threshold: f64| json!([{"name": "envoy.resource_monitors.fixed_heap", "threshold": {"value": threshold}}]);
    json!({
        "refresh_interval": "0.25s",
        "resource_monitors": [{
            "name": "envoy.resource_monitors.fixed_heap",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                "max_heap_size_bytes": u64::try_from(limit_bytes).unwrap_or(u64::MAX),
            },
        }],
        "actions": [
            {"name": "envoy.overload_actions.shrink_heap", "triggers": trigger(0.90)},
            {"name": "envoy.overload_actions.stop_accepting_requests", "triggers": trigger(0.95)},
        ],
    })
}
