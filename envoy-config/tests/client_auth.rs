//! Client authentication where it is aimed, and route kinds, in the rendered envoy.yaml of
//! tests/fixtures/auth.yaml: each policy reaches only the routes of the HTTPRoutes it targets.
//! What Envoy does with it is in integration/e2e/tests/edges_auth.rs.

mod common;

use serde_json::{json, Value};
use tollgate_config::explain::warnings;
use tollgate_config::output::OutputOptions;
use tollgate_config::render::{plan, render, RenderRequest};
use tollgate_core::config::{DownstreamConfig, RouteKind, RouteScope};

fn request() -> RenderRequest {
    let mut request = common::guide_and_companion();
    request.inputs = vec![common::input("tests/fixtures/auth.yaml")];
    request
}

fn envoy(request: &RenderRequest) -> Value {
    serde_norway::from_str(&render(request).unwrap()["envoy.yaml"].text).unwrap()
}

fn hcm(bootstrap: &Value) -> &Value {
    &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

fn routes(bootstrap: &Value) -> Vec<Value> {
    hcm(bootstrap)["route_config"]["virtual_hosts"][0]["routes"]
        .as_array()
        .unwrap()
        .clone()
}

fn filter<'a>(bootstrap: &'a Value, name: &str) -> &'a Value {
    hcm(bootstrap)["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no filter {name}"))
}

#[test]
fn each_policy_reaches_only_the_routes_of_its_httproute() {
    let bootstrap = envoy(&request());
    for route in routes(&bootstrap) {
        let name = route["name"].as_str().unwrap();
        let per_route = &route["typed_per_filter_config"];
        let jwt = &per_route["envoy.filters.http.jwt_authn"];
        let keys = &per_route["envoy.filters.http.api_key_auth"];
        match name.split('/').next().unwrap() {
            "with-jwt" => {
                assert_eq!(jwt["requirement_name"], "require-jwt", "{name}");
                assert!(keys.is_null(), "{name}");
            }
            "with-keys" | "mcp" => {
                assert!(jwt.is_null(), "{name}");
                assert_eq!(
                    keys["credentials"],
                    json!([{"key": "sk-client-team-a", "client": "team-a"}, {"key": "sk-client-team-b", "client": "team-b"}])
                );
                assert_eq!(keys["key_sources"], json!([{"header": "authorization"}]));
                assert_eq!(
                    keys["forwarding"],
                    json!({"header": "x-tollgate-client", "hide_credentials": true}),
                    "the key stops at the gateway; the client's name goes on"
                );
            }
            _ => assert!(per_route.is_null(), "{name} has {per_route}"),
        }
    }
}

#[test]
fn a_jwt_policy_requires_a_token_unless_it_says_optional() {
    let bootstrap = envoy(&request());
    let jwt = &filter(&bootstrap, "envoy.filters.http.jwt_authn")["typed_config"];
    assert_eq!(
        jwt["requirement_map"],
        json!({"require-jwt": {"provider_name": "tollgate-dev"}}),
        "no allow_missing_or_failed"
    );
    assert!(jwt.get("rules").is_none(), "no rule covers every path");
    assert_eq!(
        jwt["providers"]["tollgate-dev"]["claim_to_headers"],
        json!([{"header_name": "x-tollgate-client", "claim_name": "sub"}])
    );
}

