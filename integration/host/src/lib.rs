//! A proxy-wasm host on wasmtime, behaving like Envoy 1.40.
