//! One full request through the fixture filter in the host: request headers, a 1 KB body,
//! response headers and a body, then on_log/on_done/on_delete.
//!
//! `cargo bench -p tollgate-host --bench full_request` (needs scripts/build-wasm first).
//! Measured on the shared 2-core dev machine (2026-11-28): about 15 µs per full request with the
//! pass-through action (`plain`) and 16 µs when the filter buffers and rewrites the body
//! (`buffer`); runs while other builds were going on gave 17-28 µs.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_host::Host;

fn fixture_wasm() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = root.join("build/wasm/tollgate_fixture_filter.wasm");
    if built.exists() {
        built
    } else {
        root.join("target/wasm32-unknown-unknown/wasm-release/tollgate_fixture_filter.wasm")
    }
}

fn full_request(c: &mut Criterion) {
    let body = vec![b'x'; 1024];
    let mut group = c.benchmark_group("full_request");
    for action in ["plain", "buffer"] {
        let host = Host::builder()
            .module(fixture_wasm())
            .vm_id("bench")
            .root_id("fixture")
            .configuration("greeting=bench")
            .allow_on_headers_stop_iteration(true)
            .build()
            .expect("fixture filter loads (run scripts/build-wasm)");
        let headers = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "api.example"),
            (":scheme", "http"),
            ("content-type", "application/json"),
            ("x-fixture-action", action),
        ];
        group.bench_function(action, |b| {
            b.iter(|| {
                let mut s = host.stream();
                s.send_request_headers(&headers, false);
                s.send_request_body(&body, true);
                s.send_response_headers(
                    &[(":status", "200"), ("content-type", "application/json")],
                    false,
                );
                s.send_response_body(&body, true);
                s.finish();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, full_request);
criterion_main!(benches);
