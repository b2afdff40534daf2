//! The response cache of the built `tollgate.wasm` in the wasmtime host: hits answered
//! locally, TTL on the virtual clock, the byte bound with eviction, entries shared by the
//! workers, concurrent misses of one key, streams stored only when complete.

use serde_json::Value as Json;
use std::time::Duration;
use tollgate_host::{Host, Outcome, Value};

mod support;

const VM_ID: &str = "tollgate";
const NS: &str = "tollgate.cache/llm-routes/response";

fn config(mode: &str, ttl_ms: u64, max_size: u64, slots: u32) -> String {
    format!(
        r#"{{"route":{{"routes":{{"llm-routes":{{"kind":"llm"}}}}}},
  "cache":{{"routes":{{"llm-routes":{{"response":{{
    "mode":"{mode}","ttl_ms":{ttl_ms},
    "key":{{"headers":["Authorization"],"json_paths":["$.model","$.messages","$.temperature"]}},
    "store":{{"max_size_bytes":{max_size},"max_entry_bytes":{max_size},"slots":{slots}}}}}}}}}}}}}"#
    )
}

fn host_with(config: &str, workers: usize) -> Host {
    support::pipeline(config).workers(workers).build().unwrap()
}

fn host() -> Host {
    host_with(&config("safe", 60_000, 1 << 20, 64), 1)
}

fn chat(content: &str) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"messages":[{{"role":"user","content":"{content}"}}]}}"#
    )
}

fn stream_chat(content: &str) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"stream":true,"messages":[{{"role":"user","content":"{content}"}}]}}"#
    )
}

fn answer(content: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-upstream","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}}}"#
    )
}

/// The SSE frames of a streamed answer (with `[DONE]` when `complete`).
fn stream_frames(complete: bool) -> Vec<String> {
    let mut frames = vec![
        r#"data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#.to_string() + "\n\n",
        r#"data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#.to_string() + "\n\n",
        r#"data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_string() + "\n\n",
        r#"data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#.to_string() + "\n\n",
    ];
    if complete {
        frames.push("data: [DONE]\n\n".to_string());
    }
    frames
}

/// What one request did.
#[derive(Debug)]
struct Seen {
    /// `x-cache-status` the client got.
    cache_status: Option<String>,
    /// Whether it went upstream.
    upstream: bool,
    /// The client's body (local reply or upstream answer).
    body: Vec<u8>,
    /// `age` on a hit.
    age: Option<String>,
}

/// A request opened on `worker` up to the point where it either went upstream or was answered.
struct Open {
    stream: tollgate_host::Stream,
    outcome: Outcome,
}

fn open(host: &Host, worker: usize, auth: &str, body: &str, extra: &[(&str, &str)]) -> Open {
    let mut stream = host.stream_on_worker(worker);
    stream.set_property(
        &["xds", "route_name"],
        Value::String("llm-routes/0/0".into()),
    );
    let length = body.len().to_string();
    let mut headers = support::chat_request_headers(&length).to_vec();
    headers.extend([("authorization", auth)]);
    headers.extend_from_slice(extra);
    stream.send_request_headers(&headers, false);
    let outcome = stream.send_request_body(body.as_bytes(), true);
    Open { stream, outcome }
}

/// Answers an open request with `frames` (JSON: one frame) and finishes it.
fn answer_with(mut open: Open, content_type: &str, frames: &[String], end: bool) -> Seen {
    if let Outcome::LocalReply(reply) = &open.outcome {
        let seen = Seen {
            cache_status: reply.headers.get("x-cache-status"),
            upstream: false,
            body: reply.body.clone(),
            age: reply.headers.get("age"),
        };
        open.stream.finish();
        return seen;
    }
    assert!(
        open.stream.upstream().headers.is_some(),
        "{:?}",
        open.outcome
    );
    open.stream
        .send_response_headers(&[(":status", "200"), ("content-type", content_type)], false);
    for (i, frame) in frames.iter().enumerate() {
        open.stream
            .send_response_body(frame.as_bytes(), end && i + 1 == frames.len());
    }
    finished(open)
}

