//! Token budgets of the built `tollgate.wasm` in the wasmtime host: two worker VMs share one
//! budget through shared data, interleaved requests lose no update, streams are charged once,
//! resets and cache hits cost nothing, refusals are OpenAI-format 429s with the headers.

use serde_json::Value as Json;
use std::time::Duration;
use tollgate_host::{Host, Outcome, Stream, Value};

mod support;

const HOUR_MS: u64 = 3_600_000;

/// One policy on `llm-routes`, keyed on the authenticated client, one bucket of `max` tokens
/// per `interval_ms`; `extra` adds sections (the cache).
fn config(max: u64, interval_ms: u64, extra: &str) -> String {
    format!(
        r#"{{"route":{{"routes":{{"llm-routes":{{"kind":"llm"}}}}}},
  "budget":{{"slots":64,"policies":[{{"name":"per-user","routes":["llm-routes"],"key":["client"],
    "buckets":[{{"max_tokens":{max},"tokens_per_fill":{max},"fill_interval_ms":{interval_ms}}}]}}]}}{extra}}}"#
    )
}

fn host_with(config: &str, workers: usize) -> Host {
    support::pipeline(config).workers(workers).build().unwrap()
}

/// A chat body of exactly `len` bytes asking for at most `max_tokens` output tokens.
fn chat(len: usize, max_tokens: u64, stream: bool) -> String {
    let head = format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":{max_tokens},"stream":{stream},"messages":[{{"role":"user","content":""#
    );
    let tail = r#""}]}"#;
    let pad = len - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(pad))
}

/// A request on `worker` from `client`, up to where it went upstream or was answered.
fn open(host: &Host, worker: usize, client: Option<&str>, body: &str) -> (Stream, Outcome) {
    let mut stream = host.stream_on_worker(worker);
    stream.set_property(
        &["xds", "route_name"],
        Value::String("llm-routes/0/0".into()),
    );
    let length = body.len().to_string();
    let mut headers = support::chat_request_headers(&length).to_vec();
    if let Some(client) = client {
        headers.push(("x-tollgate-client", client));
    }
    stream.send_request_headers(&headers, false);
    let outcome = stream.send_request_body(body.as_bytes(), true);
    (stream, outcome)
}

fn usage_json(prompt: u64, completion: u64) -> String {
    format!(
        r#"{{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"hi"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}}}"#,
        prompt + completion
    )
}

/// Answers an admitted request with a JSON completion of that usage; returns the client's
/// `x-ratelimit-remaining-tokens`.
fn answer(mut stream: Stream, prompt: u64, completion: u64) -> u64 {
    assert!(
        stream.upstream().headers.is_some(),
        "the request must have gone upstream"
    );
    stream.send_response_headers(
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    );
    stream.send_response_body(usage_json(prompt, completion).as_bytes(), true);
    let down = stream.downstream();
    stream.finish();
    remaining(&down.headers.unwrap())
}

fn remaining(headers: &tollgate_host::Headers) -> u64 {
    headers
        .get("x-ratelimit-remaining-tokens")
        .expect("a budgeted answer carries x-ratelimit-remaining-tokens")
        .parse()
        .unwrap()
}

fn refused(outcome: &Outcome) -> &tollgate_host::LocalReply {
    match outcome {
        Outcome::LocalReply(reply) if reply.status == 429 => reply,
        other => panic!("expected a 429, got {other:?}"),
    }
}

fn metric(host: &Host, name: &str) -> u64 {
    host.metric(&format!("wasmcustom.{name}")).unwrap_or(0)
}

