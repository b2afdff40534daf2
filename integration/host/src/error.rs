//! Errors a test sees when a module cannot be loaded or the host is misused.

/// Why loading, starting or driving a module failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The module file could not be read.
    #[error("cannot read wasm module {path}: {source}")]
    Read {
        /// The path given to the builder.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// wasmtime rejected the bytes (not wasm, invalid, unsupported feature).
    #[error("cannot compile wasm module: {0}")]
    Compile(String),
    /// No `proxy_abi_version_0_2_x` marker is exported (Envoy: "Missing or unknown Proxy-Wasm ABI version").
    #[error("Missing or unknown Proxy-Wasm ABI version: the module exports no proxy_abi_version_0_2_0/0_2_1 function")]
    MissingAbiVersion,
    /// Neither `malloc` nor `proxy_on_memory_allocate` is exported.
    #[error("Wasm module is missing malloc function (neither `malloc` nor `proxy_on_memory_allocate` is exported)")]
    MissingAllocator,
    /// The module exports no memory named `memory`.
    #[error("the module exports no linear memory named `memory`")]
    MissingMemory,
    /// A known export has the wrong type (V8: "Bad function signature").
    #[error("Bad function signature for: {name}: expected {expected}, found {found}")]
    ExportSignature {
        /// The export name.
        name: String,
        /// Envoy's signature, e.g. `(i32, i32, i32) -> i32`.
        expected: String,
        /// The module's signature.
        found: String,
    },
    /// The module imports something Envoy does not provide.
    #[error("Failed to load Wasm module due to a missing import: {module}.{name}")]
    UnknownImport {
        /// The import module, e.g. `env`.
        module: String,
        /// The import name.
        name: String,
    },
    /// The module imports a host function with a different type than Envoy's.
    #[error("Failed to load Wasm module due to an import type mismatch: {module}.{name}: Envoy provides {expected}, the module wants {found}")]
    ImportSignature {
        /// The import module.
        module: String,
        /// The import name.
        name: String,
        /// Envoy's signature.
        expected: String,
        /// The module's.
        found: String,
    },
    /// Instantiation failed for another reason (e.g. a start function trapped).
    #[error("cannot instantiate wasm module: {0}")]
    Instantiate(String),
    /// The VM trapped while starting (`_initialize`, `on_vm_start`, `on_configure`).
    #[error("VM for root_id {root_id:?} trapped during {phase}: {message}")]
    StartTrap {
        /// The plugin's root id.
        root_id: String,
        /// Which call trapped.
        phase: String,
        /// The trap, with the panic message when the module logged one.
        message: String,
    },
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false (Envoy rejects the configuration).
    #[error(
        "plugin root_id {root_id:?} rejected its configuration ({callback} returned false){log}"
    )]
    ConfigureFailed {
        /// The plugin's root id.
        root_id: String,
        /// `proxy_on_vm_start` or `proxy_on_configure`.
        callback: &'static str,
        /// What the module logged at error level meanwhile, as Envoy prints it (`: <message>`,
        /// empty when it logged nothing).
        log: String,
    },
    /// The builder was used wrongly (e.g. no module, a stats_tags regex that does not compile).
    #[error("invalid host configuration: {0}")]
    Config(String),
    /// A stream or call operation that the current state does not allow.
    #[error("invalid operation: {0}")]
    Usage(String),
}
