//! The probe filter's `replay` (integration/probe-filter) makes the host calls of one request
//! through the benchmark chain, phase by phase: checked here against the chain itself
//! (tollgate.wasm with bench_config's pipeline) in the same host, so that what the benchmark's
//! `replay` row prices cannot drift from what the chain does.

use std::collections::BTreeMap;
use tollgate_host::{Host, Outcome, Value};

/// The benchmark's mock answer (integration/e2e/src/bin/bench.rs `MOCK_JSON`).
const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Benchmarks measure what they measure."},"finish_reason":"stop"}],"usage":{"prompt_tokens":240,"completion_tokens":9,"total_tokens":249}}"#;

/// The chain's calls per request (held against tollgate.wasm by `pipeline_in_host.rs`).
use tollgate_e2e::bench_config::CHAIN_HOST_CALLS as CHAIN_CALLS;

type Calls = BTreeMap<&'static str, u64>;

fn wasm(name: &str) -> std::path::PathBuf {
    tollgate_e2e::wasm_path(name).unwrap_or_else(|e| panic!("{e}"))
}

fn probe(config: &str) -> Host {
    Host::builder()
        .module(wasm("tollgate_probe_filter"))
        .vm_id("probe")
        .root_id("probe")
        .configuration(config)
        .allow_on_headers_stop_iteration(true)
        .build()
        .unwrap()
}

fn chain() -> Host {
    let config = tollgate_e2e::bench_config::pipeline_configuration().unwrap();
    Host::builder()
        .module(wasm("tollgate"))
        .vm_id("tollgate")
        .root_id("tollgate")
        .configuration(config)
        .allow_on_headers_stop_iteration(true)
        .build()
        .unwrap()
}

/// One benchmark request (its body made unique by `n`, so the chain's cache misses and
/// stores), through every phase; the host calls of each phase, in phase order.
fn send(host: &Host, n: u32) -> [(&'static str, Calls); 5] {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"max_tokens":64,"stream":false,"messages":[{{"role":"system","content":"You are terse. {n}"}},{{"role":"user","content":"Summarize the following paragraph in one sentence please."}}]}}"#
    );
    let length = body.len().to_string();
    let answer_length = ANSWER.len().to_string();
    let mut s = host.stream();
    s.set_property(
        &["xds", "route_name"],
        Value::String(tollgate_e2e::bench_config::ROUTE_NAME.into()),
    );
    let phase = || {
        let calls = host.hostcalls();
        host.reset_hostcalls();
        calls
    };
    phase();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
    ];
    assert_eq!(s.send_request_headers(&headers, false), Outcome::Pause);
    let request_headers = phase();
    assert_eq!(
        s.send_request_body(body.as_bytes(), true),
        Outcome::Continue
    );
    let request_body = phase();
    s.send_response_headers(
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-length", answer_length.as_str()),
        ],
        false,
    );
    let response_headers = phase();
    s.send_response_body(ANSWER.as_bytes(), true);
    let response_body = phase();
    s.finish();
    let done = phase();
    assert_eq!(s.downstream().body, ANSWER.as_bytes());
    [
        ("request headers", request_headers),
        ("request body", request_body),
        ("response headers", response_headers),
        ("response body", response_body),
        ("on_log", done),
    ]
}

fn total(phases: &[(&str, Calls)]) -> Calls {
    let mut sum = Calls::new();
    for (_, calls) in phases {
        for (name, n) in calls {
            *sum.entry(name).or_insert(0) += n;
        }
    }
    sum
}

#[test]
fn replay_makes_the_host_calls_of_the_benchmark_chain_in_each_phase() {
    let (chain, replay) = (chain(), probe("replay"));
    // The first request also defines the chain's metric series.
    send(&chain, 0);
    send(&replay, 0);
    let (of_chain, of_replay) = (send(&chain, 1), send(&replay, 1));
    for ((phase, chain_calls), (_, replay_calls)) in of_chain.iter().zip(&of_replay) {
        assert_eq!(replay_calls, chain_calls, "{phase}");
    }
    let expected: Calls = CHAIN_CALLS.into_iter().collect();
    assert_eq!(total(&of_replay), expected);
    assert_eq!(total(&of_replay).values().sum::<u64>(), 43);
}

#[test]
fn replay_writes_the_access_log_tail_and_keeps_every_request_going() {
    let host = probe("replay");
    for n in 0..3 {
        send(&host, n);
    }
    let mut s = host.stream();
    // A request without a body: headers and answer go on at once.
    let headers = [
        (":method", "GET"),
        (":path", "/"),
        (":authority", "gateway"),
    ];
    assert_eq!(s.send_request_headers(&headers, true), Outcome::Continue);
    assert_eq!(
        s.send_response_headers(&[(":status", "204")], true),
        Outcome::Continue
    );
    s.finish();
    let seen = s.downstream();
    let seen = seen.headers.as_ref().unwrap();
    assert_eq!(seen.get(":status").as_deref(), Some("204"));
    assert_eq!(seen.get("x-cache-status").as_deref(), Some("MISS"));
    assert!(s
        .filter_state("wasm.tollgate_log")
        .is_some_and(|tail| tail.len() == 188));
}

#[test]
fn replay_refuses_a_repeat_count() {
    let built = Host::builder()
        .module(wasm("tollgate_probe_filter"))
        .vm_id("probe")
        .root_id("probe")
        .configuration("replay*2")
        .allow_on_headers_stop_iteration(true)
        .build();
    assert!(built.is_err());
}
