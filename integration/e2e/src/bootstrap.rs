//! One typed builder for the Envoy 1.40 bootstraps that tests and benchmarks write by hand
//! (configs the generator does not make: a module's contract with Envoy tested on its own, the
//! differential test's fixture, the benchmark's mock). Its surface is what those configs use.
//!
//! Everything is on 127.0.0.1. Each listener is one HTTP connection manager with one virtual
//! host (`*`) and the router filter last; a cluster with upstream filters gets the upstream
//! codec last. [`Bootstrap::render`] writes JSON, which Envoy reads from a `.yaml` file as it
//! does YAML (JSON is YAML), so the text goes to [`crate::Envoy::start`] as it is.
//!
//! ```no_run
//! use tollgate_e2e::bootstrap::{Bootstrap, Cluster, Listener, Route, Wasm};
//! use tollgate_e2e::{free_port, wasm_path, Envoy};
//! let module = wasm_path("tollgate").unwrap();
//! let config = Bootstrap::new()
//!     .listener(
//!         Listener::new("llm", free_port())
//!             .route(Route::to_cluster("openai", "30s"))
//!             .filter(Wasm::new("tollgate", &module, "router").configuration("{}")),
//!     )
//!     .cluster(Cluster::new("openai").endpoint(8000));
//! let envoy = Envoy::start(&config.render()).unwrap();
//! ```

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

const LOOPBACK: &str = "127.0.0.1";

fn socket_address(port: u16) -> Value {
    json!({"socket_address": {"address": LOOPBACK, "port_value": port}})
}

/// An Envoy bootstrap: an admin endpoint, listeners and clusters.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    admin_port: u16,
    stats_tags: Vec<(String, String)>,
    listeners: Vec<Listener>,
    clusters: Vec<Cluster>,
}

impl Bootstrap {
    /// A bootstrap whose admin endpoint takes any free port (read back by [`crate::Envoy`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The admin endpoint on this port instead.
    pub fn admin_port(mut self, port: u16) -> Self {
        self.admin_port = port;
        self
    }

    /// A stats tag extracted from metric names (`stats_config.stats_tags`).
    pub fn stats_tag(mut self, name: &str, regex: &str) -> Self {
        self.stats_tags.push((name.to_string(), regex.to_string()));
        self
    }

    /// Adds a listener.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Adds a cluster.
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// The bootstrap as Envoy's JSON.
    pub fn to_value(&self) -> Value {
        let mut bootstrap = json!({
            "admin": {"address": socket_address(self.admin_port)},
            "static_resources": {
                "listeners": self.listeners.iter().map(Listener::to_value).collect::<Vec<_>>(),
            },
        });
        if !self.clusters.is_empty() {
            bootstrap["static_resources"]["clusters"] =
                self.clusters.iter().map(Cluster::to_value).collect();
        }
        if !self.stats_tags.is_empty() {
            let tags: Vec<Value> = self
                .stats_tags
                .iter()
                .map(|(name, regex)| json!({"tag_name": name, "regex": regex}))
                .collect();
            bootstrap["stats_config"] = json!({ "stats_tags": tags });
        }
        bootstrap
    }

    /// The bootstrap as text for a config file (JSON, which Envoy's YAML loader reads).
    pub fn render(&self) -> String {
        format!("{:#}", self.to_value())
    }
}

/// A listener: one HTTP connection manager whose stat prefix and virtual host are its name.
#[derive(Debug, Clone)]
pub struct Listener {
    name: String,
    port: u16,
    routes: Vec<Route>,
    filters: Vec<HttpFilter>,
}

impl Listener {
    /// A listener on 127.0.0.1:`port`.
    pub fn new(name: &str, port: u16) -> Self {
        Self {
            name: name.to_string(),
            port,
            routes: Vec::new(),
            filters: Vec::new(),
        }
    }

    /// Adds a route; routes match in the order they are added.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Adds an HTTP filter before the router (which is always last).
    pub fn filter(mut self, filter: impl Into<HttpFilter>) -> Self {
        self.filters.push(filter.into());
        self
    }