#[test]
fn two_workers_share_one_budget() {
    let host = host_with(&config(1_000, HOUR_MS, ""), 2);
    // Each request reserves 100 bytes of input + 300 output = 400 tokens.
    let body = chat(100, 300, false);
    let (a, first) = open(&host, 0, Some("alice"), &body);
    assert!(
        matches!(first, Outcome::Pause | Outcome::Continue),
        "{first:?}"
    );
    let (b, second) = open(&host, 1, Some("alice"), &body);
    assert!(
        matches!(second, Outcome::Pause | Outcome::Continue),
        "{second:?}"
    );
    // 200 left: the third, on either worker, is clamped to 100 output tokens...
    let (c, third) = open(&host, 0, Some("alice"), &body);
    assert!(
        matches!(third, Outcome::Pause | Outcome::Continue),
        "{third:?}"
    );
    let sent: Json = serde_json::from_slice(&c.upstream().body).unwrap();
    assert_eq!(sent["max_tokens"], 100);
    // ...and the fourth refused, with the headers and a Retry-After of the hour.
    let (_, fourth) = open(&host, 1, Some("alice"), &body);
    let reply = refused(&fourth);
    assert_eq!(
        reply.headers.get("x-ratelimit-limit-tokens").as_deref(),
        Some("1000")
    );
    assert_eq!(
        reply.headers.get("x-ratelimit-remaining-tokens").as_deref(),
        Some("0")
    );
    assert_eq!(reply.headers.get("retry-after").as_deref(), Some("3600"));
    assert_eq!(
        reply.headers.get("x-ratelimit-reset-tokens").as_deref(),
        Some("1h0m0s")
    );
    let error: Json = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded");
    // Bob has his own budget.
    let (bob, bobs) = open(&host, 1, Some("bob"), &body);
    assert!(
        matches!(bobs, Outcome::Pause | Outcome::Continue),
        "{bobs:?}"
    );
    assert_eq!(answer(bob, 10, 10), 600);
    // Real usage replaces the reservations: 20 + 20 + 20 charged of 1000.
    answer(a, 10, 10);
    answer(b, 10, 10);
    assert_eq!(answer(c, 10, 10), 0, "remaining as of c's reservation");
    let (d, _) = open(&host, 1, Some("alice"), &body);
    assert_eq!(answer(d, 10, 10), 1_000 - 60 - 400);
    assert_eq!(
        metric(
            &host,
            "tollgate_budget_requests_total.policy.per-user.result.rejected.reason.tokens"
        ),
        1
    );
}

#[test]
fn interleaved_requests_on_two_workers_lose_no_update() {
    let host = host_with(&config(100_000, HOUR_MS, ""), 2);
    let body = chat(100, 50, false);
    let mut open_streams = Vec::new();
    let mut charged = 0;
    for i in 0..40u64 {
        let (s, outcome) = open(&host, (i % 2) as usize, Some("alice"), &body);
        assert!(matches!(outcome, Outcome::Pause | Outcome::Continue));
        open_streams.push((s, i));
        // Settle out of order: every third step, the oldest of the open ones.
        if i % 3 == 2 {
            let (s, j) = open_streams.remove(0);
            charged += 1 + j;
            answer(s, 1, j);
        }
    }
    for (s, j) in open_streams {
        charged += 1 + j;
        answer(s, 1, j);
    }
    let (last, _) = open(&host, 0, Some("alice"), &body);
    assert_eq!(answer(last, 0, 0), 100_000 - charged - 150);
    assert_eq!(
        metric(
            &host,
            "tollgate_budget_tokens_total.policy.per-user.result.charged"
        ),
        charged
    );
    assert_eq!(
        metric(
            &host,
            "tollgate_budget_overshoot_tokens_total.policy.per-user"
        ),
        0
    );
}

fn sse_frames() -> Vec<String> {
    [
        r#"data: {"id":"s","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
        r#"data: {"id":"s","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
        r#"data: {"id":"s","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        "data: [DONE]",
    ]
    .iter()
    .map(|f| format!("{f}\n\n"))
    .collect()
}

#[test]
fn a_stream_is_charged_its_final_usage_once() {
    let host = host_with(&config(10_000, HOUR_MS, ""), 1);
    let body = chat(200, 100, true);
    let (mut s, _) = open(&host, 0, Some("alice"), &body);
    s.send_response_headers(
        &[(":status", "200"), ("content-type", "text/event-stream")],
        false,
    );
    let frames = sse_frames();
    for (i, frame) in frames.iter().enumerate() {
        // Split each event across two chunks: the usage must still be read once.
        let (x, y) = frame.split_at(frame.len() / 2);
        s.send_response_body(x.as_bytes(), false);
        s.send_response_body(y.as_bytes(), i + 1 == frames.len());
    }
    s.finish();
    assert_eq!(
        metric(
            &host,
            "tollgate_budget_tokens_total.policy.per-user.result.charged"
        ),
        7
    );
    let (next, _) = open(&host, 0, Some("alice"), &chat(200, 100, false));
    assert_eq!(answer(next, 0, 0), 10_000 - 7 - 300);
}

