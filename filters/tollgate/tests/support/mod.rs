//! What the tests and benches of `tollgate.wasm` in the wasmtime host share.

use tollgate_host::HostBuilder;

/// A host running the built module's downstream pipeline (`root_id: tollgate`) with this
/// configuration; callers add workers, clusters or a vm_id of their own, then build.
pub fn pipeline(config: &str) -> HostBuilder {
    tollgate_host::Host::builder()
        .module(tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}")))
        .vm_id("tollgate")
        .root_id("tollgate")
        .configuration(config.as_bytes())
        .allow_on_headers_stop_iteration(true)
}

/// The request headers of a chat completion whose body is `length` bytes, as Envoy hands them
/// to the filter.
#[allow(dead_code)] // not every test binary that includes this module sends chat requests
pub fn chat_request_headers(length: &str) -> [(&'static str, &str); 6] {
    [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("content-length", length),
    ]
}

/// Where jwt_authn puts a verified token's `claim` (the property path the pipeline reads).
#[allow(dead_code)] // not every test binary that includes this module verifies callers
pub fn jwt_claim(claim: &str) -> [&str; 5] {
    [
        "metadata",
        "filter_metadata",
        "envoy.filters.http.jwt_authn",
        "jwt_payload",
        claim,
    ]
}
