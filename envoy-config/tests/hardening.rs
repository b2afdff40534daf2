//! The clients' side of the generated listeners: the HTTP connection manager settings a
//! gateway holding paid keys needs (FIELDS.md, "Listener"), read from the rendered envoy.yaml,
//! and what they make a real Envoy do with hostile paths and headers.

mod common;

use serde_json::Value;
use tollgate_config::output::envoy::limits;
use tollgate_config::render::{render, RenderRequest};
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::raw_request;
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

fn envoy(request: &RenderRequest) -> Value {
    let text = &render(request).unwrap()["envoy.yaml"].text;
    serde_norway::from_str(text).unwrap()
}

fn listener<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
    bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("listener {name}"))
}

fn hcm<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
    &listener(bootstrap, name)["filter_chains"][0]["filters"][0]["typed_config"]
}

/// Seconds of an Envoy duration string (`300s`).
fn seconds(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a duration in seconds: {value}"))
}

#[test]
fn every_client_facing_listener_is_hardened() {
    let bootstrap = envoy(&common::guide_and_companion());
    for name in ["tollgate", "tollgate-stats"] {
        let hcm = hcm(&bootstrap, name);
        assert_eq!(hcm["use_remote_address"], true, "{name}");
        assert_eq!(hcm["xff_num_trusted_hops"], 0, "{name}");
        assert_eq!(seconds(&hcm["request_headers_timeout"]), 10, "{name}");
        assert_eq!(
            hcm["max_request_headers_kb"],
            limits::MAX_REQUEST_HEADERS_KB,
            "{name}"
        );
        let common = &hcm["common_http_protocol_options"];
        assert_eq!(
            common["headers_with_underscores_action"], "REJECT_REQUEST",
            "{name}"
        );
        assert_eq!(common["max_requests_per_connection"], 1000, "{name}");
        assert_eq!(common["max_headers_count"], 100, "{name}");
        assert_eq!(seconds(&common["idle_timeout"]), 3600, "{name}");
        assert_eq!(
            hcm["http2_protocol_options"]["max_concurrent_streams"], 100,
            "{name}"
        );
        assert_eq!(hcm["normalize_path"], true, "{name}");
        assert_eq!(hcm["merge_slashes"], true, "{name}");
        assert_eq!(
            hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST",
            "{name}"
        );
        assert_eq!(hcm["server_header_transformation"], "OVERWRITE", "{name}");
        assert_eq!(hcm["server_name"], "tollgate", "{name}");
    }
    let monitors = bootstrap["overload_manager"]["resource_monitors"]
        .as_array()
        .unwrap();
    let connections = monitors
        .iter()
        .find(|m| m["name"] == "envoy.resource_monitors.global_downstream_max_connections")
        .expect("a global connection limit");
    assert_eq!(
        connections["typed_config"]["max_active_downstream_connections"],
        limits::MAX_DOWNSTREAM_CONNECTIONS
    );
}

#[test]
fn trusted_proxy_hops_come_from_the_output_options() {
    let mut request = common::guide_and_companion();
    request.output.xff_num_trusted_hops = 2;
    let bootstrap = envoy(&request);
    assert_eq!(hcm(&bootstrap, "tollgate")["xff_num_trusted_hops"], 2);
}

