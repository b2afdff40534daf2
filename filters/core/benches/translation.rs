//! Criterion benchmarks of what the filters do per request and per stream chunk.
//!
//! Run: `cargo bench -p tollgate-core --bench translation`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tollgate_core::config::ProviderEndpoint;
use tollgate_core::request::inspect_chat_request;
use tollgate_core::translate::{upstream_request, ResponseContext, StreamTranslator};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{path}")).unwrap()
}

fn provider(pair: &str) -> ProviderEndpoint {
    serde_json::from_slice(&read(&format!("{pair}/provider.json"))).unwrap()
}

/// A ~1 KB chat request like the guide's examples, with a system prompt and history.
fn typical_request() -> Vec<u8> {
    let filler = "Explain the trade-offs briefly and concretely. ".repeat(4);
    serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "temperature": 0.2,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": format!("You are a helpful assistant. {filler}")},
            {"role": "user", "content": format!("What is a priority group? {filler}")},
            {"role": "assistant", "content": "A set of providers tried together before the next set."},
            {"role": "user", "content": format!("And failover? {filler}")}
        ]
    })
    .to_string()
    .into_bytes()
}

fn request_translation(c: &mut Criterion) {
    let body = typical_request();
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("router_inspect_1k", |b| {
        b.iter(|| inspect_chat_request(black_box(&body), 1 << 20).unwrap())
    });
    for pair in [
        "openai_passthrough",
        "openai_to_anthropic",
        "openai_to_gemini",
    ] {
        let endpoint = provider(pair);
        group.bench_function(format!("adapter_{pair}_1k"), |b| {
            b.iter(|| upstream_request(black_box(&endpoint), black_box(&body)).unwrap())
        });
    }
    group.finish();
}

fn stream_translation(c: &mut Criterion) {
    let context = ResponseContext {
        model: "m".into(),
        created: 1_700_000_000,
        fallback_id: "chatcmpl-b".into(),
    };
    let mut group = c.benchmark_group("sse_chunk");
    let cases = [
        (
            "openai_to_anthropic",
            "openai_to_anthropic/stream_text/upstream_response.sse",
        ),
        (
            "openai_to_gemini",
            "openai_to_gemini/stream_text/upstream_response.sse",
        ),
    ];
    for (pair, file) in cases {
        let sse = read(file);
        // Each event is one network chunk, as providers flush them.
        let events: Vec<Vec<u8>> = split_events(&sse);
        let kind = provider(pair).kind;
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function(format!("{pair}_whole_stream_per_event_chunks"), |b| {
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                let mut translator = StreamTranslator::for_provider(kind, &context).unwrap();
                for event in &events {
                    out.clear();
                    translator.push(black_box(event), &mut out);
                }
                translator.finish(&mut out);
                black_box(&out);
            })
        });
    }
    // One text delta through a long-lived translator: the steady-state cost per chunk.
    let delta = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" the quick brown fox\"}}\n\n";
    let mut translator =
        StreamTranslator::for_provider(provider("openai_to_anthropic").kind, &context).unwrap();
    let mut out = Vec::with_capacity(1024);
    group.throughput(Throughput::Elements(1));
    group.bench_function("anthropic_text_delta_steady_state", |b| {
        b.iter(|| {
            out.clear();
            translator.push(black_box(delta), &mut out);
            black_box(&out);
        })
    });
    let gemini_event = b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\" the quick brown fox\"}]},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2,\"totalTokenCount\":6},\"modelVersion\":\"gemini-1.5-flash-002\",\"responseId\":\"r-s1\"}\r\n\r\n";
    let mut translator =
        StreamTranslator::for_provider(provider("openai_to_gemini").kind, &context).unwrap();
    group.bench_function("gemini_text_event_steady_state", |b| {
        b.iter(|| {
            out.clear();
            translator.push(black_box(gemini_event), &mut out);
            black_box(&out);
        })
    });
    group.finish();
}

fn split_events(sse: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(sse).replace("\r\n", "\n");
    text.split_inclusive("\n\n")
        .map(|e| e.as_bytes().to_vec())
        .collect()
}

criterion_group!(benches, request_translation, stream_translation);
criterion_main!(benches);
