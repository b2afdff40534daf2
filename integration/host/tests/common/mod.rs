//! Shared test helpers: where the fixture .wasm is, and a request to send.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tollgate_host::{Host, HostBuilder};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The fixture filter's .wasm (`build/wasm/`), rebuilt first when older than its sources.
pub fn fixture_wasm() -> PathBuf {
    tollgate_e2e::wasm_path("tollgate_fixture_filter").unwrap_or_else(|e| panic!("{e}"))
}

/// A host builder with the fixture filter as the only plugin.
pub fn fixture(config: &str) -> HostBuilder {
    Host::builder()
        .module(fixture_wasm())
        .vm_id("fixture")
        .root_id("fixture")
        .configuration(config)
        .allow_on_headers_stop_iteration(true)
        .cluster("fixture_upstream")
}

/// Request headers asking the fixture for `action`.
pub fn request(action: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".to_string()),
        (":path", "/v1/chat".to_string()),
        (":authority", "api.example".to_string()),
        (":scheme", "http".to_string()),
        ("x-fixture-action", action.to_string()),
    ]
}
