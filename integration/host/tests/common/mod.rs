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

/// The fixture filter's release .wasm: `build/wasm/` (scripts/build-wasm) or the cargo output,
/// whichever is newer.
pub fn fixture_wasm() -> PathBuf {
    let root = workspace_root();
    let candidates = [
        root.join("build/wasm/tollgate_fixture_filter.wasm"),
        root.join("target/wasm32-unknown-unknown/wasm-release/tollgate_fixture_filter.wasm"),
    ];
    candidates
        .iter()
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.modified().ok()?, p.clone())))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("fixture .wasm missing: run scripts/build-wasm"))
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
