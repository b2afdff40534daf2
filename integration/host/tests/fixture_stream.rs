//! The fixture filter's stream behaviours through the host: headers, bodies, local replies,
//! response callbacks and the end-of-stream order.

mod common;

use common::{fixture, request};
use tollgate_host::{LogLevel, Outcome};

#[test]
fn request_headers_are_mutated_and_reach_upstream() {
    let host = fixture("greeting=hi").build().unwrap();
    let mut s = host.stream();
    assert_eq!(
        s.send_request_headers(&request("plain"), true),
        Outcome::Continue
    );
    let upstream = s.upstream().headers.unwrap();
    assert_eq!(upstream.get("x-fixture").as_deref(), Some("hi"));
    assert_eq!(upstream.get(":path").as_deref(), Some("/v1/chat"));
    assert!(s.upstream().end_stream);
}

#[test]
fn a_local_reply_passes_back_through_the_filters_response_callbacks() {
    let host = fixture("greeting=hi").build().unwrap();
    let mut s = host.stream();
    let Outcome::LocalReply(reply) = s.send_request_headers(&request("reply"), false) else {
        panic!("expected a local reply");
    };
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, b"denied by fixture");
    assert_eq!(reply.headers.get("x-fixture-local").as_deref(), Some("1"));
    assert_eq!(
        reply.headers.get("content-type").as_deref(),
        Some("text/plain")
    );
    // The filter's own on_http_response_headers saw the local reply.
    assert_eq!(
        reply.headers.get("x-fixture-response").as_deref(),
        Some("403")
    );
    assert!(s.upstream().headers.is_none());
}

#[test]
fn pausing_headers_with_stop_iteration_lets_the_body_callback_set_headers() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    assert_eq!(
        s.send_request_headers(&request("pause-for-body"), false),
        Outcome::Pause
    );
    assert_eq!(s.send_request_body(b"12345", false), Outcome::Pause);
    assert_eq!(s.send_request_body(b"678", true), Outcome::Continue);
    let upstream = s.upstream();
    // body_size is cumulative after a Pause: 8 bytes, not the last chunk's 3.
    assert_eq!(
        upstream.headers.unwrap().get("x-body-bytes").as_deref(),
        Some("8")
    );
    assert_eq!(upstream.body, b"12345678");
}

#[test]
fn a_buffered_body_can_be_replaced_before_it_goes_upstream() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("buffer"), false);
    s.send_request_body(b"hello ", false);
    assert_eq!(s.send_request_body(b"world", true), Outcome::Continue);
    assert_eq!(s.upstream().body, b"HELLO WORLD");
}

#[test]
fn response_headers_and_body_pass_the_filter_to_the_client() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("upper-response"), true);
    assert_eq!(
        s.send_response_headers(&[(":status", "200")], false),
        Outcome::Continue
    );
    assert_eq!(s.send_response_body(b"abc", false), Outcome::Pause);
    assert_eq!(s.send_response_body(b"def", true), Outcome::Continue);
    let downstream = s.downstream();
    assert_eq!(
        downstream
            .headers
            .unwrap()
            .get("x-fixture-response")
            .as_deref(),
        Some("200")
    );
    assert_eq!(downstream.body, b"ABCDEF");
    assert!(downstream.end_stream);
}

#[test]
fn finishing_runs_on_log_with_the_request_headers_readable() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("plain"), true);
    s.send_response_headers(&[(":status", "204")], true);
    s.finish();
    let logs = host.log_messages(LogLevel::Info);
    assert!(
        logs.iter()
            .any(|l| l.starts_with("fixture on_log") && l.ends_with("/v1/chat")),
        "{logs:?}"
    );
}

#[test]
fn a_request_over_the_buffer_limit_gets_413() {
    let host = fixture("").buffer_limit(10).build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("buffer"), false);
    assert_eq!(s.send_request_body(b"0123456", false), Outcome::Pause);
    let Outcome::LocalReply(reply) = s.send_request_body(b"789abc", false) else {
        panic!("expected 413");
    };
    assert_eq!(reply.status, 413);
}