#[test]
fn the_stream_idle_timeout_never_cuts_a_request_its_route_still_allows() {
    let bootstrap = envoy(&common::guide_and_companion());
    let hcm = hcm(&bootstrap, "tollgate");
    let idle = seconds(&hcm["stream_idle_timeout"]);
    let routes = hcm["route_config"]["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|vh| vh["routes"].as_array().unwrap().iter());
    let mut longest = 0;
    for route in routes {
        if let Some(timeout) = route["route"].get("timeout") {
            longest = longest.max(seconds(timeout));
        }
    }
    assert!(longest > 0, "no route timeouts found");
    assert!(
        idle >= longest,
        "idle {idle}s < longest route timeout {longest}s"
    );
    assert!(idle >= 300, "a slow LLM stream needs minutes: {idle}s");
}

#[test]
fn admin_stays_on_loopback_and_prometheus_gets_a_stats_listener() {
    let bootstrap = envoy(&common::guide_and_companion());
    assert_eq!(
        bootstrap["admin"]["address"]["socket_address"]["address"],
        "127.0.0.1"
    );
    let stats = listener(&bootstrap, "tollgate-stats");
    assert_eq!(stats["address"]["socket_address"]["port_value"], 9902);
    let routes = hcm(&bootstrap, "tollgate-stats")["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap();
    let forwarded: Vec<&str> = routes
        .iter()
        .filter(|r| r.get("route").is_some())
        .map(|r| r["match"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(forwarded, ["/stats/prometheus", "/ready"]);
    let last = routes.last().unwrap();
    assert_eq!(last["match"]["prefix"], "/");
    assert_eq!(last["direct_response"]["status"], 404);
}

#[test]
fn a_stats_listener_needs_a_fixed_admin_port() {
    let mut request = common::guide_and_companion();
    request.output.admin_port = 0;
    let error = render(&request).unwrap_err().to_string();
    assert!(error.contains("admin needs a fixed port"), "{error}");
    request.output.stats_port = None;
    assert!(render(&request).is_ok());
}

/// The guide + companion on real Envoy: every LLM provider is one recording mock, the MCP
/// server another.
struct Stack {
    providers: MockHandle,
    mcp: MockHandle,
    gateway: Gateway,
}

fn stack() -> Stack {
    let mock = || {
        spawn(MockConfig::new(
            Kind::Openai,
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap()
    };
    let providers = mock();
    let mcp = mock();
    let mut spec = GatewaySpec::guide_and_companion()
        .endpoint("mcp-tools", mcp.base_url())
        .endpoint("semantic-cache-service", "http://127.0.0.1:9")
        .secret("openai-secret", "sk-hardening-openai")
        .secret("anthropic-secret", "sk-hardening-anthropic")
        .secret("google-ai-secret", "hardening-google");
    for name in [
        "local-llama",
        "gemini-flash",
        "gpt-4o-mini",
        "openai",
        "claude-haiku",
    ] {
        spec = spec.endpoint(name, providers.base_url());
    }
    let gateway = Gateway::start(&spec).unwrap();
    Stack {
        providers,
        mcp,
        gateway,
    }
}

fn paths(mock: &MockHandle) -> Vec<String> {
    mock.received().into_iter().map(|r| r.path).collect()
}

#[test]
fn dot_segments_and_double_slashes_are_resolved_before_routing() {
    let stack = stack();
    let port = stack.gateway.port;
    for (sent, expected) in [
        ("/mcp/tools/../session", "/mcp/session"),
        ("/mcp//tools///list", "/mcp/tools/list"),
        ("/mcp/./tools", "/mcp/tools"),
    ] {
        stack.mcp.reset_received();
        raw_request(port, "GET", sent, &[], "").unwrap();
        assert_eq!(paths(&stack.mcp), [expected], "sent {sent}");
    }
    // `..` cannot climb out of one route's prefix into another's backend.
    stack.mcp.reset_received();
    raw_request(port, "GET", "/mcp/../openai/v1/files", &[], "").unwrap();
    assert_eq!(paths(&stack.mcp), Vec::<String>::new());
    // Nor can it turn an allowed operation into another one on the provider.
    raw_request(
        port,
        "GET",
        "/v1/chat/completions/../../files",
        &[("content-type", "application/json")],
        "",
    )
    .unwrap();
    for path in paths(&stack.providers) {
        assert!(!path.contains(".."), "a provider got {path}");
        assert!(!path.ends_with("/v1/files"), "a provider got {path}");
    }
}

#[test]
fn encoded_slashes_and_underscored_headers_are_refused_before_any_backend() {
    let stack = stack();
    let port = stack.gateway.port;
    for path in [
        "/mcp/a%2F..%2F..%2Fopenai%2Fv1%2Ffiles",
        "/openai/v1%2ffiles",
    ] {
        let response = raw_request(port, "GET", path, &[], "").unwrap();
        assert_eq!(response.status, 400, "{path}: {}", response.body);
    }
    let response = raw_request(
        port,
        "GET",
        "/mcp/tools",
        &[("x_tollgate_backend", "openai")],
        "",
    )
    .unwrap();
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(paths(&stack.mcp), Vec::<String>::new());
    assert_eq!(paths(&stack.providers), Vec::<String>::new());
}

#[test]
fn answers_name_the_gateway_not_the_backend_server() {
    let stack = stack();
    let response = raw_request(stack.gateway.port, "GET", "/mcp/tools", &[], "").unwrap();
    assert_eq!(paths(&stack.mcp), ["/mcp/tools"]);
    assert_eq!(response.header("server"), Some("tollgate"));
}
