//! What the rendered envoy.yaml does, field by field, for the guide + companion (+ local).

mod common;

use serde_json::{json, Value};
use tollgate_config::render::{render, RenderRequest};
use tollgate_core::config::{AdapterConfig, DownstreamConfig, ProviderKind, RouteKind};

fn envoy(request: &RenderRequest) -> Value {
    let text = &render(request).unwrap()["envoy.yaml"].text;
    serde_norway::from_str(text).unwrap()
}

fn cluster<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
    bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

fn hcm(bootstrap: &Value) -> &Value {
    &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

fn route<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
    let routes = hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    routes
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("route {name}"))
}

fn adapter(cluster: &Value) -> AdapterConfig {
    let filters = &cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"];
    let config = &filters[0]["typed_config"]["config"];
    assert_eq!(config["root_id"], "adapter");
    assert_eq!(
        filters[1]["name"], "envoy.filters.http.upstream_codec",
        "upstream_codec comes last"
    );
    serde_json::from_str(config["configuration"]["value"].as_str().unwrap()).unwrap()
}

#[test]
fn downstream_filters_run_in_design_order_in_one_vm() {
    let bootstrap = envoy(&common::guide_and_companion());
    let filters = hcm(&bootstrap)["http_filters"].as_array().unwrap();
    let names: Vec<&str> = filters
        .iter()
        .map(|f| {
            f["typed_config"]["config"]["root_id"]
                .as_str()
                .unwrap_or_else(|| f["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.compressor",
            "envoy.filters.http.header_mutation",
            "envoy.filters.http.jwt_authn",
            "tollgate",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(
        filters[1]["typed_config"]["mutations"]["request_mutations"],
        json!([{"remove": "x-tollgate-client"}]),
        "a client-sent client header is dropped before authentication can set it"
    );
    for filter in &filters[3..4] {
        let config = &filter["typed_config"]["config"];
        assert_eq!(config["vm_config"]["vm_id"], "tollgate");
        assert_eq!(config["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(config["allow_on_headers_stop_iteration"], true);
    }
    let module = |i: usize| {
        filters[i]["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(module(3), "build/wasm/tollgate.wasm");
    let route = pipeline(&bootstrap).route;
    let kinds: Vec<(&str, RouteKind)> = route
        .routes
        .iter()
        .map(|(name, scope)| (name.as_str(), scope.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("batch-route", RouteKind::Llm),
            ("llm-routes", RouteKind::Llm),
            ("mcp-routes", RouteKind::Mcp),
            ("stream-route", RouteKind::Llm),
        ]
    );
    assert_eq!(
        route.routes["stream-route"].models,
        ["gemini-1.5-flash", "gpt-4o-mini"],
        "the models fast-llm's providers are asked for"
    );
    assert!(route.routes.values().all(|s| s.operations.is_empty()));
}

/// The pipeline's configuration (root_id tollgate).
fn pipeline(bootstrap: &Value) -> DownstreamConfig {
    let filter = hcm(bootstrap)["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["typed_config"]["config"]["root_id"] == "tollgate")
        .expect("the pipeline filter");
    serde_json::from_str(
        filter["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn the_companions_jwt_policy_is_aimed_at_llm_routes_only_and_optional() {
    let bootstrap = envoy(&common::guide_and_companion());
    let filters = hcm(&bootstrap)["http_filters"].as_array().unwrap();
    let jwt = &filters
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.jwt_authn")
        .unwrap()["typed_config"];
    assert!(jwt.get("rules").is_none(), "no rule for every path: {jwt}");
    assert_eq!(
        jwt["requirement_map"],
        json!({"jwt-auth": {"requires_any": {"requirements": [{"provider_name": "tollgate-dev"}, {"allow_missing_or_failed": {}}]}}}),
        "the companion's policy says optional: true"
    );
    let routes = hcm(&bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    for route in routes {
        let name = route["name"].as_str().unwrap();
        let per_route = &route["typed_per_filter_config"]["envoy.filters.http.jwt_authn"];
        if name.starts_with("llm-routes/") {
            assert_eq!(per_route["requirement_name"], "jwt-auth", "{name}");
        } else {
            assert!(per_route.is_null(), "{name} is not targeted: {route}");
        }
    }
    assert_eq!(
        jwt["providers"]["tollgate-dev"]["payload_in_metadata"],
        "jwt_payload"
    );
    assert_eq!(
        jwt["providers"]["tollgate-dev"]["issuer"],
        "https://auth.tollgate.dev"
    );
}

#[test]
fn openai_cluster_carries_every_backend_config_policy_knob() {
    let bootstrap = envoy(&common::guide_and_companion());
    let openai = cluster(&bootstrap, "openai");
    assert_eq!(
        openai["circuit_breakers"],
        json!({"thresholds": [{"priority": "DEFAULT", "max_connections": 1000, "max_pending_requests": 1000, "max_requests": 1000, "max_retries": 3}]})
    );
    assert_eq!(openai["connect_timeout"], "5s");
    let protocol = &openai["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        protocol["common_http_protocol_options"]["max_requests_per_connection"],
        100
    );
    assert_eq!(
        protocol["explicit_http_config"]["http2_protocol_options"],
        json!({"max_concurrent_streams": 100, "initial_stream_window_size": 65536, "initial_connection_window_size": 1048576})
    );
    assert_eq!(
        openai["upstream_connection_options"]["tcp_keepalive"],
        json!({"keepalive_time": 60, "keepalive_interval": 30, "keepalive_probes": 3})
    );
    assert_eq!(
        openai["outlier_detection"],
        json!({"consecutive_5xx": 5, "interval": "10s", "base_ejection_time": "30s", "max_ejection_percent": 50, "split_external_local_origin_errors": true})
    );
    let tls = &openai["transport_socket_matches"][0]["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], "api.openai.com");
    assert_eq!(tls["common_tls_context"]["alpn_protocols"], json!(["h2"]));
}

#[test]
fn kgateway_spellings_render_the_same_cluster_as_the_guides() {
    let render_one = |file: &str| {
        let mut request = common::guide_and_companion();
        request.inputs = vec![common::input(file)];
        cluster(&envoy(&request), "openai").clone()
    };
    let guide = render_one("tests/fixtures/spellings-guide.yaml");
    assert_eq!(
        guide["circuit_breakers"]["thresholds"][0]["max_retries"],
        11
    );
    assert_eq!(render_one("tests/fixtures/spellings-kgateway.yaml"), guide);
}

#[test]
fn priority_groups_become_endpoint_priorities_with_provider_metadata() {
    let bootstrap = envoy(&common::guide_and_companion());
    let cost = cluster(&bootstrap, "cost-optimized-llm");
    let endpoints = cost["load_assignment"]["endpoints"].as_array().unwrap();
    let groups: Vec<(u64, Vec<&str>)> = endpoints
        .iter()
        .map(|e| {
            let providers = e["lb_endpoints"].as_array().unwrap().iter();
            (
                e["priority"].as_u64().unwrap(),
                providers
                    .map(|l| {
                        l["metadata"]["filter_metadata"]["tollgate"]["provider"]
                            .as_str()
                            .unwrap()
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (0, vec!["local-llama"]),
            (1, vec!["gemini-flash", "gpt-4o-mini"]),
            (2, vec!["claude-haiku"])
        ]
    );
    let llama = &endpoints[0]["lb_endpoints"][0];
    assert_eq!(
        llama["endpoint"]["address"]["socket_address"],
        json!({"address": "ollama.ai.svc.cluster.local", "port_value": 11434})
    );
    assert!(
        llama["metadata"]["filter_metadata"]
            .get("envoy.transport_socket_match")
            .is_none(),
        "plain HTTP to ollama"
    );
    let sni: Vec<&str> = cost["transport_socket_matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["transport_socket"]["typed_config"]["sni"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        sni,
        [
            "generativelanguage.googleapis.com",
            "api.openai.com",
            "api.anthropic.com"
        ]
    );
}

#[test]
fn adapter_gets_each_providers_endpoint_model_and_the_name_of_its_key_variable() {
    let bootstrap = envoy(&common::guide_and_companion());
    let config = adapter(cluster(&bootstrap, "cost-optimized-llm"));
    assert_eq!(config.backend, "cost-optimized-llm");
    let haiku = config
        .providers
        .iter()
        .find(|p| p.name == "claude-haiku")
        .unwrap();
    assert_eq!(haiku.kind, ProviderKind::Anthropic);
    assert_eq!(haiku.authority, "api.anthropic.com");
    assert_eq!(haiku.model.as_deref(), Some("claude-3-5-haiku-20241022"));
    assert!(haiku.override_model);
    assert_eq!(
        haiku.api_key, None,
        "keys stay out of the plugin configuration"
    );
    assert_eq!(
        haiku.api_key_env.as_deref(),
        Some("TOLLGATE_KEY_COST_OPTIMIZED_LLM_CLAUDE_HAIKU")
    );
    assert_eq!(haiku.api_version.as_deref(), Some("2023-06-01"));
    let llama = config
        .providers
        .iter()
        .find(|p| p.name == "local-llama")
        .unwrap();
    assert_eq!(
        (llama.authority.as_str(), llama.api_key_env.as_deref()),
        ("ollama.ai.svc.cluster.local:11434", None)
    );
    // The companion's openai Backend needs no translation: Envoy serves it without the
    // adapter, the key from the environment on its route.
    let openai = cluster(&bootstrap, "openai");
    assert!(
        openai["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"]
            .is_null(),
        "no adapter on a native Backend"
    );
    let to_openai = route(&bootstrap, "llm-routes/0/0");
    let added = to_openai["request_headers_to_add"].to_string();
    assert!(
        added.contains("Bearer %ENVIRONMENT(TOLLGATE_KEY_OPENAI_OPENAI)%"),
        "{added}"
    );
    assert!(
        !added.contains("sk-test-openai"),
        "the key itself is not in envoy.yaml"
    );
    // Envoy asks for an uncompressed answer (the stages read it), not the pipeline.
    assert!(
        added.contains(r#"{"append_action":"OVERWRITE_IF_EXISTS_OR_ADD","header":{"key":"accept-encoding","value":"identity"}}"#),
        "{added}"
    );
}

#[test]
fn latency_routing_sets_least_request_and_health_checks() {
    let guide = envoy(&common::guide_and_companion());
    let multi = cluster(&guide, "multi-provider");
    assert_eq!(multi["lb_policy"], "LEAST_REQUEST");
    assert_eq!(
        multi["health_checks"],
        json!([{"interval": "10s", "no_traffic_interval": "10s", "timeout": "5s", "healthy_threshold": 2, "unhealthy_threshold": 3, "tcp_health_check": {}}])
    );
    assert_eq!(cluster(&guide, "openai")["lb_policy"], "ROUND_ROBIN");
    let local = envoy(&common::local_stack());
    assert_eq!(
        cluster(&local, "multi-provider")["health_checks"][0]["http_health_check"],
        json!({"path": "/__mock/health"})
    );
}

#[test]
fn routes_follow_the_timeout_table_and_retry_across_priorities() {
    let bootstrap = envoy(&common::guide_and_companion());
    let stream = route(&bootstrap, "stream-route/0/0");
    assert_eq!(stream["match"], json!({"path_separated_prefix": "/stream"}));
    assert_eq!(stream["route"]["cluster"], "fast-llm");
    assert_eq!(stream["route"]["timeout"], "300s", "streaming chat: 300 s");
    assert_eq!(
        route(&bootstrap, "llm-routes/2/0")["route"]["timeout"],
        "120s"
    );
    assert_eq!(
        route(&bootstrap, "mcp-routes/0/0")["route"]["timeout"],
        "60s"
    );
    let batch = &route(&bootstrap, "batch-route/0/0")["route"]["retry_policy"];
    // No retry.codes, several providers: a 429 fails over by default.
    assert_eq!(
        batch["retry_on"],
        "5xx,connect-failure,reset,retriable-status-codes"
    );
    assert_eq!(batch["retriable_status_codes"], json!([429]));
    let openai = &route(&bootstrap, "llm-routes/0/0")["route"]["retry_policy"];
    assert_eq!(
        openai["retry_on"], "5xx,connect-failure,reset",
        "one provider"
    );
    assert_eq!(
        batch["num_retries"], 2,
        "three priority groups: two retries reach them all"
    );
    assert_eq!(
        batch["retry_priority"]["name"],
        "envoy.retry_priorities.previous_priorities"
    );
    let v1 = &route(&bootstrap, "llm-routes/1/0")["route"]["retry_policy"];
    assert_eq!(
        v1["retry_on"],
        "5xx,connect-failure,reset,retriable-status-codes"
    );
    assert_eq!(v1["retriable_status_codes"], json!([429]));
    assert_eq!(v1["retry_back_off"], json!({"base_interval": "0.250s"}));
    let limit = &hcm(&bootstrap)["route_config"]["virtual_hosts"][0]["request_body_buffer_limit"];
    assert_eq!(*limit, json!(2 * 1024 * 1024));
}

#[test]
fn dns_settings_apply_to_every_cluster_and_stats_tags_name_the_labels() {
    let bootstrap = envoy(&common::guide_and_companion());
    for cluster in bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            // DNS clusters only: not the Services', not the stats listener's STATIC admin.
            c["type"] == "STRICT_DNS"
                && c["name"]
                    .as_str()
                    .is_some_and(|n| !n.starts_with("service/"))
        })
    {
        assert_eq!(cluster["dns_refresh_rate"], "60s", "{}", cluster["name"]);
        assert_eq!(cluster["respect_dns_ttl"], false);
    }
    let tags: Vec<&str> = bootstrap["stats_config"]["stats_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag_name"].as_str().unwrap())
        .collect();
    assert_eq!(&tags[..3], ["direction", "provider", "model"]);
    assert_eq!(
        cluster(&bootstrap, "service/semantic-cache-service")["load_assignment"]["endpoints"][0]
            ["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"],
        8080
    );
    assert_eq!(
        bootstrap["overload_manager"]["resource_monitors"][0]["typed_config"]
            ["max_heap_size_bytes"],
        4u64 << 30
    );
}

#[test]
fn local_overrides_point_providers_at_plain_http_mocks() {
    let bootstrap = envoy(&common::local_stack());
    let multi = cluster(&bootstrap, "multi-provider");
    assert!(
        multi.get("transport_socket_matches").is_none(),
        "no TLS to the mocks"
    );
    let ports: Vec<u64> = multi["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["endpoint"]["address"]["socket_address"]["port_value"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ports, [18001, 18002, 18003]);
    let config = adapter(multi);
    assert_eq!(config.providers[0].authority, "127.0.0.1:18001");
    assert_eq!(
        config.providers[0].api_key_env.as_deref(),
        Some("TOLLGATE_KEY_MULTI_PROVIDER_GPT_4O_MINI")
    );
}

#[test]
fn command_line_endpoint_overrides_win_over_the_file() {
    let mut request = common::local_stack();
    request.plan.endpoints.insert(
        "gemini-flash".into(),
        "http://127.0.0.1:19003/prefix".into(),
    );
    let bootstrap = envoy(&request);
    let config = adapter(cluster(&bootstrap, "fast-llm"));
    let gemini = config
        .providers
        .iter()
        .find(|p| p.name == "gemini-flash")
        .unwrap();
    assert_eq!(
        (gemini.authority.as_str(), gemini.path_prefix.as_str()),
        ("127.0.0.1:19003", "/prefix")
    );
}

#[test]
fn model_matches_fill_the_router_map_and_match_its_backend_header() {
    let mut request = common::guide_and_companion();
    request.inputs = vec![common::input("tests/fixtures/model-routing.yaml")];
    let bootstrap = envoy(&request);
    let router = pipeline(&bootstrap).route;
    assert_eq!(
        router.models,
        [("claude-3-5-haiku".to_string(), "claude".to_string())].into()
    );
    assert_eq!(
        router.routes["by-model"].models,
        ["claude-3-5-haiku", "gpt-4o-mini"],
        "GET /v1/models lists the alias and the provider's model"
    );
    let routes = hcm(&bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["by-model/0/0", "by-model/1/0"],
        "the header route comes first"
    );
    assert_eq!(
        routes[0]["match"],
        json!({"path_separated_prefix": "/v1", "headers": [{"name": "x-tollgate-backend", "string_match": {"exact": "claude"}}]})
    );
    assert_eq!(routes[0]["route"]["cluster"], "claude");
}
