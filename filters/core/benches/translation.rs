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

/// A long agent history: `turns` assistant tool calls, each answered by a tool message.
fn tool_history(turns: usize) -> Vec<u8> {
    let mut messages = vec![serde_json::json!({"role": "user", "content": "go"})];
    for turn in 0..turns {
        messages.push(
            serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": format!("call_{turn}"), "type": "function",
             "function": {"name": "read_file", "arguments": "{\"path\":\"a.txt\"}"}}]}),
        );
        messages.push(
            serde_json::json!({"role": "tool", "tool_call_id": format!("call_{turn}"),
            "content": "file contents"}),
        );
    }
    serde_json::to_vec(&serde_json::json!({"model": "m", "messages": messages})).unwrap()
}

/// Request translation of 2,000 tool messages (linear since the call-name map; it was a
/// scan of the whole history per tool message for Gemini).
fn tool_histories(c: &mut Criterion) {
    let mut group = c.benchmark_group("tool_history");
    group.sample_size(20);
    for turns in [200, 2000] {
        let body = tool_history(turns);
        for pair in ["openai_to_gemini", "openai_to_anthropic"] {
            let endpoint = provider(pair);
            group.bench_function(format!("{pair}_{turns}_tool_messages"), |b| {
                b.iter(|| upstream_request(black_box(&endpoint), black_box(&body)).unwrap())
            });
        }
    }
    group.finish();
}

fn split_events(sse: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(sse).replace("\r\n", "\n");
    text.split_inclusive("\n\n")
        .map(|e| e.as_bytes().to_vec())
        .collect()
}

criterion_group!(
    benches,
    request_translation,
    stream_translation,
    tool_histories
);
criterion_main!(benches);
