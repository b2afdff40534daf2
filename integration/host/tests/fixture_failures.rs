//! Traps through the host: the panic message is reported, the failure policy decides what the
//! stream and the next streams on that worker get, and an infinite loop is interrupted.

mod common;

use std::time::Duration;

use common::{fixture, request};
use tollgate_host::{FailurePolicy, Outcome};

#[test]
fn a_panic_is_reported_with_its_message_and_fails_closed_with_503() {
    let host = fixture("greeting=hi").workers(2).build().unwrap();
    let mut s = host.stream_on_worker(0);
    let Outcome::LocalReply(reply) = s.send_request_headers(&request("panic"), true) else {
        panic!("expected the fail-closed 503");
    };
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (503, "wasm_fail_stream")
    );
    let traps = host.traps();
    assert_eq!(traps.len(), 1);
    assert_eq!(traps[0].callback, "proxy_on_request_headers");
    assert_eq!(traps[0].worker, Some(0));
    let panic = traps[0].panic_message.clone().unwrap_or_default();
    assert!(panic.contains("fixture panic requested"), "{panic}");

    // The VM of worker 0 stays failed; worker 1's VM is fine.
    let mut next = host.stream_on_worker(0);
    let outcome = next.send_request_headers(&request("plain"), true);
    assert!(
        matches!(outcome, Outcome::LocalReply(ref r) if r.status == 503),
        "{outcome:?}"
    );
    let mut other = host.stream_on_worker(1);
    assert_eq!(
        other.send_request_headers(&request("plain"), true),
        Outcome::Continue
    );
}

#[test]
fn fail_open_passes_the_stream_without_the_filter() {
    let host = fixture("greeting=hi")
        .failure_policy(FailurePolicy::FailOpen)
        .build()
        .unwrap();
    let mut s = host.stream();
    assert_eq!(
        s.send_request_headers(&request("panic"), true),
        Outcome::Continue
    );
    let mut next = host.stream();
    assert_eq!(
        next.send_request_headers(&request("plain"), true),
        Outcome::Continue
    );
    assert_eq!(next.upstream().headers.unwrap().get("x-fixture"), None);
}

#[test]
fn changing_request_headers_after_continue_is_a_bad_argument_the_sdk_panics_on() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    assert_eq!(
        s.send_request_headers(&request("late-header"), false),
        Outcome::Continue
    );
    let outcome = s.send_request_body(b"x", true);
    assert!(
        matches!(outcome, Outcome::LocalReply(ref r) if r.status == 503),
        "{outcome:?}"
    );
    let panic = host.traps()[0].panic_message.clone().unwrap_or_default();
    assert!(panic.contains("unexpected status: 2"), "{panic}");
}

#[test]
fn an_infinite_loop_is_interrupted_by_the_cpu_limit() {
    let host = fixture("")
        .cpu_limit(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut s = host.stream();
    let outcome = s.send_request_headers(&request("loop"), true);
    assert!(
        matches!(outcome, Outcome::LocalReply(ref r) if r.status == 503),
        "{outcome:?}"
    );
    assert!(
        host.traps()[0].message.contains("CPU limit exceeded"),
        "{:?}",
        host.traps()
    );
}

#[test]
fn a_rejected_plugin_configuration_fails_the_build() {
    let error = fixture("reject=true").build().err().unwrap();
    assert!(
        error.to_string().contains("rejected its configuration"),
        "{error}"
    );
}

#[test]
fn fail_reload_restarts_the_workers_vm_for_the_next_stream() {
    let host = fixture("greeting=hi")
        .failure_policy(FailurePolicy::FailReload)
        .build()
        .unwrap();
    let mut s = host.stream();
    let outcome = s.send_request_headers(&request("panic"), true);
    assert!(
        matches!(outcome, Outcome::LocalReply(ref r) if r.status == 503),
        "{outcome:?}"
    );
    let mut next = host.stream();
    assert_eq!(
        next.send_request_headers(&request("plain"), true),
        Outcome::Continue
    );
    assert_eq!(
        next.upstream().headers.unwrap().get("x-fixture").as_deref(),
        Some("hi")
    );
}

#[test]
fn reading_request_headers_in_the_response_phase_is_a_bad_argument_the_sdk_panics_on() {
    let host = fixture("").build().unwrap();
    let mut s = host.stream();
    s.send_request_headers(&request("request-header-in-response"), true);
    let outcome = s.send_response_headers(&[(":status", "200")], true);
    assert!(
        matches!(outcome, Outcome::LocalReply(ref r) if r.status == 503),
        "{outcome:?}"
    );
    let trap = &host.traps()[0];
    assert_eq!(trap.callback, "proxy_on_response_headers");
    assert!(
        trap.panic_message
            .as_deref()
            .unwrap_or_default()
            .contains("unexpected status: 2"),
        "{trap:?}"
    );
}
