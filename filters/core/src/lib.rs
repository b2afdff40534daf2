//! The pure core of tollgate: everything the filters decide, with no proxy-wasm in sight.
//!
//! The filter crates are thin adapters from proxy-wasm callbacks to this crate, so what is
//! tested here natively (and on wasm32 with `wasm-bindgen-test`) is what runs in Envoy.

pub mod config;
pub mod plugin_config;