/// What the client got from an answered request, which is then finished.
fn finished(mut open: Open) -> Seen {
    let down = open.stream.downstream();
    open.stream.finish();
    let headers = down.headers.unwrap();
    Seen {
        cache_status: headers.get("x-cache-status"),
        upstream: true,
        body: down.body,
        age: headers.get("age"),
    }
}

fn send(host: &Host, worker: usize, auth: &str, body: &str, extra: &[(&str, &str)]) -> Seen {
    let open = open(host, worker, auth, body, extra);
    answer_with(open, "application/json", &[answer("Hello!")], true)
}

fn metric(host: &Host, name: &str) -> u64 {
    host.metric(&format!("wasmcustom.{name}")).unwrap_or(0)
}

/// Bytes held by the namespace's slots (what shared data really holds) and its ledger.
fn held_bytes(host: &Host, slots: u32) -> (u64, u64) {
    let held = (0..slots)
        .map(|i| {
            host.shared_data(VM_ID, &format!("{NS}/slot/{i}"))
                .map_or(0, |(v, _)| v.len() as u64)
        })
        .sum();
    let ledger = host
        .shared_data(VM_ID, &format!("{NS}/bytes"))
        .map(|(v, _)| u64::from_le_bytes(v.try_into().unwrap()))
        .unwrap();
    (held, ledger)
}

