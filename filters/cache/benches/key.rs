//! What a response-cache key costs natively, per request of the wasmtime host's `cache_stage`
//! bench (the guide's key: Authorization, `$.model`, `$.messages`, `$.temperature`, safe mode):
//! the whole plan (top-level split, policy, body part, canonical document, SHA-256), and the
//! body's canonical text alone, written from the raw JSON against through a `serde_json::Value`.
//!
//! `cargo bench -p tollgate-cache --bench key`. The module's cost in Envoy is the host bench's
//! (`cargo bench -p tollgate --bench cache_stage`); this one names the functions under callgrind.
//! Natively the `sha2` crate would use the CPU's SHA instructions, which wasm does not have, so
//! the hash's share here is not the module's (`src/sha256.rs` is written for the module).

use criterion::{criterion_group, criterion_main, Criterion};
use std::collections::BTreeMap;
use std::hint::black_box;
use tollgate_cache::canonical;
use tollgate_cache::policy::ClientDirectives;
use tollgate_cache::response::{RequestInput, ResponseCache};
use tollgate_core::config::cache::{CacheMode, KeyConfig, ResponseCachePolicy};
use tollgate_core::facts::Caller;

/// The host bench's request body.
const BODY: &str = r#"{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Question number 000000000042"}]}"#;

fn cache(json_paths: &[&str]) -> ResponseCache {
    let policy = ResponseCachePolicy {
        mode: CacheMode::Safe,
        key: KeyConfig {
            headers: vec!["Authorization".into()],
            json_paths: json_paths.iter().map(|p| p.to_string()).collect(),
        },
        ..Default::default()
    };
    ResponseCache::new(&policy, "bench").unwrap()
}

fn key(c: &mut Criterion) {
    let headers = BTreeMap::from([("authorization".to_string(), b"Bearer bench".to_vec())]);
    let caller = Caller::default();
    let input = RequestInput {
        route: Some("llm-routes/0/0"),
        backend: None,
        stream: false,
        caller: &caller,
        headers: &headers,
        directives: ClientDirectives::default(),
        body: BODY.as_bytes(),
    };
    let mut group = c.benchmark_group("key");
    let guide = cache(&["$.model", "$.messages", "$.temperature"]);
    group.bench_function("plan_guide_paths", |b| {
        b.iter(|| guide.plan(black_box(&input)))
    });
    let whole = cache(&[]);
    group.bench_function("plan_whole_body", |b| {
        b.iter(|| whole.plan(black_box(&input)))
    });
    group.bench_function("canonical_body_raw", |b| {
        b.iter(|| {
            let mut out = String::new();
            canonical::write_json(black_box(BODY), &mut out).unwrap();
            out
        })
    });
    group.bench_function("canonical_body_via_value", |b| {
        b.iter(|| {
            let value: serde_json::Value = serde_json::from_str(black_box(BODY)).unwrap();
            canonical::to_string(&value)
        })
    });
    group.finish();
}

criterion_group!(benches, key);
criterion_main!(benches);
