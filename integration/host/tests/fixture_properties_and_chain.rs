//! Properties set by the test and read by the filter, filter state across filters of one chain,
//! and the context-id order Envoy uses.

mod common;

use common::{fixture_wasm, request};
use tollgate_host::{Host, Value};

fn chain() -> Host {
    Host::builder()
        .module(fixture_wasm())
        .vm_id("chain")
        .root_id("fixture")
        .module(fixture_wasm())
        .vm_id("chain")
        .root_id("reader")
        .build()
        .unwrap()
}

#[test]
fn properties_are_served_as_envoy_serializes_them() {
    let host = chain();
    let mut s = host.stream();
    s.set_property(&["source", "address"], Value::from("10.0.0.7:41000"));
    s.set_property(&["xds", "route_name"], Value::from("chat"));
    let claims = Value::from_json(r#"{"sub":"alice","tier":2}"#).unwrap();
    s.set_property(
        &[
            "metadata",
            "filter_metadata",
            "envoy.filters.http.jwt_authn",
            "payload",
        ],
        claims,
    );
    s.send_request_headers(&request("property"), true);
    let upstream = s.upstream().headers.unwrap();
    assert_eq!(
        upstream.get("x-source-address").as_deref(),
        Some("10.0.0.7:41000")
    );
    assert_eq!(upstream.get("x-jwt-sub").as_deref(), Some("alice"));
    assert_eq!(upstream.get("x-route-name").as_deref(), Some("chat"));
    // request.path is derived from the live :path header.
    assert_eq!(upstream.get("x-request-path").as_deref(), Some("/v1/chat"));
}

#[test]
fn set_property_is_filter_state_the_next_filter_reads() {
    let host = chain();
    let mut s = host.stream();
    s.send_request_headers(&request("property"), true);
    assert_eq!(s.filter_state("wasm.fixture_seen"), Some(b"yes".to_vec()));
    assert_eq!(
        s.upstream()
            .headers
            .unwrap()
            .get("x-fixture-seen")
            .as_deref(),
        Some("yes")
    );
}

#[test]
fn without_filter_state_the_reader_sees_none() {
    let host = chain();
    let mut s = host.stream();
    s.send_request_headers(&request("plain"), true);
    assert_eq!(
        s.upstream()
            .headers
            .unwrap()
            .get("x-fixture-seen")
            .as_deref(),
        Some("none")
    );
}

#[test]
fn plugins_sharing_a_vm_id_share_one_vm_with_one_root_context_each() {
    let host = chain();
    let mut s = host.stream();
    // Root contexts 1 and 2 in the shared VM, then one context per filter for the stream.
    assert_eq!(s.context_id(0), Some(3));
    assert_eq!(s.context_id(1), Some(4));
    s.send_request_headers(&request("plain"), true);
    assert_eq!(
        s.upstream()
            .headers
            .unwrap()
            .get("x-fixture-context")
            .as_deref(),
        Some("3")
    );
}

#[test]
fn a_local_reply_skips_filters_the_request_never_reached() {
    let host = chain();
    let mut s = host.stream();
    s.send_request_headers(&request("reply"), true);
    let reply = s.local_reply().unwrap();
    assert_eq!(reply.status, 403);
    assert!(reply.headers.get("x-fixture-seen").is_none());
    s.finish(); // on_log runs for both: the reader's context is created in log()
}