#[test]
fn a_repeated_request_is_answered_from_the_cache_with_a_fresh_id_and_the_original_usage() {
    let host = host();
    let first = send(&host, 0, "Bearer alice", &chat("hi"), &[]);
    assert_eq!(
        (first.cache_status.as_deref(), first.upstream),
        (Some("MISS"), true)
    );
    host.advance_time(Duration::from_secs(3));
    let second = send(&host, 0, "Bearer alice", &chat("hi"), &[]);
    assert_eq!(
        (second.cache_status.as_deref(), second.upstream),
        (Some("HIT"), false)
    );
    assert_eq!(second.age.as_deref(), Some("3"));
    let original: Json = serde_json::from_str(&answer("Hello!")).unwrap();
    let replayed: Json = serde_json::from_slice(&second.body).unwrap();
    assert_ne!(replayed["id"], original["id"]);
    assert!(replayed["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_ne!(replayed["created"], original["created"]);
    assert_eq!(replayed["choices"], original["choices"]);
    assert_eq!(replayed["usage"], original["usage"]);
    assert_eq!(metric(&host, "tollgate_cache_hits_total"), 1);
    assert_eq!(metric(&host, "tollgate_cache_misses_total"), 1);
    assert_eq!(metric(&host, "tollgate_cache_tokens_saved_total"), 18);
}

#[test]
fn another_authorization_misses_and_the_same_one_hits() {
    let host = host();
    send(&host, 0, "Bearer alice", &chat("hi"), &[]);
    let bob = send(&host, 0, "Bearer bob", &chat("hi"), &[]);
    assert_eq!(
        (bob.cache_status.as_deref(), bob.upstream),
        (Some("MISS"), true)
    );
    let alice = send(&host, 0, "Bearer alice", &chat("hi"), &[]);
    assert_eq!(alice.cache_status.as_deref(), Some("HIT"));
}

#[test]
fn an_entry_expires_after_its_ttl_on_the_virtual_clock() {
    let host = host_with(&config("safe", 10_000, 1 << 20, 64), 1);
    send(&host, 0, "Bearer a", &chat("hi"), &[]);
    host.advance_time(Duration::from_millis(9_999));
    assert_eq!(
        send(&host, 0, "Bearer a", &chat("hi"), &[])
            .cache_status
            .as_deref(),
        Some("HIT")
    );
    host.advance_time(Duration::from_millis(1));
    let expired = send(&host, 0, "Bearer a", &chat("hi"), &[]);
    assert_eq!(
        (expired.cache_status.as_deref(), expired.upstream),
        (Some("MISS"), true)
    );
}

#[test]
fn the_store_stays_under_max_size_by_evicting_and_the_newest_entry_hits() {
    let slots = 64;
    let host = host_with(&config("safe", 60_000, 3_000, slots), 1);
    let mut entry_size = 0;
    for n in 0..12 {
        let seen = send(
            &host,
            0,
            "Bearer a",
            &chat(&format!("question {n:02}")),
            &[],
        );
        assert_eq!(seen.cache_status.as_deref(), Some("MISS"));
        let (held, ledger) = held_bytes(&host, slots);
        if n == 0 {
            entry_size = held; // every entry has this size: same answer, same-length question
        }
        assert!(held <= 3_000, "{held} bytes held after {n}");
        assert_eq!(held, ledger);
    }
    let fit = 3_000 / entry_size;
    assert!(fit < 12, "entries of {entry_size} bytes all fit");
    assert!(metric(&host, "tollgate_cache_evictions_total") >= 12 - fit);
    assert_eq!(metric(&host, "tollgate_cache_stores_total"), 12);
    let newest = send(&host, 0, "Bearer a", &chat("question 11"), &[]);
    assert_eq!(newest.cache_status.as_deref(), Some("HIT"));
    let (held, _) = held_bytes(&host, slots);
    assert_eq!(metric(&host, "tollgate_cache_stored_bytes"), held);
}

/// `proxy_get_shared_data` and `proxy_set_shared_data` calls since the last count.
fn shared_data_calls(host: &Host) -> (u64, u64) {
    let calls = host.hostcalls();
    host.reset_hostcalls();
    let count = |name: &str| calls.get(name).copied().unwrap_or(0);
    (
        count("proxy_get_shared_data"),
        count("proxy_set_shared_data"),
    )
}

#[test]
fn a_miss_reads_its_slot_once_and_a_hit_is_one_read() {
    let slots = 64;
    let host = host_with(&config("safe", 60_000, 1 << 20, slots), 1);
    host.reset_hostcalls();
    let miss = send(&host, 0, "Bearer a", &chat("hi"), &[]);
    assert_eq!(miss.cache_status.as_deref(), Some("MISS"));
    // The lookup's read of the slot, the ledger's read; the ledger's and the slot's writes.
    assert_eq!(shared_data_calls(&host), (2, 2));
    let (held, ledger) = held_bytes(&host, slots);
    assert!(held > 0);
    assert_eq!(ledger, held);
    assert_eq!(metric(&host, "tollgate_cache_stored_bytes"), held);
    let hit = send(&host, 0, "Bearer a", &chat("hi"), &[]);
    assert_eq!(hit.cache_status.as_deref(), Some("HIT"));
    assert_eq!(shared_data_calls(&host), (1, 0));
}

#[test]
fn a_miss_replacing_another_keys_entry_of_the_same_size_writes_only_its_slot() {
    let slots = 1;
    let host = host_with(&config("safe", 60_000, 1 << 20, slots), 1);
    send(&host, 0, "Bearer a", &chat("question 1"), &[]);
    host.reset_hostcalls();
    let other = send(&host, 0, "Bearer a", &chat("question 2"), &[]);
    assert_eq!(other.cache_status.as_deref(), Some("MISS"));
    assert_eq!(shared_data_calls(&host), (1, 1));
    assert_eq!(metric(&host, "tollgate_cache_evictions_total"), 1);
    let (held, ledger) = held_bytes(&host, slots);
    assert_eq!(held, ledger);
    assert_eq!(metric(&host, "tollgate_cache_stored_bytes"), held);
    let newest = send(&host, 0, "Bearer a", &chat("question 2"), &[]);
    assert_eq!(newest.cache_status.as_deref(), Some("HIT"));
}

#[test]
fn a_slot_written_by_another_worker_during_the_upstream_exchange_is_replaced_exactly() {
    let slots = 1;
    let host = host_with(&config("safe", 60_000, 1 << 20, slots), 2);
    // Looked up on worker 0; meanwhile worker 1 stores a larger entry of another key there.
    let late = open(&host, 0, "Bearer a", &chat("hi"), &[]);
    let long = "x".repeat(500);
    let other = open(&host, 1, "Bearer a", &chat("another question"), &[]);
    answer_with(other, "application/json", &[answer(&long)], true);
    let late = answer_with(late, "application/json", &[answer("short")], true);
    assert_eq!(late.cache_status.as_deref(), Some("MISS"));
    assert_eq!(metric(&host, "tollgate_cache_stores_total"), 2);
    let (held, ledger) = held_bytes(&host, slots);
    assert_eq!(held, ledger);
    assert_eq!(metric(&host, "tollgate_cache_stored_bytes"), held);
    let hit = send(&host, 1, "Bearer a", &chat("hi"), &[]);
    assert_eq!(hit.cache_status.as_deref(), Some("HIT"));
    let body: Json = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "short");
}

#[test]
fn an_entry_stored_by_one_worker_is_served_by_the_other() {
    let host = host_with(&config("safe", 60_000, 1 << 20, 64), 2);
    let first = send(&host, 0, "Bearer a", &chat("hi"), &[]);
    assert_eq!(first.cache_status.as_deref(), Some("MISS"));
    let second = send(&host, 1, "Bearer a", &chat("hi"), &[]);
    assert_eq!(
        (second.cache_status.as_deref(), second.upstream),
        (Some("HIT"), false)
    );
}

#[test]
fn concurrent_misses_of_one_key_both_go_upstream_and_leave_one_entry() {
    let slots = 64;
    let host = host_with(&config("safe", 60_000, 1 << 20, slots), 2);
    let a = open(&host, 0, "Bearer a", &chat("hi"), &[]);
    let b = open(&host, 1, "Bearer a", &chat("hi"), &[]);
    let a = answer_with(a, "application/json", &[answer("one")], true);
    let b = answer_with(b, "application/json", &[answer("two")], true);
    assert_eq!(
        (a.cache_status.as_deref(), b.cache_status.as_deref()),
        (Some("MISS"), Some("MISS"))
    );
    let (held, ledger) = held_bytes(&host, slots);
    assert_eq!(held, ledger);
    let occupied = (0..slots)
        .filter(|i| {
            host.shared_data(VM_ID, &format!("{NS}/slot/{i}"))
                .is_some_and(|(v, _)| !v.is_empty())
        })
        .count();
    assert_eq!(occupied, 1);
    let third = send(&host, 0, "Bearer a", &chat("hi"), &[]);
    assert_eq!(third.cache_status.as_deref(), Some("HIT"));
    let body: Json = serde_json::from_slice(&third.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "two");
}

#[test]
fn a_complete_stream_is_replayed_frame_for_frame_with_fresh_stamps() {
    let host = host();
    let frames = stream_frames(true);
    let first = answer_with(
        open(&host, 0, "Bearer a", &stream_chat("hi"), &[]),
        "text/event-stream",
        &frames,
        true,
    );
    assert_eq!(first.cache_status.as_deref(), Some("MISS"));
    let hit = answer_with(
        open(&host, 0, "Bearer a", &stream_chat("hi"), &[]),
        "text/event-stream",
        &frames,
        true,
    );
    assert_eq!(
        (hit.cache_status.as_deref(), hit.upstream),
        (Some("HIT"), false)
    );
    let replayed = String::from_utf8(hit.body).unwrap();
    let replayed: Vec<&str> = replayed.split_inclusive("\n\n").collect();
    assert_eq!(replayed.len(), frames.len());
    let mut ids = Vec::new();
    for (got, sent) in replayed.iter().zip(&frames) {
        if sent.starts_with("data: [DONE]") {
            assert_eq!(got, sent);
            continue;
        }
        let got: Json = serde_json::from_str(got.trim().strip_prefix("data: ").unwrap()).unwrap();
        let mut sent: Json =
            serde_json::from_str(sent.trim().strip_prefix("data: ").unwrap()).unwrap();
        assert_ne!(got["id"], sent["id"]);
        ids.push(got["id"].clone());
        sent["id"] = got["id"].clone();
        sent["created"] = got["created"].clone();
        assert_eq!(got, sent);
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
}

#[test]
fn a_truncated_stream_is_not_stored() {
    let host = host();
    let cut = answer_with(
        open(&host, 0, "Bearer a", &stream_chat("hi"), &[]),
        "text/event-stream",
        &stream_frames(false),
        true,
    );
    assert_eq!(cut.cache_status.as_deref(), Some("MISS"));
    let again = send(&host, 0, "Bearer a", &stream_chat("hi"), &[]);
    assert_eq!(
        (again.cache_status.as_deref(), again.upstream),
        (Some("MISS"), true)
    );
    assert_eq!(metric(&host, "tollgate_cache_stores_total"), 0);
}

#[test]
fn safe_mode_bypasses_sampled_requests_and_aggressive_mode_caches_them() {
    let sampled =
        r#"{"model":"gpt-4o-mini","temperature":0.7,"messages":[{"role":"user","content":"hi"}]}"#;
    let safe = host();
    assert_eq!(
        send(&safe, 0, "Bearer a", sampled, &[])
            .cache_status
            .as_deref(),
        Some("BYPASS")
    );
    assert_eq!(
        send(&safe, 0, "Bearer a", sampled, &[])
            .cache_status
            .as_deref(),
        Some("BYPASS")
    );
    let aggressive = host_with(&config("aggressive", 60_000, 1 << 20, 64), 1);
    send(&aggressive, 0, "Bearer a", sampled, &[]);
    assert_eq!(
        send(&aggressive, 0, "Bearer a", sampled, &[])
            .cache_status
            .as_deref(),
        Some("HIT")
    );
}

#[test]
fn the_clients_no_cache_skips_the_lookup_and_no_store_skips_the_store() {
    let host = host();
    let no_store = send(
        &host,
        0,
        "Bearer a",
        &chat("hi"),
        &[("cache-control", "no-store")],
    );
    assert_eq!(no_store.cache_status.as_deref(), Some("MISS"));
    let stored = send(&host, 0, "Bearer a", &chat("hi"), &[]);
    assert_eq!(stored.cache_status.as_deref(), Some("MISS"));
    let fresh = send(
        &host,
        0,
        "Bearer a",
        &chat("hi"),
        &[("cache-control", "no-cache")],
    );
    assert_eq!(
        (fresh.cache_status.as_deref(), fresh.upstream),
        (Some("BYPASS"), true)
    );
    assert_eq!(
        send(&host, 0, "Bearer a", &chat("hi"), &[])
            .cache_status
            .as_deref(),
        Some("HIT")
    );
}

#[test]
fn an_error_answer_is_not_stored() {
    let host = host();
    let mut open = open(&host, 0, "Bearer a", &chat("hi"), &[]);
    open.stream.send_response_headers(
        &[(":status", "500"), ("content-type", "application/json")],
        false,
    );
    open.stream
        .send_response_body(br#"{"error":{"message":"boom"}}"#, true);
    open.stream.finish();
    let again = send(&host, 0, "Bearer a", &chat("hi"), &[]);
    assert_eq!(again.cache_status.as_deref(), Some("MISS"));
}

/// The guide's tool-cache on an MCP route.
const MCP_CONFIG: &str = r#"{"route":{"routes":{"mcp-routes":{"kind":"mcp"}}},
  "cache":{"routes":{"mcp-routes":{"tools":{"rules":[
    {"json_path":"$.params.name","values":["kubectl-get","list-pods","list-services"],"ttl_ms":300000},
    {"json_path":"$.params.name","values":["kubectl-apply","kubectl-delete"],"enabled":false}]}}}}}"#;

fn tool_call(id: &str, name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{name}","arguments":{{"namespace":"default"}}}}}}"#
    )
}

/// One MCP POST; the server (when reached) answers `answer` as SSE or JSON.
fn mcp(host: &Host, body: &str, answer: &str, sse: bool) -> Seen {
    let mut stream = host.stream();
    stream.set_property(
        &["xds", "route_name"],
        Value::String("mcp-routes/0/0".into()),
    );
    let length = body.len().to_string();
    stream.send_request_headers(
        &[
            (":method", "POST"),
            (":path", "/mcp"),
            (":authority", "gateway"),
            (":scheme", "http"),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("content-length", length.as_str()),
            ("authorization", "Bearer agent"),
        ],
        false,
    );
    let outcome = stream.send_request_body(body.as_bytes(), true);
    let frames = if sse {
        vec![format!("event: message\ndata: {answer}\n\n")]
    } else {
        vec![answer.to_string()]
    };
    let content_type = if sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    let seen = answer_with(Open { stream, outcome }, content_type, &frames, true);
    if seen.upstream {
        assert_eq!(seen.body, frames.concat().into_bytes(), "passed untouched");
    }
    seen
}

#[test]
fn a_listed_tool_result_is_served_from_cache_with_the_new_request_id() {
    let host = host_with(MCP_CONFIG, 1);
    let result = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"pod-a"}],"isError":false}}"#;
    let first = mcp(&host, &tool_call("1", "list-pods"), result, true);
    assert_eq!(
        (first.cache_status.as_deref(), first.upstream),
        (Some("MISS"), true)
    );
    let hit = mcp(&host, &tool_call(r#""req-2""#, "list-pods"), result, true);
    assert_eq!(
        (hit.cache_status.as_deref(), hit.upstream),
        (Some("HIT"), false)
    );
    let body: Json = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["id"], "req-2");
    assert_eq!(body["result"]["content"][0]["text"], "pod-a");
    host.advance_time(Duration::from_secs(300));
    let expired = mcp(&host, &tool_call("3", "list-pods"), result, false);
    assert_eq!(expired.cache_status.as_deref(), Some("MISS"));
}

