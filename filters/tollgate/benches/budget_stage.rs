//! What the budget stage costs per request (local tier): one JSON chat request through
//! `tollgate.wasm`'s pipeline in the wasmtime host, routing alone vs routing + a budget (one
//! policy keyed on the client, two token buckets: the guide's day and minute) — identity read,
//! the CAS reservation in shared data with the cap spliced into the body, the rate-limit
//! headers, the reconciliation with the usage, the counters.
//!
//! `cargo bench -p tollgate --bench budget_stage` (needs scripts/build-wasm first). The
//! difference of the two is the stage's cost in this host; Envoy's V8 differs in absolute terms.
//! `BUDGET_BENCH_BODY='{...}'` replaces the request body (e.g. with a `max_tokens` below the
//! default, so the stage has no cap to splice in).
//!
//! Measured on the shared 2-core machine (2026-12-01, load ~10): route_only 29-33 µs,
//! route_and_budget 105-148 µs when the stage writes the cap into a body without one; with the
//! client's own smaller `max_tokens` (nothing to rewrite) 35-68 µs against 27-65 µs, i.e. a few
//! µs. The body rewrite (splice, buffer replace, content-length) dominates in this host; the
//! decisions themselves cost ~1.3 µs natively (`cargo bench -p tollgate-budget`).

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate_host::Host;

#[path = "../tests/support/mod.rs"]
mod support;

fn host(config: &str) -> Host {
    support::pipeline(config).build().unwrap()
}

fn budget_stage(c: &mut Criterion) {
    let request = std::env::var("BUDGET_BENCH_BODY").unwrap_or_else(|_| {
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#
            .to_string()
    });
    let request = request.as_str();
    let answer = r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}"#;
    let length = request.len().to_string();
    let mut headers = support::chat_request_headers(&length).to_vec();
    headers.extend([("x-tollgate-client", "bench-team")]);
    let response = [(":status", "200"), ("content-type", "application/json")];
    let route = r#"{"models":{"gpt-4o-mini":"fast"}}"#;
    // Buckets too large to refuse during the run: every request is reserved and reconciled.
    let budget = r#"{"policies":[{"name":"token-budget","key":["client"],"buckets":[
        {"max_tokens":1000000000000000,"tokens_per_fill":1000000000000000,"fill_interval_ms":86400000},
        {"max_tokens":1000000000000000,"tokens_per_fill":1000000000000000,"fill_interval_ms":60000}]}]}"#;
    let configs = [
        ("route_only", format!(r#"{{"route":{route}}}"#)),
        (
            "route_and_budget",
            format!(r#"{{"route":{route},"budget":{budget}}}"#),
        ),
    ];
    let mut group = c.benchmark_group("budget_stage");
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

criterion_group!(benches, budget_stage);
criterion_main!(benches);