#[test]
fn a_stream_without_usage_stays_charged_its_reservation() {
    let host = host_with(&config(10_000, HOUR_MS, ""), 1);
    let (mut s, _) = open(&host, 0, Some("alice"), &chat(200, 100, true));
    s.send_response_headers(
        &[(":status", "200"), ("content-type", "text/event-stream")],
        false,
    );
    let frames = sse_frames();
    s.send_response_body(frames[0].as_bytes(), false);
    s.send_response_body(frames[3].as_bytes(), true);
    s.finish();
    assert_eq!(
        metric(&host, "tollgate_budget_unreconciled_total.policy.per-user"),
        1
    );
    // The stream reserved 340: its upstream body carries the 40 bytes of
    // `"stream_options":{"include_usage":true},` the router adds.
    let (next, _) = open(&host, 0, Some("alice"), &chat(200, 100, false));
    assert_eq!(answer(next, 0, 0), 10_000 - 340 - 300);
}

#[test]
fn a_reset_before_any_answer_refunds_the_reservation() {
    let host = host_with(&config(1_000, HOUR_MS, ""), 2);
    let body = chat(100, 800, false);
    let (mut s, _) = open(&host, 0, Some("alice"), &body);
    s.finish(); // the client went away before the provider answered
    assert_eq!(
        metric(
            &host,
            "tollgate_budget_tokens_total.policy.per-user.result.refunded"
        ),
        900
    );
    let (next, outcome) = open(&host, 1, Some("alice"), &body);
    assert!(
        matches!(outcome, Outcome::Pause | Outcome::Continue),
        "{outcome:?}"
    );
    assert_eq!(answer(next, 0, 0), 100);
}

#[test]
fn an_upstream_error_without_usage_refunds_the_reservation() {
    let host = host_with(&config(1_000, HOUR_MS, ""), 1);
    let (mut s, _) = open(&host, 0, Some("alice"), &chat(100, 800, false));
    s.send_response_headers(
        &[(":status", "503"), ("content-type", "application/json")],
        false,
    );
    s.send_response_body(
        br#"{"error":{"message":"down","type":"server_error"}}"#,
        true,
    );
    s.finish();
    let (next, _) = open(&host, 0, Some("alice"), &chat(100, 800, false));
    assert_eq!(answer(next, 0, 0), 100);
}

#[test]
fn a_cache_hit_costs_no_budget() {
    let cache =
        r#","cache":{"routes":{"llm-routes":{"response":{"mode":"aggressive","ttl_ms":60000}}}}"#;
    let host = host_with(&config(10_000, HOUR_MS, cache), 1);
    let body = chat(100, 50, false);
    let (miss, _) = open(&host, 0, Some("alice"), &body);
    assert_eq!(answer(miss, 11, 7), 10_000 - 150);
    let (mut hit, outcome) = open(&host, 0, Some("alice"), &body);
    match &outcome {
        Outcome::LocalReply(reply) => {
            assert_eq!(reply.status, 200);
            assert_eq!(reply.headers.get("x-cache-status").as_deref(), Some("HIT"));
        }
        other => panic!(
            "expected a cache hit, got {other:?}: {:?}",
            host.log_messages(tollgate_host::LogLevel::Warn)
        ),
    }
    hit.finish();
    // Only the miss was charged (18 tokens); the hit reserved nothing.
    assert_eq!(
        metric(
            &host,
            "tollgate_budget_tokens_total.policy.per-user.result.reserved"
        ),
        150
    );
    let (next, _) = open(&host, 0, Some("alice"), &chat(100, 60, false));
    assert_eq!(answer(next, 0, 0), 10_000 - 18 - 160);
}