#[test]
fn write_tools_errors_and_other_methods_are_never_cached() {
    let host = host_with(MCP_CONFIG, 1);
    let ok = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[]}}}}"#);
    for _ in 0..2 {
        let write = mcp(&host, &tool_call("1", "kubectl-apply"), &ok("1"), false);
        assert_eq!(
            (write.cache_status.as_deref(), write.upstream),
            (Some("BYPASS"), true)
        );
    }
    let failed = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#;
    mcp(&host, &tool_call("1", "kubectl-get"), failed, false);
    let again = mcp(&host, &tool_call("1", "kubectl-get"), &ok("1"), false);
    assert_eq!(
        (again.cache_status.as_deref(), again.upstream),
        (Some("MISS"), true)
    );
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
    let seen = mcp(&host, init, &ok("0"), false);
    assert_eq!((seen.cache_status, seen.upstream), (None, true));
}

#[test]
fn a_tool_the_server_lists_as_destructive_is_never_cached() {
    let host = host_with(MCP_CONFIG, 1);
    let listed = r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"list-services","inputSchema":{},"annotations":{"destructiveHint":true}}]}}"#;
    mcp(
        &host,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#,
        listed,
        true,
    );
    let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    for _ in 0..2 {
        let call = mcp(&host, &tool_call("1", "list-services"), ok, false);
        assert_eq!(
            (call.cache_status.as_deref(), call.upstream),
            (Some("BYPASS"), true)
        );
    }
}