    fn to_value(&self) -> Value {
        let mut http_filters: Vec<Value> = self.filters.iter().map(|f| f.0.clone()).collect();
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }));
        let routes: Vec<Value> = self.routes.iter().map(Route::to_value).collect();
        json!({
            "name": self.name,
            "address": socket_address(self.port),
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": self.name,
                    "route_config": {"virtual_hosts": [{"name": self.name, "domains": ["*"], "routes": routes}]},
                    "http_filters": http_filters,
                },
            }]}],
        })
    }
}

/// One route of a listener's virtual host: a path prefix (`/` unless set), optionally header
/// conditions, and either a cluster or a direct response.
#[derive(Debug, Clone)]
pub struct Route {
    name: Option<String>,
    prefix: String,
    headers: Vec<Value>,
    action: Action,
    response_headers: Vec<(String, String)>,
    per_filter_config: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
enum Action {
    Cluster {
        cluster: String,
        timeout: String,
        retry: Option<Retry>,
    },
    Direct {
        status: u16,
        body: String,
    },
}

impl Route {
    fn new(action: Action) -> Self {
        Self {
            name: None,
            prefix: "/".to_string(),
            headers: Vec::new(),
            action,
            response_headers: Vec::new(),
            per_filter_config: BTreeMap::new(),
        }
    }

    /// Forwards to `cluster`, with Envoy's request `timeout` (e.g. `"30s"`).
    pub fn to_cluster(cluster: &str, timeout: &str) -> Self {
        Self::new(Action::Cluster {
            cluster: cluster.to_string(),
            timeout: timeout.to_string(),
            retry: None,
        })
    }

    /// Answers from Envoy itself with `status` and `body`.
    pub fn direct(status: u16, body: &str) -> Self {
        Self::new(Action::Direct {
            status,
            body: body.to_string(),
        })
    }

    /// The route's name (what `xds.route_name` reads).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Matches paths starting with `prefix` instead of `/`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Matches only requests whose header `name` is exactly `value`.
    pub fn header_exact(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push(json!({"name": name, "string_match": {"exact": value}}));
        self
    }

    /// Matches only requests that have the header `name`.
    pub fn header_present(mut self, name: &str) -> Self {
        self.headers
            .push(json!({"name": name, "present_match": true}));
        self
    }

    /// Retries a cluster route by `retry` (no effect on a direct response).
    pub fn retry(mut self, retry: Retry) -> Self {
        if let Action::Cluster { retry: r, .. } = &mut self.action {
            *r = Some(retry);
        }
        self
    }

    /// Sets a response header (replacing one the answer has).
    pub fn response_header(mut self, name: &str, value: &str) -> Self {
        self.response_headers
            .push((name.to_string(), value.to_string()));
        self
    }

    /// The per-route config of the HTTP filter `filter` (`typed_per_filter_config`), with its
    /// `@type`.
    pub fn per_filter_config(mut self, filter: &str, config: Value) -> Self {
        self.per_filter_config.insert(filter.to_string(), config);
        self
    }

    fn to_value(&self) -> Value {
        let mut route = json!({"match": {"prefix": self.prefix}});
        if let Some(name) = &self.name {
            route["name"] = json!(name);
        }
        if !self.headers.is_empty() {
            route["match"]["headers"] = json!(self.headers);
        }
        match &self.action {
            Action::Cluster {
                cluster,
                timeout,
                retry,
            } => {
                route["route"] = json!({"cluster": cluster, "timeout": timeout});
                if let Some(retry) = retry {
                    route["route"]["retry_policy"] = retry.to_value();
                }
            }
            Action::Direct { status, body } => {
                route["direct_response"] =
                    json!({"status": status, "body": {"inline_string": body}});
            }
        }
        if !self.response_headers.is_empty() {
            route["response_headers_to_add"] = self
                .response_headers
                .iter()
                .map(|(key, value)| {
                    json!({
                        "header": {"key": key, "value": value},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    })
                })
                .collect();
        }
        if !self.per_filter_config.is_empty() {
            route["typed_per_filter_config"] = json!(self.per_filter_config);
        }
        route
    }
}

/// The failover retry policy of the guide's priority groups: up to 3 retries (10 s each) on
/// 5xx, reset, connect failure and 429, each to the next priority group
/// (`previous_priorities`).
#[derive(Debug, Clone, Default)]
pub struct Retry {
    skip_previous_hosts: bool,
}

impl Retry {
    /// The policy; the same host may be tried again.
    pub fn across_priorities() -> Self {
        Self::default()
    }