#[test]
fn the_api_key_filter_is_off_except_where_a_route_turns_it_on() {
    let bootstrap = envoy(&request());
    let names: Vec<&str> = hcm(&bootstrap)["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.compressor",
            "envoy.filters.http.header_mutation",
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.api_key_auth",
            "envoy.filters.http.wasm",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(
        filter(&bootstrap, "envoy.filters.http.api_key_auth")["disabled"],
        true
    );
}

#[test]
fn authentication_failures_are_rewritten_as_openai_errors() {
    let bootstrap = envoy(&request());
    let mappers = hcm(&bootstrap)["local_reply_config"]["mappers"]
        .as_array()
        .unwrap()
        .clone();
    let summary: Vec<(Value, Value)> = mappers
        .iter()
        .map(|m| {
            (
                m["filter"]["and_filter"]["filters"][0]["status_code_filter"]["comparison"]
                    ["value"]["default_value"]
                    .clone(),
                m["body_format_override"]["json_format"]["error"]["type"].clone(),
            )
        })
        .collect();
    // The pipeline's own replies (already OpenAI JSON, marked with a request header) are left alone.
    for m in &mappers {
        assert_eq!(
            m["filter"]["and_filter"]["filters"][1]["header_filter"]["header"]["name"],
            json!(tollgate_core::names::header::LOCAL_REPLY)
        );
        assert_eq!(
            m["filter"]["and_filter"]["filters"][1]["header_filter"]["header"]["invert_match"],
            json!(true)
        );
    }
    assert_eq!(
        summary,
        [
            (json!(401), json!("authentication_error")),
            (json!(403), json!("permission_error"))
        ]
    );
}

#[test]
fn client_keys_make_envoy_yaml_secret() {
    let files = render(&request()).unwrap();
    assert!(files["envoy.yaml"].secret, "it holds the client keys");
    for (name, file) in files.iter().filter(|(_, f)| !f.secret) {
        assert!(
            !file.text.contains("sk-client-team-a"),
            "{name} holds a key"
        );
    }
    let companion = render(&common::guide_and_companion()).unwrap();
    assert!(
        !companion["envoy.yaml"].secret,
        "without client keys envoy.yaml holds no secret"
    );
}

#[test]
fn route_kinds_models_and_operations_reach_the_pipeline() {
    let bootstrap = envoy(&request());
    let pipeline = hcm(&bootstrap)["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.wasm")
        .unwrap()["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let config: DownstreamConfig = serde_json::from_str(&pipeline).unwrap();
    let scope = |kind, models: &[&str], operations: &[&str]| RouteScope {
        kind,
        models: models.iter().map(|s| s.to_string()).collect(),
        operations: operations.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(
        config.route.routes,
        [
            (
                "embed".to_string(),
                scope(RouteKind::Llm, &[], &["/embeddings"])
            ),
            ("mcp".to_string(), scope(RouteKind::Mcp, &[], &[])),
            (
                "open".to_string(),
                scope(
                    RouteKind::Llm,
                    &[
                        "claude-3-5-haiku-20241022",
                        "gemini-1.5-flash",
                        "gpt-4o-mini"
                    ],
                    &[]
                )
            ),
            (
                "with-jwt".to_string(),
                scope(RouteKind::Llm, &["gpt-4o-mini"], &[])
            ),
            (
                "with-keys".to_string(),
                scope(RouteKind::Llm, &["gpt-4o-mini"], &[])
            ),
        ]
        .into()
    );
}

#[test]
fn exposed_routes_spending_provider_keys_without_client_auth_are_warned_about() {
    let request = request();
    let (_, _, plan) = plan(&request).unwrap();
    let exposed = warnings(&plan, &OutputOptions::default());
    let named: Vec<&str> = exposed
        .iter()
        .map(|w| w.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(
        named,
        ["open", "embed"],
        "with-jwt and with-keys authenticate; mcp holds no key: {exposed:?}"
    );
    assert!(exposed[0].contains("0.0.0.0:10000"), "{}", exposed[0]);
    let loopback = OutputOptions {
        listen_address: "127.0.0.1".into(),
        ..OutputOptions::default()
    };
    assert_eq!(warnings(&plan, &loopback), Vec::<String>::new());
}

#[test]
fn an_optional_jwt_is_no_client_authentication_for_the_warning() {
    let request = common::guide_and_companion();
    let (_, _, plan) = plan(&request).unwrap();
    let exposed = warnings(&plan, &OutputOptions::default());
    assert!(
        exposed.iter().any(|w| w.contains("\"llm-routes\"")),
        "the companion's JWT is optional: {exposed:?}"
    );
    assert!(!exposed.iter().any(|w| w.contains("\"mcp-routes\"")));
}

#[test]
fn the_mcp_route_and_cluster_carry_no_provider_key() {
    let bootstrap = envoy(&request());
    let clusters = bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap();
    let upstream_filters = |name: &str| {
        let cluster = clusters.iter().find(|c| c["name"] == name).unwrap();
        cluster["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"]
            .clone()
    };
    assert!(
        upstream_filters("tools").is_null(),
        "the MCP cluster forwards as is: no adapter"
    );
    assert_eq!(
        upstream_filters("anthropic")[0]["typed_config"]["config"]["root_id"],
        "adapter",
        "an AI cluster that translates has the adapter"
    );
    for route in routes(&bootstrap) {
        if route["name"].as_str().unwrap().starts_with("mcp/") {
            let text = route.to_string();
            assert!(
                route["request_headers_to_add"].is_null() && !text.contains("ENVIRONMENT"),
                "no credential is added on the MCP route: {route}"
            );
        }
    }
}