#[test]
fn destructive_tools_count_as_soon_as_the_list_event_arrives_before_its_stream_ends() {
    let host = host_with(MCP_CONFIG, 1);
    let mut list = host.stream();
    list.set_property(
        &["xds", "route_name"],
        Value::String("mcp-routes/0/0".into()),
    );
    let body = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
    let length = body.len().to_string();
    list.send_request_headers(
        &[
            (":method", "POST"),
            (":path", "/mcp"),
            (":authority", "gateway"),
            (":scheme", "http"),
            ("content-type", "application/json"),
            ("content-length", length.as_str()),
            ("authorization", "Bearer agent"),
        ],
        false,
    );
    list.send_request_body(body.as_bytes(), true);
    list.send_response_headers(
        &[(":status", "200"), ("content-type", "text/event-stream")],
        false,
    );
    let listed = r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"list-pods","inputSchema":{},"annotations":{"destructiveHint":true}}]}}"#;
    list.send_response_body(
        format!("event: message\r\ndata: {listed}\r\n\r\n").as_bytes(),
        false,
    );
    // The client has the list and calls before the list's stream has ended.
    let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
    let call = mcp(&host, &tool_call("1", "list-pods"), ok, true);
    assert_eq!(
        (call.cache_status.as_deref(), call.upstream),
        (Some("BYPASS"), true)
    );
    list.send_response_body(b"", true);
    list.finish();
}

