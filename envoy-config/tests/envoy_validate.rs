//! Real Envoy accepts the rendered bootstraps: `envoy --mode validate` loads the .wasm modules
//! in V8 and runs their `on_configure` with our plugin configurations (RouterConfig,
//! AdapterConfig), resolves route -> cluster references and compiles the stats_tags regexes.
//! Needs `scripts/setup` (Envoy in .tools/bin) and the modules from `scripts/build-wasm`.

mod common;

use std::path::PathBuf;
use tollgate_config::envoy_check::{find_envoy, validate};
use tollgate_config::render::{render, RenderRequest};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The wasm folder, rebuilt with scripts/build-wasm when the module is missing or stale.
fn wasm_dir() -> String {
    let module = tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}"));
    module
        .parent()
        .unwrap_or(&workspace())
        .display()
        .to_string()
}

fn envoy_validates(mut request: RenderRequest) {
    let envoy = find_envoy().expect("Envoy not found: run scripts/setup (or set TOLLGATE_ENVOY)");
    request.output.wasm_dir = wasm_dir();
    let files = render(&request).unwrap();
    let result = validate(&envoy, &files["envoy.yaml"].text);
    assert_eq!(result, Ok(()));
}

#[test]
fn envoy_accepts_guide_and_companion() {
    envoy_validates(common::guide_and_companion());
}

#[test]
fn envoy_accepts_the_local_stack() {
    envoy_validates(common::local_stack());
}

#[test]
fn envoy_rejects_a_plugin_configuration_the_filter_refuses() {
    // Proves validation runs the filters' on_configure: a router config with an unknown field fails.
    let envoy = find_envoy().expect("Envoy not found: run scripts/setup (or set TOLLGATE_ENVOY)");
    let mut request = common::local_stack();
    request.output.wasm_dir = wasm_dir();
    let text = render(&request).unwrap()["envoy.yaml"].text.replace(
        "{\"max_request_bytes\"",
        "{\"colour\":1,\"max_request_bytes\"",
    );
    assert!(
        text.contains("colour"),
        "router configuration not found in envoy.yaml"
    );
    let error = validate(&envoy, &text).unwrap_err();
    assert!(error.contains("tollgate"), "{error}");
}