#[test]
fn a_caller_without_identity_gets_a_401_in_the_openai_format() {
    let host = host_with(&config(1_000, HOUR_MS, ""), 1);
    let (_, outcome) = open(&host, 0, None, &chat(100, 10, false));
    let Outcome::LocalReply(reply) = outcome else {
        panic!("expected a local reply")
    };
    assert_eq!(reply.status, 401);
    let error: Json = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(error["error"]["type"], "authentication_error");
}

#[test]
fn the_budget_keys_on_a_jwt_claim_from_jwt_authn_metadata() {
    let config = r#"{"route":{"routes":{"llm-routes":{"kind":"llm"}}},
  "budget":{"slots":8,"policies":[{"name":"per-sub","key":["jwt.sub"],
    "buckets":[{"max_tokens":1000,"tokens_per_fill":1000,"fill_interval_ms":60000}]}]}}"#;
    let host = host_with(config, 1);
    let send = |sub: &str| {
        let mut s = host.stream();
        s.set_property(
            &["xds", "route_name"],
            Value::String("llm-routes/0/0".into()),
        );
        s.set_property(
            &[
                "metadata",
                "filter_metadata",
                "envoy.filters.http.jwt_authn",
                "jwt_payload",
                "sub",
            ],
            Value::String(sub.into()),
        );
        let body = chat(100, 800, false);
        let length = body.len().to_string();
        s.send_request_headers(&support::chat_request_headers(&length), false);
        let outcome = s.send_request_body(body.as_bytes(), true);
        (s, outcome)
    };
    let (a, _) = send("user-a");
    assert_eq!(answer(a, 100, 800), 100);
    let (_, again) = send("user-a");
    refused(&again);
    let (b, other) = send("user-b");
    assert!(
        matches!(other, Outcome::Pause | Outcome::Continue),
        "{other:?}"
    );
    assert_eq!(answer(b, 1, 1), 100);
}

#[test]
fn a_spent_budget_refills_on_the_virtual_clock() {
    let host = host_with(&config(1_000, 60_000, ""), 2);
    let body = chat(100, 800, false);
    let (a, _) = open(&host, 0, Some("alice"), &body);
    answer(a, 100, 800);
    let (_, outcome) = open(&host, 1, Some("alice"), &body);
    let reply = refused(&outcome);
    assert_eq!(reply.headers.get("retry-after").as_deref(), Some("60"));
    host.advance_time(Duration::from_secs(60));
    let (b, outcome) = open(&host, 1, Some("alice"), &body);
    assert!(
        matches!(outcome, Outcome::Pause | Outcome::Continue),
        "{outcome:?}"
    );
    assert_eq!(answer(b, 1, 1), 100);
}

/// The global tier: the same policy, its state in the budget service.
fn global_config(fail_open: bool) -> String {
    format!(
        r#"{{"route":{{"routes":{{"llm-routes":{{"kind":"llm"}}}}}},
  "budget":{{"global":{{"cluster":"budget-service","authority":"budget:8090","timeout_ms":150,"fail_open":{fail_open}}},
    "policies":[{{"name":"per-user","routes":["llm-routes"],"key":["client"],
    "buckets":[{{"max_tokens":1000,"tokens_per_fill":1000,"fill_interval_ms":60000}}]}}]}}}}"#
    )
}

fn global_host(fail_open: bool) -> Host {
    Host::builder()
        .module(tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}")))
        .vm_id("tollgate")
        .root_id("tollgate")
        .configuration(global_config(fail_open).as_bytes())
        .allow_on_headers_stop_iteration(true)
        .cluster("budget-service")
        .workers(2)
        .build()
        .unwrap()
}

fn only_call(host: &Host) -> tollgate_host::HttpCall {
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls.into_iter().next().unwrap()
}