/// Answers an open request with `frames`, the last body chunk without end of stream, then
/// trailers (as an HTTP/2 or gRPC-style upstream may end it), and finishes it.
fn answer_with_trailers(mut open: Open, content_type: &str, frames: &[String]) -> Seen {
    open.stream
        .send_response_headers(&[(":status", "200"), ("content-type", content_type)], false);
    for frame in frames {
        open.stream.send_response_body(frame.as_bytes(), false);
    }
    open.stream
        .send_response_trailers(&[("x-upstream-done", "1")]);
    finished(open)
}

#[test]
fn a_json_answer_that_ends_in_trailers_reaches_the_client_whole_and_is_stored() {
    let host = host();
    let first = answer_with_trailers(
        open(&host, 0, "Bearer alice", &chat("hi"), &[]),
        "application/json",
        &[answer("Hello!")],
    );
    assert_eq!(first.body, answer("Hello!").as_bytes());
    assert_eq!(metric(&host, "tollgate_cache_stores_total"), 1);
    let second = send(&host, 0, "Bearer alice", &chat("hi"), &[]);
    assert_eq!(second.cache_status.as_deref(), Some("HIT"));
    assert!(!second.upstream);
}

#[test]
fn a_stream_that_ends_in_trailers_is_stored_once_complete() {
    let host = host();
    let frames = stream_frames(true);
    let first = answer_with_trailers(
        open(&host, 0, "Bearer alice", &stream_chat("hi"), &[]),
        "text/event-stream",
        &frames,
    );
    assert_eq!(first.body, frames.concat().as_bytes());
    assert_eq!(metric(&host, "tollgate_cache_stores_total"), 1);
}

#[test]
fn a_tool_call_miss_reads_its_slot_once_and_a_hit_is_served_from_that_read() {
    let host = host_with(MCP_CONFIG, 1);
    let result = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"pod-a"}],"isError":false}}"#;
    host.reset_hostcalls();
    let miss = mcp(&host, &tool_call("1", "list-pods"), result, false);
    assert_eq!(
        (miss.cache_status.as_deref(), miss.upstream),
        (Some("MISS"), true)
    );
    // Reads: the server's destructive tools, the slot (the store reuses what it saw), the
    // ledger; writes: the ledger, the slot.
    assert_eq!(shared_data_calls(&host), (3, 2));
    let hit = mcp(&host, &tool_call("2", "list-pods"), result, false);
    assert_eq!(
        (hit.cache_status.as_deref(), hit.upstream),
        (Some("HIT"), false)
    );
    assert_eq!(shared_data_calls(&host), (2, 0));
}
