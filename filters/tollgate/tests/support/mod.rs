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
