//! Cross-VM state through the host: shared data with Envoy's CAS across worker VMs, isolation
//! across vm_ids, shared queues, HTTP callouts, the virtual clock and metrics.

mod common;

use std::time::Duration;

use common::{fixture, fixture_wasm, request};
use tollgate_host::{Host, Outcome};

#[test]
fn shared_data_counts_across_worker_vms_with_cas() {
    let host = fixture("").workers(3).build().unwrap();
    let mut workers_seen = Vec::new();
    for expected in 1..=6 {
        let mut s = host.stream();
        workers_seen.push(s.worker());
        s.send_request_headers(&request("cas"), true);
        let counter = s.upstream().headers.unwrap().get("x-counter");
        assert_eq!(counter, Some(expected.to_string()));
    }
    assert_eq!(workers_seen, vec![0, 1, 2, 0, 1, 2]);
    let (value, _cas) = host.shared_data("fixture", "fixture_counter").unwrap();
    assert_eq!(value, b"6");
}

#[test]
fn shared_data_is_isolated_between_vm_ids() {
    let host = Host::builder()
        .module(fixture_wasm())
        .vm_id("one")
        .root_id("fixture")
        .module(fixture_wasm())
        .vm_id("two")
        .root_id("fixture")
        .build()
        .unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("cas"), true);
    // Both filters incremented "their" counter: each saw 1, so the last value upstream is 1.
    assert_eq!(
        s.upstream().headers.unwrap().get_all("x-counter"),
        vec!["1"]
    );
    assert_eq!(host.shared_data("one", "fixture_counter").unwrap().0, b"1");
    assert_eq!(host.shared_data("two", "fixture_counter").unwrap().0, b"1");
}

#[test]
fn queue_items_are_consumed_by_the_last_registrant() {
    let host = fixture("").workers(2).build().unwrap();
    for path in ["/a", "/b"] {
        let mut s = host.stream();
        let mut headers = request("enqueue");
        headers[1].1 = path.to_string();
        s.send_request_headers(&headers, true);
    }
    assert_eq!(host.metric("wasmcustom.fixture_queue_items_total"), Some(2));
    let consumers: Vec<Option<usize>> = host
        .logs()
        .iter()
        .filter(|l| l.message.starts_with("dequeued"))
        .map(|l| l.worker)
        .collect();
    // Worker 1's VM registered last, so it consumes what both workers enqueued.
    assert_eq!(consumers, vec![Some(1), Some(1)]);
}

#[test]
fn an_answered_callout_resumes_the_request_with_its_result() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    assert_eq!(
        s.send_request_headers(&request("callout"), true),
        Outcome::Pause
    );
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.cluster, "fixture_upstream");
    assert_eq!(call.headers.get(":path").as_deref(), Some("/check"));
    assert_eq!(call.body, b"ping");
    assert_eq!(call.headers.get("content-length").as_deref(), Some("4"));
    assert_eq!(call.timeout, Some(Duration::from_secs(1)));
    host.respond_http_call(call.id, &[(":status", "200")], b"pong")
        .unwrap();
    let upstream = s.upstream().headers.unwrap();
    assert_eq!(upstream.get("x-callout-status").as_deref(), Some("200"));
    assert_eq!(upstream.get("x-callout-body").as_deref(), Some("pong"));
    assert!(!s.request_paused());
}

#[test]
fn a_failed_callout_delivers_zero_headers() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("callout"), true);
    let id = host.http_calls()[0].id;
    host.fail_http_call(id).unwrap();
    let reply = s.local_reply().unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.headers.get("x-fixture-callout").as_deref(),
        Some("failed")
    );
}

#[test]
fn a_callout_times_out_on_the_virtual_clock() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("callout"), true);
    host.advance_time(Duration::from_millis(999));
    assert!(s.local_reply().is_none());
    host.advance_time(Duration::from_millis(1));
    assert_eq!(s.local_reply().map(|r| r.status), Some(503));
    assert!(host.http_calls().is_empty());
}

#[test]
fn a_callout_to_an_unknown_cluster_is_a_bad_argument() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("callout-unknown-cluster"), true);
    let error = s.upstream().headers.unwrap().get("x-callout-error");
    assert_eq!(error.as_deref(), Some("BadArgument"));
}

#[test]
fn ticks_fire_in_every_worker_vm_as_the_clock_advances() {
    let host = fixture("tick_ms=1000").workers(2).build().unwrap();
    host.advance_time(Duration::from_millis(999));
    assert_eq!(host.metric("wasmcustom.fixture_ticks_total"), Some(0));
    host.advance_time(Duration::from_secs(24 * 3600));
    assert_eq!(
        host.metric("wasmcustom.fixture_ticks_total"),
        Some(2 * 24 * 3600)
    );
}

#[test]
fn get_current_time_reads_the_virtual_clock() {
    let host = fixture("").build().unwrap();
    host.advance_time(Duration::from_secs(3600));
    let mut s = host.stream();
    s.send_request_headers(&request("time"), true);
    let seconds = s.upstream().headers.unwrap().get("x-fixture-time").unwrap();
    assert_eq!(seconds, (host.now_unix_nanos() / 1_000_000_000).to_string());
    assert_eq!(seconds, "1767229200"); // 2026-01-01T01:00:00Z
}

#[test]
fn metrics_are_readable_by_envoy_name_and_as_prometheus_lines() {
    let host = fixture("")
        .stats_tag("code", r"(\.code\.([^.]+))")
        .build()
        .unwrap();
    for _ in 0..2 {
        let mut s = host.stream();
        s.send_request_headers(&request("plain"), true);
        s.send_response_headers(&[(":status", "200")], true);
    }
    assert_eq!(host.metric("wasmcustom.fixture_requests_total"), Some(2));
    assert_eq!(
        host.metric("wasmcustom.fixture_responses_total.code.200"),
        Some(2)
    );
    let lines = host.prometheus_lines();
    assert!(
        lines.contains(&r#"fixture_responses_total{code="200"} 2"#.to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"fixture_requests_total 2".to_string()),
        "{lines:?}"
    );
}
