//! Response compression in the rendered envoy.yaml: Envoy's compressor is the listener's first
//! HTTP filter (before authentication and every tollgate filter, in both forms), gzips JSON
//! answers only, takes the client's accept-encoding off the request, is off on proxy routes
//! and absent with `--no-compression`; real Envoy accepts it. What it does to answers is
//! tested on real Envoy in integration/e2e/tests/compression.rs.

mod common;

use serde_json::Value;
use tollgate_config::envoy_check::{find_envoy, validate_with_env};
use tollgate_config::output::compression::{FILTER, MIN_CONTENT_LENGTH};
use tollgate_config::output::FilterForm;
use tollgate_config::render::{render, RenderRequest};
use tollgate_config::secrets::parse_env_file;

fn envoy(request: &RenderRequest) -> Value {
    let text = &render(request).unwrap()["envoy.yaml"].text;
    serde_norway::from_str(text).unwrap()
}

fn hcm(bootstrap: &Value) -> &Value {
    let listener = bootstrap["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "tollgate")
        .expect("the tollgate listener");
    &listener["filter_chains"][0]["filters"][0]["typed_config"]
}

fn filter_names(bootstrap: &Value) -> Vec<String> {
    hcm(bootstrap)["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| match f["name"].as_str().unwrap() {
            "envoy.filters.http.wasm" => f["typed_config"]["config"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// Every route entry of the listener, by Envoy route name.
fn routes(bootstrap: &Value) -> Vec<(String, Value)> {
    hcm(bootstrap)["route_config"]["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|vh| vh["routes"].as_array().unwrap().iter())
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// Guide + companion + a plain HTTP Backend behind `web-routes` (a proxy route).
fn with_proxy_route() -> RenderRequest {
    let mut request = common::guide_and_companion();
    request
        .inputs
        .push(common::input("tests/fixtures/proxy-route.yaml"));
    request
}

#[test]
fn the_compressor_is_the_first_filter_before_authentication_and_tollgate_in_both_forms() {
    for (form, tollgate) in [
        (FilterForm::Combined, vec!["tollgate"]),
        (
            FilterForm::Separate,
            vec![
                "tollgate-router",
                "tollgate-cache",
                "tollgate-budget",
                "tollgate-metrics",
            ],
        ),
    ] {
        let mut request = common::guide_and_companion();
        request.output.filters = form;
        let names = filter_names(&envoy(&request));
        let mut expected = vec![
            FILTER,
            "envoy.filters.http.header_mutation",
            "envoy.filters.http.jwt_authn",
        ];
        expected.extend(tollgate);
        expected.push("envoy.filters.http.router");
        assert_eq!(names, expected, "{form:?}");
    }
}

#[test]
fn only_json_answers_of_a_useful_size_are_gzipped_and_the_request_loses_its_accept_encoding() {
    let bootstrap = envoy(&common::guide_and_companion());
    let compressor = &hcm(&bootstrap)["http_filters"][0]["typed_config"];
    let response = &compressor["response_direction_config"];
    assert_eq!(
        response["common_config"]["content_type"],
        serde_json::json!(["application/json"]),
        "SSE (text/event-stream) is never compressed"
    );
    assert_eq!(
        response["common_config"]["min_content_length"],
        MIN_CONTENT_LENGTH
    );
    assert_eq!(response["remove_accept_encoding_header"], true);
    assert!(
        compressor.get("request_direction_config").is_none(),
        "request bodies are never compressed"
    );
    assert_eq!(
        compressor["compressor_library"]["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip"
    );
}

#[test]
fn a_proxy_route_turns_the_compressor_off_and_llm_and_mcp_routes_keep_it() {
    let bootstrap = envoy(&with_proxy_route());
    let routes = routes(&bootstrap);
    let mut seen = Vec::new();
    for (name, route) in &routes {
        let per_route = &route["typed_per_filter_config"][FILTER];
        if name.starts_with("web-routes/") {
            assert_eq!(per_route["disabled"], true, "{name}: {route}");
            seen.push("proxy");
        } else {
            assert!(per_route.is_null(), "{name} has {per_route}");
            if name.starts_with("mcp-routes/") {
                seen.push("mcp");
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ["mcp", "proxy"], "{routes:?}");
    // The authentication entries of a route stay next to the compressor's.
    let llm = routes
        .iter()
        .find(|(name, _)| name.starts_with("llm-routes/"))
        .unwrap();
    assert!(
        llm.1["typed_per_filter_config"]["envoy.filters.http.jwt_authn"].is_object(),
        "{}",
        llm.1
    );
}

#[test]
fn no_compression_leaves_the_filter_and_its_route_settings_out() {
    let mut request = with_proxy_route();
    request.output.compression = false;
    let text = &render(&request).unwrap()["envoy.yaml"].text;
    assert!(!text.contains(FILTER), "{text}");
    let bootstrap: Value = serde_norway::from_str(text).unwrap();
    assert_eq!(
        filter_names(&bootstrap)[0],
        "envoy.filters.http.header_mutation"
    );
}

#[test]
fn envoy_accepts_the_compressor_and_its_per_route_switch() {
    let envoy = find_envoy().expect("Envoy not found: run scripts/setup (or set TOLLGATE_ENVOY)");
    let module = tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}"));
    let mut request = with_proxy_route();
    request.output.wasm_dir = module.parent().unwrap().display().to_string();
    let files = render(&request).unwrap();
    let text = &files["envoy.yaml"].text;
    assert!(text.contains("CompressorPerRoute"), "{text}");
    let env = parse_env_file(&files["secrets.env"].text);
    assert_eq!(validate_with_env(&envoy, text, &env), Ok(()));
}
