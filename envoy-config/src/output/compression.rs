//! Response compression by Envoy's native compressor, so a client sending
//! `accept-encoding: gzip` gets gzip while every tollgate stage reads identity bodies.
//!
//! The compressor is the first HTTP filter of the listener. On the request path it records the
//! client's `accept-encoding` before anything else runs, then removes it: chat providers are
//! asked for identity anyway (native routes by their route header, the adapter per attempt), so
//! the pipeline never has to rewrite the header (a header change costs Envoy a re-route), and an
//! MCP server answers in identity for the tool cache to read. On the response path it runs
//! last, after the pipeline has observed (usage, cache store) the identity body, and it also
//! sees the pipeline's local replies (cache hits, errors). Proxy routes, which tollgate passes
//! through untouched, turn it off per route: their clients' `accept-encoding` still reaches
//! the upstream as sent.

use serde_json::{json, Value};
use tollgate_core::config::RouteKind;

/// Envoy's name of the filter; routes' `typed_per_filter_config` refer to it.
pub const FILTER: &str = "envoy.filters.http.compressor";

/// The only content type compressed: JSON answers. `text/event-stream` is left out: Envoy's
/// compressor flushes each data frame (`Z_SYNC_FLUSH`), so an SSE event is not held back, but
/// each event pays a sync-flush marker and compresses poorly on its own, and a stream's
/// time-to-first-token is what its client waits on.
pub const CONTENT_TYPES: [&str; 1] = ["application/json"];

/// Bytes of `content-length` below which an answer is sent as is: with its headers (~300 bytes)
/// such an answer fits one TCP segment (MSS 1460) already, so gzip saves no packet or round
/// trip and costs CPU. (Envoy compresses an answer without `content-length`, e.g. one the
/// adapter translated, whatever its size.)
pub const MIN_CONTENT_LENGTH: u32 = 1100;

/// The `envoy.filters.http.compressor` entry of the listener's `http_filters`.
///
/// gzip at `BEST_SPEED` with Envoy's default window (12 bits) and memory level (5), about
/// 32 KiB of zlib state per compressed answer: on a 4 KB chat answer level 1 costs about half
/// the CPU of the default level 6 for a 7 % larger output (zlib, measured while choosing).
pub fn filter() -> Value {
    json!({
        "name": FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor",
            "response_direction_config": {
                "common_config": {
                    "min_content_length": MIN_CONTENT_LENGTH,
                    "content_type": CONTENT_TYPES,
                },
                "remove_accept_encoding_header": true,
            },
            "compressor_library": {
                "name": "gzip",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip",
                    "compression_level": "BEST_SPEED",
                },
            },
        },
    })
}

/// The route's `typed_per_filter_config` entry for the compressor, if the route needs one:
/// proxy routes turn it off (nothing compressed, `accept-encoding` forwarded as the client
/// sent it); LLM and MCP routes use the listener's settings.
pub fn per_route(kind: RouteKind) -> Option<Value> {
    (kind == RouteKind::Proxy).then(|| {
        json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute",
            "disabled": true,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_proxy_routes_turn_the_compressor_off() {
        assert_eq!(per_route(RouteKind::Llm), None);
        assert_eq!(per_route(RouteKind::Mcp), None);
        assert_eq!(per_route(RouteKind::Proxy).unwrap()["disabled"], true);
    }
}
