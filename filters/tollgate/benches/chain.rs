//! The side-by-side benchmark's full chain, one request at a time, in the wasmtime host: the
//! pipeline configuration the generator writes for `scripts/bench/gateway.yaml` (route, a
//! response-cache miss that stores, the token budget, metrics and the access log), the same
//! 1 KB chat body shape as `scripts/bench-load` (unique per request) and the mock's answer.
//!
//! `cargo bench -p tollgate --bench chain` (needs scripts/build-wasm first). To see where the
//! time goes inside the module, docs/benchmarks.md ("Profiling the chain in the host").

use criterion::{criterion_group, criterion_main, Criterion};
use std::cell::Cell;
use tollgate_e2e::bench_config;
use tollgate_host::{Host, Value};

#[path = "../tests/support/mod.rs"]
mod support;

/// The mock's answer in the side-by-side benchmark.
const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Benchmarks measure what they measure."},"finish_reason":"stop"}],"usage":{"prompt_tokens":240,"completion_tokens":9,"total_tokens":249}}"#;

/// A ~1 KB chat body like the load benchmark's, made unique by `n` (the cache misses).
fn body(n: u64) -> String {
    let paragraph = "Summarize the following paragraph in one sentence please. ".repeat(14);
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"max_tokens":64,"stream":false,"messages":[{{"role":"system","content":"You are terse. {n}"}},{{"role":"user","content":"{paragraph}"}}]}}"#
    )
}

/// One request through the chain, as Envoy would drive it.
fn request(host: &Host, body: &str) {
    let length = body.len().to_string();
    let answer_length = ANSWER.len().to_string();
    let mut s = host.stream();
    s.set_property(
        &["xds", "route_name"],
        Value::String(bench_config::ROUTE_NAME.into()),
    );
    s.send_request_headers(&support::chat_request_headers(&length), false);
    s.send_request_body(body.as_bytes(), true);
    s.send_response_headers(
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-length", answer_length.as_str()),
        ],
        false,
    );
    s.send_response_body(ANSWER.as_bytes(), true);
    s.finish();
}

fn chain(c: &mut Criterion) {
    let config = bench_config::pipeline_configuration().unwrap_or_else(|e| panic!("{e}"));
    let host = support::pipeline(&config).build().unwrap();
    let n = Cell::new(0u64);
    let mut group = c.benchmark_group("chain");
    group.bench_function("full_chain_miss", |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            request(&host, &body(n.get()))
        })
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
