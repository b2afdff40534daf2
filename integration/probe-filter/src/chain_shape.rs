//! The benchmark chain's host work as both `replay` probes reproduce it (this crate's, in wasm,
//! and integration/native-probe's, through Envoy's dynamic-module ABI, which includes this file
//! by path): the shared-data keys as the chain's stores spell them (tollgate's cache stage
//! namespace, tollgate-budget's `KEY_PREFIX`) and the value sizes the chain writes in the
//! benchmark, read from its shared data in the wasmtime host.

/// Cache slots (the chain's 16 MiB store has 1024); each request takes the next.
pub const SLOTS: u32 = 1024;
pub const SLOT_PREFIX: &str = "tollgate.cache/bench-route/response/slot/";
pub const LEDGER_KEY: &str = "tollgate.cache/bench-route/response/bytes";
pub const BUCKET_KEY: &str = "tollgate.budget.3895";

/// A slot holding the stored mock answer, and a budget bucket.
pub const SLOT_BYTES: usize = 389;
pub const BUCKET_BYTES: usize = 55;

/// The access-log tail the metrics stage publishes in the benchmark (188 B), as the host saw it.
pub const LOG_TAIL: &[u8] = br#","provider":"","model":"gpt-4o-mini","user":"","input_tokens":240,"output_tokens":9,"cached_input_tokens":0,"cost_micro_usd":0,"cache":"-","budget":"-","answered_by":"upstream","ttfb_ms":0"#;
