//! The pure core of tollgate: everything the filters decide, with no proxy-wasm in sight.
//!
//! The filter crates are thin adapters from proxy-wasm callbacks to this crate, so what is
//! tested here natively (and on wasm32 with `wasm-bindgen-test`) is what runs in Envoy.
//!
//! Translation: [`request`] is the router's one pass over the client's body; [`translate`] is
//! the adapter's per-attempt facade over the provider modules [`openai`], [`anthropic`] and
//! [`gemini`], which share [`sse`], [`usage`] and [`errors`].

pub mod anthropic;
pub mod config;
pub mod errors;
pub mod facts;
pub mod gemini;
pub mod headers;
pub mod names;
pub mod observe;
pub mod openai;
pub mod operations;
pub mod plugin_config;
pub mod pricing;
pub mod request;
pub mod sse;
pub mod stage;
pub mod translate;
pub mod usage;