    /// Never retries a host already tried (`previous_hosts`).
    pub fn skipping_previous_hosts(mut self) -> Self {
        self.skip_previous_hosts = true;
        self
    }

    fn to_value(&self) -> Value {
        let mut policy = json!({
            "retry_on": "5xx,reset,connect-failure,retriable-status-codes",
            "retriable_status_codes": [429],
            "num_retries": 3,
            "per_try_timeout": "10s",
            "retry_priority": {
                "name": "envoy.retry_priorities.previous_priorities",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                    "update_frequency": 1,
                },
            },
        });
        if self.skip_previous_hosts {
            policy["retry_host_predicate"] = json!([{
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
            }]);
        }
        policy
    }
}

/// An HTTP filter entry (downstream on a listener or upstream on a cluster).
#[derive(Debug, Clone)]
pub struct HttpFilter(Value);

impl HttpFilter {
    /// Any filter: its name and typed config (with `@type`).
    pub fn typed(name: &str, typed_config: Value) -> Self {
        Self(json!({"name": name, "typed_config": typed_config}))
    }

    /// The buffer filter: reads the whole request (up to `max_request_bytes`) before passing it on.
    pub fn buffer(max_request_bytes: u64) -> Self {
        Self::typed(
            "envoy.filters.http.buffer",
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": max_request_bytes,
            }),
        )
    }

    /// Off unless a route enables it (`disabled: true`).
    pub fn disabled(mut self) -> Self {
        self.0["disabled"] = json!(true);
        self
    }
}

/// What Envoy does with a plugin whose VM failed (a trap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// 503 for every later request of that worker.
    FailClosed,
    /// 503 until Envoy has reloaded the VM.
    FailReload,
}

/// An `envoy.filters.http.wasm` plugin: a module in V8 with its VM id and root id, pausing on
/// headers allowed (`allow_on_headers_stop_iteration`).
#[derive(Debug, Clone)]
pub struct Wasm {
    vm_id: String,
    module: String,
    root_id: String,
    configuration: Option<String>,
    failure_policy: Option<FailurePolicy>,
    env_keys: Vec<String>,
}

impl Wasm {
    /// The plugin `root_id` of the module at `module` in the VM `vm_id`.
    pub fn new(vm_id: &str, module: &Path, root_id: &str) -> Self {
        Self {
            vm_id: vm_id.to_string(),
            module: module.display().to_string(),
            root_id: root_id.to_string(),
            configuration: None,
            failure_policy: None,
            env_keys: Vec::new(),
        }
    }

    /// The plugin configuration (a `StringValue`); none unless set.
    pub fn configuration(mut self, configuration: &str) -> Self {
        self.configuration = Some(configuration.to_string());
        self
    }

    /// The failure policy; Envoy's default (FAIL_CLOSED) unless set.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = Some(policy);
        self
    }

    /// Variables of Envoy's environment the VM may read (`host_env_keys`).
    pub fn env_keys(mut self, keys: &[&str]) -> Self {
        self.env_keys = keys.iter().map(|k| k.to_string()).collect();
        self
    }
}

impl From<Wasm> for HttpFilter {
    fn from(wasm: Wasm) -> Self {
        let mut vm_config = json!({
            "vm_id": wasm.vm_id,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm.module}},
        });
        if !wasm.env_keys.is_empty() {
            vm_config["environment_variables"] = json!({"host_env_keys": wasm.env_keys});
        }
        let mut config = json!({
            "name": format!("{}-{}", wasm.vm_id, wasm.root_id),
            "root_id": wasm.root_id,
            "allow_on_headers_stop_iteration": true,
            "vm_config": vm_config,
        });
        if let Some(configuration) = wasm.configuration {
            config["configuration"] = json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": configuration,
            });
        }
        if let Some(policy) = wasm.failure_policy {
            config["failure_policy"] = json!(match policy {
                FailurePolicy::FailClosed => "FAIL_CLOSED",
                FailurePolicy::FailReload => "FAIL_RELOAD",
            });
        }
        HttpFilter::typed(
            "envoy.filters.http.wasm",
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": config,
            }),
        )
    }
}

/// A STATIC cluster of loopback endpoints, optionally with upstream HTTP filters (HTTP/1.1).
#[derive(Debug, Clone)]
pub struct Cluster {
    name: String,
    connect_timeout: String,
    endpoints: Vec<(u32, u16, Option<String>)>,
    upstream_filters: Vec<HttpFilter>,
}