#[test]
fn the_global_tier_reserves_through_the_service_writes_its_cap_and_commits_the_usage() {
    let host = global_host(false);
    let (s, outcome) = open(&host, 0, Some("alice"), &chat(100, 800, false));
    assert_eq!(outcome, Outcome::Pause, "held while the service answers");
    let call = only_call(&host);
    assert_eq!(call.cluster, "budget-service");
    assert_eq!(call.headers.get(":path").as_deref(), Some("/v1/reserve"));
    assert_eq!(call.timeout, Some(Duration::from_millis(150)));
    let asked: Json = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(asked["accounts"][0]["key"], "per-user\u{1f}alice");
    assert_eq!(
        (asked["input"].as_u64(), asked["want"].as_u64()),
        (Some(100), Some(800))
    );
    host.respond_http_call(
        call.id,
        &[(":status", "200")],
        br#"{"result":"admitted","id":"42","output":300,"headers":{"limit":1000,"remaining":600,"reset_ms":60000}}"#,
    )
    .unwrap();
    let sent: Json = serde_json::from_slice(&s.upstream().body).unwrap();
    assert_eq!(
        sent["max_tokens"], 300,
        "the service's clamp is in the request"
    );
    assert_eq!(answer(s, 10, 20), 600);
    let commit = only_call(&host);
    assert_eq!(commit.headers.get(":path").as_deref(), Some("/v1/commit"));
    let settled: Json = serde_json::from_slice(&commit.body).unwrap();
    assert_eq!(
        (
            settled["id"].as_str(),
            settled["input"].as_u64(),
            settled["output"].as_u64()
        ),
        (Some("42"), Some(10), Some(20))
    );
}

#[test]
fn the_global_tier_relays_a_refusal_as_the_same_429() {
    let host = global_host(false);
    let (s, _) = open(&host, 1, Some("alice"), &chat(100, 800, false));
    let call = only_call(&host);
    host.respond_http_call(
        call.id,
        &[(":status", "200")],
        br#"{"result":"refused","account":0,"bucket":0,"needed":101,"available":5,"retry_after_ms":30500,"headers":{"limit":1000,"remaining":5,"reset_ms":30500}}"#,
    )
    .unwrap();
    let reply = s.local_reply().expect("a local reply");
    assert_eq!(
        reply.status,
        429,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.headers.get("retry-after").as_deref(), Some("31"));
    assert_eq!(
        reply.headers.get("x-ratelimit-remaining-tokens").as_deref(),
        Some("5")
    );
    let calls = host.dispatched_http_calls();
    assert_eq!(calls.len(), 1, "nothing to settle for a refusal");
    let metric_rejected = metric(
        &host,
        "tollgate_budget_requests_total.policy.per-user.result.rejected.reason.tokens",
    );
    assert_eq!(metric_rejected, 1);
}

#[test]
fn a_reset_before_the_answer_releases_the_global_reservation() {
    let host = global_host(false);
    let (mut s, _) = open(&host, 0, Some("alice"), &chat(100, 800, false));
    let call = only_call(&host);
    host.respond_http_call(
        call.id,
        &[(":status", "200")],
        br#"{"result":"admitted","id":"7","output":800}"#,
    )
    .unwrap();
    s.finish();
    let release = only_call(&host);
    assert_eq!(release.headers.get(":path").as_deref(), Some("/v1/release"));
    assert_eq!(
        serde_json::from_slice::<Json>(&release.body).unwrap()["id"],
        "7"
    );
}

#[test]
fn a_silent_service_is_the_policys_fail_mode_counted_and_no_hang() {
    for fail_open in [false, true] {
        let host = global_host(fail_open);
        let (s, _) = open(&host, 0, Some("alice"), &chat(100, 800, false));
        assert!(s.upstream().headers.is_none());
        // The service never answers: the call times out on the virtual clock.
        host.advance_time(Duration::from_millis(200));
        if fail_open {
            assert!(
                s.upstream().headers.is_some(),
                "fail open: served unmetered"
            );
            assert_eq!(
                metric(
                    &host,
                    "tollgate_budget_requests_total.policy.per-user.result.fail_open.reason.store"
                ),
                1
            );
        } else {
            let reply = s.local_reply().expect("fail closed: a local 503");
            assert_eq!(reply.status, 503);
            let error: Json = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(error["error"]["code"], "budget_unavailable");
        }
        assert_eq!(metric(&host, "tollgate_budget_store_errors_total"), 1);
    }
}
