//! What the response cache costs per request: one JSON chat request through `tollgate.wasm`'s
//! pipeline in the wasmtime host — routing alone; routing + the guide's response cache on a
//! miss (key, lookup, the answer collected and stored in shared data); and on a hit (key,
//! lookup, the stored answer replayed as a local reply, nothing upstream).
//!
//! `cargo bench -p tollgate --bench cache_stage` (needs scripts/build-wasm first). Differences
//! between the rows are the stage's cost in this host; Envoy's V8 differs in absolute terms.

use criterion::{criterion_group, criterion_main, Criterion};
use std::cell::Cell;
use tollgate_host::{Host, Value};

#[path = "../tests/support/mod.rs"]
mod support;

fn host(config: &str) -> Host {
    support::pipeline(config).build().unwrap()
}

fn request(question: &str) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{question}"}}]}}"#
    )
}

fn cache_stage(c: &mut Criterion) {
    let answer = r#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}"#;
    let response = [(":status", "200"), ("content-type", "application/json")];
    let routes = r#"{"routes":{"llm-routes":{"kind":"llm"}}}"#;
    let cache = r#"{"routes":{"llm-routes":{"response":{"mode":"safe","ttl_ms":3600000,
        "key":{"headers":["Authorization"],"json_paths":["$.model","$.messages","$.temperature"]},
        "store":{"max_size_bytes":104857600}}}}}"#;
    let run_with = |host: &Host, body: &str, extra: &[(&str, &str)]| {
        let mut s = host.stream();
        s.set_property(
            &["xds", "route_name"],
            Value::String("llm-routes/0/0".into()),
        );
        let length = body.len().to_string();
        let mut headers = support::chat_request_headers(&length).to_vec();
        headers.extend([("authorization", "Bearer bench")]);
        headers.extend_from_slice(extra);
        s.send_request_headers(&headers, false);
        s.send_request_body(body.as_bytes(), true);
        if s.local_reply().is_none() {
            s.send_response_headers(&response, false);
            s.send_response_body(answer.as_bytes(), true);
        }
        s.finish();
    };
    let run = |host: &Host, body: &str| run_with(host, body, &[]);
    let mut group = c.benchmark_group("cache_stage");
    let route_only = host(&format!(r#"{{"route":{routes}}}"#));
    let fixed = request("Say hello to the benchmark");
    group.bench_function("route_only", |b| b.iter(|| run(&route_only, &fixed)));
    let cached = host(&format!(r#"{{"route":{routes},"cache":{cache}}}"#));
    let n = Cell::new(0u64);
    group.bench_function("miss_and_store", |b| {
        b.iter(|| {
            n.set(n.get() + 1);
            run(
                &cached,
                &request(&format!("Question number {:012}", n.get())),
            )
        })
    });
    // Same length as the miss rows' bodies, so the difference is the stage's work.
    let hit = request(&format!("Question number {:012}", 0));
    run(&cached, &hit);
    group.bench_function("hit", |b| b.iter(|| run(&cached, &hit)));
    let sampled = fixed.replace(r#""temperature":0,"#, "");
    group.bench_function("bypass", |b| b.iter(|| run(&cached, &sampled)));
    // The key alone: neither looked up nor stored.
    let directives = [("cache-control", "no-cache, no-store")];
    group.bench_function("key_only", |b| {
        b.iter(|| run_with(&cached, &hit, &directives))
    });
    let unique = Cell::new(0u64);
    group.bench_function("route_only_unique_bodies", |b| {
        b.iter(|| {
            unique.set(unique.get() + 1);
            run(
                &route_only,
                &request(&format!("Question number {:012}", unique.get())),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, cache_stage);
criterion_main!(benches);
