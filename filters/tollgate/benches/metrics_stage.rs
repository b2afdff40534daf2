//! What the metrics stage costs per request: one JSON chat request through `tollgate.wasm`'s
//! pipeline in the wasmtime host, routing alone vs routing + metrics (counters, histograms,
//! the in-flight gauge, and the 11 access-log filter-state fields).
//!
//! `cargo bench -p tollgate --bench metrics_stage` (needs scripts/build-wasm first). The
//! difference is the stage's cost in this host; Envoy's V8 differs in absolute terms.
//! Measured 2026-12-01 on the shared 2-core machine (load average 6-7): route only 17 µs,
//! route + metrics 43 µs (+26 µs: ~15 µs counting, including the pipeline's read of the JSON
//! answer it turns on, ~11 µs the 11 access-log filter-state fields), route + metrics without
//! the access log 32 µs. Before series ids were cached by label values (building and hashing
//! each stat name per request) the stage cost ~+50 µs.

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_host::Host;

#[path = "../tests/support/mod.rs"]
mod support;

fn host(config: &str) -> Host {
    support::pipeline(config).build().unwrap()
}

fn metrics_stage(c: &mut Criterion) {
    let request = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#;
    let answer = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":100,"total_tokens":1100,"prompt_tokens_details":{"cached_tokens":400}}}"#;
    let length = request.len().to_string();
    let headers = support::chat_request_headers(&length);
    let response = [
        (":status", "200"),
        ("content-type", "application/json"),
        ("x-tollgate-provider", "cheap-cloud"),
        ("x-tollgate-model", "gpt-4o-mini"),
    ];
    let route = r#"{"models":{"gpt-4o-mini":"fast"}}"#;
    let configs = [
        ("route_only", format!(r#"{{"route":{route}}}"#)),
        (
            "route_and_metrics",
            format!(r#"{{"route":{route},"metrics":{{"providers":{{"cheap-cloud":"openai"}}}}}}"#),
        ),
        (
            "route_and_metrics_without_access_log",
            format!(
                r#"{{"route":{route},"metrics":{{"access_log":false,"providers":{{"cheap-cloud":"openai"}}}}}}"#
            ),
        ),
    ];
    let mut group = c.benchmark_group("metrics_stage");
    for (name, config) in configs {
        let host = host(&config);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut s = host.stream();
                s.send_request_headers(&headers, false);
                s.send_request_body(request.as_bytes(), true);
                s.send_response_headers(&response, false);
                s.send_response_body(answer.as_bytes(), true);
                s.finish();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, metrics_stage);
criterion_main!(benches);