impl Cluster {
    /// A cluster with a 5 s connect timeout and no endpoints yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            connect_timeout: "5s".to_string(),
            endpoints: Vec::new(),
            upstream_filters: Vec::new(),
        }
    }

    /// Another connect timeout (e.g. `"0.5s"`).
    pub fn connect_timeout(mut self, timeout: &str) -> Self {
        self.connect_timeout = timeout.to_string();
        self
    }

    /// An endpoint 127.0.0.1:`port` in priority 0.
    pub fn endpoint(mut self, port: u16) -> Self {
        self.endpoints.push((0, port, None));
        self
    }

    /// An endpoint 127.0.0.1:`port` in `priority`, named `provider` in the endpoint metadata
    /// the adapter reads (`filter_metadata.tollgate.provider`).
    pub fn provider(mut self, priority: u32, provider: &str, port: u16) -> Self {
        self.endpoints
            .push((priority, port, Some(provider.to_string())));
        self
    }

    /// Adds an upstream HTTP filter (before the upstream codec, which is always last).
    pub fn upstream_filter(mut self, filter: impl Into<HttpFilter>) -> Self {
        self.upstream_filters.push(filter.into());
        self
    }

    fn to_value(&self) -> Value {
        // One locality per priority, in priority order; endpoints keep the order they were added.
        let mut by_priority: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
        for (priority, port, provider) in &self.endpoints {
            let mut endpoint = json!({"endpoint": {"address": socket_address(*port)}});
            if let Some(provider) = provider {
                endpoint["metadata"] =
                    json!({"filter_metadata": {"tollgate": {"provider": provider}}});
            }
            by_priority.entry(*priority).or_default().push(endpoint);
        }
        let localities: Vec<Value> = by_priority
            .into_iter()
            .map(|(priority, lb_endpoints)| {
                json!({"priority": priority, "lb_endpoints": lb_endpoints})
            })
            .collect();
        let mut cluster = json!({
            "name": self.name,
            "type": "STATIC",
            "connect_timeout": self.connect_timeout,
            "load_assignment": {"cluster_name": self.name, "endpoints": localities},
        });
        if !self.upstream_filters.is_empty() {
            let mut filters: Vec<Value> =
                self.upstream_filters.iter().map(|f| f.0.clone()).collect();
            filters.push(json!({
                "name": "envoy.filters.http.upstream_codec",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"},
            }));
            cluster["typed_extension_protocol_options"] = json!({
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http_protocol_options": {}},
                    "http_filters": filters,
                },
            });
        }
        cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_grouped_into_one_locality_per_priority_in_priority_order() {
        let cluster = Cluster::new("c")
            .provider(1, "b", 2)
            .provider(0, "a", 1)
            .provider(1, "c", 3)
            .to_value();
        let localities = cluster["load_assignment"]["endpoints"].as_array().unwrap();
        let seen: Vec<(u64, Vec<&str>)> = localities
            .iter()
            .map(|l| {
                let names = l["lb_endpoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        e["metadata"]["filter_metadata"]["tollgate"]["provider"]
                            .as_str()
                            .unwrap()
                    })
                    .collect();
                (l["priority"].as_u64().unwrap(), names)
            })
            .collect();
        assert_eq!(seen, vec![(0, vec!["a"]), (1, vec!["b", "c"])]);
    }

    #[test]
    fn the_router_and_the_upstream_codec_come_last_after_the_filters_added() {
        let wasm = Wasm::new("vm", Path::new("/m.wasm"), "root");
        let listener = Listener::new("l", 1)
            .filter(wasm.clone())
            .filter(HttpFilter::buffer(1))
            .to_value();
        let names = |filters: &Value| -> Vec<String> {
            filters
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect()
        };
        let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(
            names(&hcm["http_filters"]),
            [
                "envoy.filters.http.wasm",
                "envoy.filters.http.buffer",
                "envoy.filters.http.router"
            ]
        );
        let cluster = Cluster::new("c").upstream_filter(wasm).to_value();
        let options = &cluster["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            names(&options["http_filters"]),
            [
                "envoy.filters.http.wasm",
                "envoy.filters.http.upstream_codec"
            ]
        );
    }
}
