//! Real Envoy accepts the rendered bootstraps: `envoy --mode validate` loads the .wasm modules
//! in V8 and runs their `on_configure` with our plugin configurations (RouterConfig,
//! AdapterConfig), resolves route -> cluster references and compiles the stats_tags regexes.
//! Needs `scripts/setup` (Envoy in .tools/bin) and the modules from `scripts/build-wasm`.

mod common;

use std::path::PathBuf;
use tollgate_config::envoy_check::{find_envoy, validate, validate_with_env};
use tollgate_config::render::{render, RenderRequest};
use tollgate_config::secrets::parse_env_file;

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
    let env = parse_env_file(&files["secrets.env"].text);
    let result = validate_with_env(&envoy, &files["envoy.yaml"].text, &env);
    assert_eq!(result, Ok(()));
}

#[test]
fn envoy_without_the_provider_keys_in_its_environment_refuses_to_load_the_adapter() {
    let envoy = find_envoy().expect("Envoy not found: run scripts/setup (or set TOLLGATE_ENVOY)");
    let mut request = common::guide_and_companion();
    request.output.wasm_dir = wasm_dir();
    let files = render(&request).unwrap();
    let error = validate(&envoy, &files["envoy.yaml"].text).unwrap_err();
    assert!(error.contains("TOLLGATE_KEY_"), "{error}");
    for key in ["sk-test-openai", "test-anthropic-key", "test-google-key"] {
        assert!(!error.contains(key), "{error}");
    }
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
    let files = render(&request).unwrap();
    let env = parse_env_file(&files["secrets.env"].text);
    let error = validate_with_env(&envoy, &text, &env).unwrap_err();
    assert!(error.contains("colour"), "{error}");
}