#[test]
fn a_response_over_the_buffer_limit_gets_500_while_its_headers_are_held() {
    let host = fixture("").buffer_limit(4).build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("buffer-response"), true);
    assert_eq!(
        s.send_response_headers(&[(":status", "200")], false),
        Outcome::Pause
    );
    let Outcome::LocalReply(reply) = s.send_response_body(b"too long", false) else {
        panic!("expected 500");
    };
    assert_eq!(reply.status, 500);
}

#[test]
fn a_response_over_the_buffer_limit_resets_once_its_headers_were_sent() {
    let host = fixture("").buffer_limit(4).build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("upper-response"), true);
    s.send_response_headers(&[(":status", "200")], false);
    assert!(matches!(
        s.send_response_body(b"too long", false),
        Outcome::Reset(_)
    ));
}

#[test]
fn the_stream_ends_with_on_log_before_on_done_as_in_envoy() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("plain"), true);
    s.send_response_headers(&[(":status", "200")], true);
    host.clear_logs();
    s.finish();
    let context = s.context_id(0).unwrap();
    assert_eq!(
        host.log_messages(LogLevel::Info),
        vec![
            format!("fixture on_log {context} /v1/chat"),
            format!("fixture on_done {context}"),
        ]
    );
}

#[test]
fn plugins_start_in_a_canary_then_in_every_worker_vm() {
    let host = fixture("greeting=hi").workers(3).build().unwrap();
    let configured: Vec<Option<usize>> = host
        .logs()
        .iter()
        .filter(|l| l.message == "fixture configured: greeting=hi")
        .map(|l| l.worker)
        .collect();
    assert_eq!(configured, vec![None, Some(0), Some(1), Some(2)]);
}

#[test]
fn a_body_callback_that_continues_releases_headers_paused_for_a_callout() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    assert_eq!(
        s.send_request_headers(&request("callout"), false),
        Outcome::Pause
    );
    // Headers wait for the callout (StopIteration), but the fixture's body callback returns
    // Continue: as in Envoy, that forwards the headers together with the body.
    assert_eq!(s.send_request_body(b"payload", true), Outcome::Continue);
    let upstream = s.upstream();
    assert_eq!(upstream.body, b"payload");
    assert!(upstream.end_stream);
    // The late answer still writes the (already forwarded) headers without an error, as Envoy
    // keeps its header pointer in this case; nothing changes upstream.
    let call = host.http_calls()[0].clone();
    host.respond_http_call(call.id, &[(":status", "204")], b"")
        .unwrap();
    assert!(host.traps().is_empty(), "{:?}", host.traps());
    assert_eq!(s.upstream().headers.unwrap().get("x-callout-status"), None);
}

#[test]
fn trailers_reach_upstream_after_the_body() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("plain"), false);
    s.send_request_body(b"data", false);
    assert!(!s.upstream().end_stream);
    assert_eq!(
        s.send_request_trailers(&[("x-checksum", "abc")]),
        Outcome::Continue
    );
    let upstream = s.upstream();
    assert_eq!(upstream.body, b"data");
    assert_eq!(
        upstream.trailers.unwrap().get("x-checksum").as_deref(),
        Some("abc")
    );
    assert!(upstream.end_stream);
}

#[test]
fn trailers_continuing_release_a_body_the_filter_buffered() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("buffer"), false);
    assert_eq!(s.send_request_body(b"hello", false), Outcome::Pause);
    // The body callback never sees end_of_stream, so the body goes on unchanged once the
    // filter's trailers callback (the SDK default) continues.
    assert_eq!(
        s.send_request_trailers(&[("x-checksum", "abc")]),
        Outcome::Continue
    );
    let upstream = s.upstream();
    assert_eq!(upstream.body, b"hello");
    assert!(upstream.trailers.is_some());
    assert_eq!(upstream.headers.unwrap().get("x-body-bytes"), None);
}
