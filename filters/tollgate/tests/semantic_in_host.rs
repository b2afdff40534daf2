//! The semantic cache of the built `tollgate.wasm` in the wasmtime host: the lookup callout
//! carries the documented body (`services/semantic-cache/PROTOCOL.md`), a hit answers locally,
//! a failed or timed-out lookup lets the request go on (fail open, counted), and after a miss
//! the complete answer is sent to store, fire and forget.

use serde_json::Value as Json;
use std::time::Duration;
use tollgate_host::{Host, HttpCall, Outcome, Value};

mod support;

const CLUSTER: &str = "service/semantic-cache-service";

fn config(response_cache: bool) -> String {
    let response = if response_cache {
        r#""response":{"mode":"aggressive","ttl_ms":60000},"#
    } else {
        ""
    };
    format!(
        r#"{{"route":{{"routes":{{"llm-routes":{{"kind":"llm"}}}}}},
  "cache":{{"routes":{{"llm-routes":{{{response}"semantic":{{
    "cluster":"{CLUSTER}","authority":"semantic-cache-service:8080",
    "timeout_ms":250,"similarity_threshold":0.95,"ttl_ms":86400000}}}}}}}}}}"#
    )
}

fn host_with(config: &str) -> Host {
    support::pipeline(config).cluster(CLUSTER).build().unwrap()
}

fn host() -> Host {
    host_with(&config(false))
}

fn chat(content: &str) -> String {
    format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{content}"}}]}}"#)
}

const ANSWER: &str = r#"{"id":"chatcmpl-upstream","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;

fn open(host: &Host, auth: &str, body: &str) -> (tollgate_host::Stream, Outcome) {
    let mut stream = host.stream();
    stream.set_property(
        &["xds", "route_name"],
        Value::String("llm-routes/0/0".into()),
    );
    let length = body.len().to_string();
    let mut headers = support::chat_request_headers(&length).to_vec();
    headers.push(("authorization", auth));
    stream.send_request_headers(&headers, false);
    let outcome = stream.send_request_body(body.as_bytes(), true);
    (stream, outcome)
}

/// The one pending callout, which must go to the service at `path`.
fn pending_call(host: &Host, path: &str) -> HttpCall {
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = calls.into_iter().next().unwrap();
    assert_eq!(call.cluster, CLUSTER);
    assert_eq!(call.headers.get(":path").as_deref(), Some(path));
    call
}

fn body_json(call: &HttpCall) -> Json {
    serde_json::from_slice(&call.body).unwrap()
}

fn counter(host: &Host, name: &str) -> u64 {
    host.metric(&format!("wasmcustom.{name}")).unwrap_or(0)
}

/// Answers the upstream request with `ANSWER` and ends the stream.
fn answer_upstream(stream: &mut tollgate_host::Stream) {
    stream.send_response_headers(
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    );
    stream.send_response_body(ANSWER.as_bytes(), true);
    stream.finish();
}

#[test]
fn the_lookup_callout_carries_the_documented_body_and_holds_the_request() {
    let host = host();
    let (stream, outcome) = open(&host, "Bearer alice", &chat("Say hello"));
    assert_eq!(outcome, Outcome::Pause);
    assert!(
        stream.upstream().headers.is_none(),
        "nothing left before the lookup answered"
    );
    let call = pending_call(&host, "/lookup");
    assert_eq!(call.headers.get(":method").as_deref(), Some("POST"));
    assert_eq!(
        call.headers.get(":authority").as_deref(),
        Some("semantic-cache-service:8080")
    );
    assert_eq!(call.timeout, Some(Duration::from_millis(250)));
    let body = body_json(&call);
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["model", "params", "prompt", "scope", "threshold"]);
    assert_eq!(body["prompt"], "Say hello");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["threshold"], 0.95);
    assert_eq!(body["scope"].as_str().unwrap().len(), 64);
    assert!(
        !String::from_utf8_lossy(&call.body).contains("alice"),
        "the credential never leaves"
    );
}

#[test]
fn another_caller_is_looked_up_in_another_scope_and_a_paraphrase_in_the_same() {
    let host = host();
    let mut scopes = Vec::new();
    for (auth, prompt) in [
        ("Bearer alice", "Say hello"),
        ("Bearer alice", "Say hi"),
        ("Bearer bob", "Say hello"),
    ] {
        let _open = open(&host, auth, &chat(prompt));
        let call = pending_call(&host, "/lookup");
        let body = body_json(&call);
        scopes.push((body["scope"].clone(), body["params"].clone()));
        host.fail_http_call(call.id).unwrap();
    }
    assert_eq!(scopes[0], scopes[1]);
    assert_ne!(scopes[0].0, scopes[2].0);
    assert_eq!(scopes[0].1, scopes[2].1);
}

#[test]
fn a_hit_answers_locally_with_the_stored_answer() {
    let host = host();
    let (stream, _) = open(&host, "Bearer alice", &chat("Say hi"));
    let call = pending_call(&host, "/lookup");
    let hit = serde_json::json!({
        "hit": true, "similarity": 0.9804, "age_s": 42,
        "answer": {"status": 200, "content_type": "application/json", "body": ANSWER}
    });
    host.respond_http_call(call.id, &[(":status", "200")], hit.to_string().as_bytes())
        .unwrap();
    let reply = stream.local_reply().expect("a hit is answered locally");
    assert_eq!(reply.status, 200);
    let (got, stored): (Json, Json) = (
        serde_json::from_slice(&reply.body).unwrap(),
        serde_json::from_str(ANSWER).unwrap(),
    );
    assert_eq!(got["choices"], stored["choices"], "the stored answer");
    assert_eq!(got["usage"], stored["usage"]);
    let id = got["id"].as_str().unwrap();
    assert!(
        id.starts_with("chatcmpl-") && id != "chatcmpl-upstream",
        "a fresh id: {id}"
    );
    assert_eq!(got["created"], host.now_unix_nanos() / 1_000_000_000);
    assert_eq!(reply.headers.get("x-cache-status").as_deref(), Some("HIT"));
    assert_eq!(reply.headers.get("age").as_deref(), Some("42"));
    assert_eq!(
        reply
            .headers
            .get("x-tollgate-semantic-similarity")
            .as_deref(),
        Some("0.9804")
    );
    assert_eq!(
        reply.headers.get("content-type").as_deref(),
        Some("application/json")
    );
    assert!(stream.upstream().headers.is_none(), "nothing went upstream");
    assert_eq!(counter(&host, "tollgate_semantic_cache_hits_total"), 1);
    assert_eq!(counter(&host, "tollgate_semantic_cache_lookups_total"), 1);
}

#[test]
fn a_hit_after_an_exact_miss_is_marked_hit_not_miss() {
    let host = host_with(&config(true));
    let (stream, _) = open(&host, "Bearer alice", &chat("Say hi"));
    let call = pending_call(&host, "/lookup");
    let hit = serde_json::json!({
        "hit": true, "similarity": 0.97, "age_s": 1,
        "answer": {"status": 200, "content_type": "application/json", "body": ANSWER}
    });
    host.respond_http_call(call.id, &[(":status", "200")], hit.to_string().as_bytes())
        .unwrap();
    let reply = stream.local_reply().unwrap();
    assert_eq!(reply.headers.get("x-cache-status").as_deref(), Some("HIT"));
}

#[test]
fn a_miss_goes_upstream_and_its_complete_answer_is_stored() {
    let host = host();
    let (mut stream, _) = open(&host, "Bearer alice", &chat("Say hello"));
    let lookup = pending_call(&host, "/lookup");
    let partition = body_json(&lookup);
    host.respond_http_call(
        lookup.id,
        &[(":status", "200")],
        br#"{"hit":false,"similarity":0.83}"#,
    )
    .unwrap();
    let upstream = stream.upstream();
    assert!(upstream.headers.is_some(), "the request went on");
    let sent: Json = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(sent["messages"][0]["content"], "Say hello");
    answer_upstream(&mut stream);
    let store = pending_call(&host, "/store");
    let body = body_json(&store);
    for field in ["scope", "model", "params", "prompt"] {
        assert_eq!(body[field], partition[field], "{field}");
    }
    assert_eq!(body["ttl_s"], 86_400);
    assert_eq!(
        body["answer"],
        serde_json::json!({"status": 200, "content_type": "application/json", "body": ANSWER})
    );
    assert_eq!(counter(&host, "tollgate_semantic_cache_stores_total"), 1);
    // Nobody waits for the store: its answer changes nothing.
    host.respond_http_call(store.id, &[(":status", "200")], br#"{"stored":true}"#)
        .unwrap();
    assert!(host.traps().is_empty(), "{:?}", host.traps());
}

#[test]
fn a_failed_lookup_lets_the_request_go_on_and_is_counted() {
    let host = host();
    let (mut stream, _) = open(&host, "Bearer alice", &chat("Say hello"));
    host.fail_http_call(pending_call(&host, "/lookup").id)
        .unwrap();
    assert!(stream.upstream().headers.is_some(), "the request went on");
    assert_eq!(counter(&host, "tollgate_semantic_cache_failures_total"), 1);
    answer_upstream(&mut stream);
    assert!(
        host.http_calls().is_empty(),
        "nothing is stored after a failed lookup"
    );
}

#[test]
fn a_lookup_past_its_timeout_lets_the_request_go_on() {
    let host = host();
    let (stream, _) = open(&host, "Bearer alice", &chat("Say hello"));
    pending_call(&host, "/lookup");
    host.advance_time(Duration::from_millis(251));
    assert!(host.http_calls().is_empty());
    assert!(stream.upstream().headers.is_some(), "the request went on");
    assert_eq!(counter(&host, "tollgate_semantic_cache_failures_total"), 1);
}

#[test]
fn an_error_or_a_broken_answer_from_the_service_is_a_failure_not_a_hit() {
    let host = host();
    for (status, body) in [
        ("503", &b"upstream connect error"[..]),
        ("200", b"not json"),
        ("200", br#"{"hit":true}"#),
    ] {
        let (stream, _) = open(&host, "Bearer alice", &chat("Say hello"));
        let call = pending_call(&host, "/lookup");
        host.respond_http_call(call.id, &[(":status", status)], body)
            .unwrap();
        assert!(stream.local_reply().is_none(), "{status} {body:?}");
        assert!(stream.upstream().headers.is_some(), "{status} {body:?}");
    }
    assert_eq!(counter(&host, "tollgate_semantic_cache_failures_total"), 3);
}

#[test]
fn an_error_answer_from_the_provider_is_not_stored() {
    let host = host();
    let (mut stream, _) = open(&host, "Bearer alice", &chat("Say hello"));
    let lookup = pending_call(&host, "/lookup");
    host.respond_http_call(lookup.id, &[(":status", "200")], br#"{"hit":false}"#)
        .unwrap();
    stream.send_response_headers(
        &[(":status", "500"), ("content-type", "application/json")],
        false,
    );
    stream.send_response_body(br#"{"error":{"message":"boom"}}"#, true);
    stream.finish();
    assert!(host.http_calls().is_empty());
}

#[test]
fn requests_it_cannot_judge_and_no_cache_are_not_looked_up() {
    let host = host();
    let image = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/cat.png"}}]}]}"#;
    let (stream, outcome) = open(&host, "Bearer alice", image);
    assert_eq!(outcome, Outcome::Continue);
    assert!(stream.upstream().headers.is_some());
    assert!(host.http_calls().is_empty());
    assert_eq!(counter(&host, "tollgate_semantic_cache_bypasses_total"), 1);

    // Cache-Control: no-cache: no lookup, the fresh answer is stored.
    let body = chat("Say hello");
    let mut stream = host.stream();
    stream.set_property(
        &["xds", "route_name"],
        Value::String("llm-routes/0/0".into()),
    );
    let length = body.len().to_string();
    stream.send_request_headers(
        &[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "gateway"),
            ("content-type", "application/json"),
            ("content-length", length.as_str()),
            ("cache-control", "no-cache"),
        ],
        false,
    );
    assert_eq!(
        stream.send_request_body(body.as_bytes(), true),
        Outcome::Continue
    );
    assert!(host.http_calls().is_empty());
    answer_upstream(&mut stream);
    pending_call(&host, "/store");
}

#[test]
fn a_bad_threshold_fails_configuration() {
    // The field and reason are in Envoy's log (tollgate-cache's `validate` tests them).
    let bad = config(false).replace("0.95", "1.5");
    let built = Host::builder()
        .module(tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}")))
        .vm_id("tollgate")
        .root_id("tollgate")
        .configuration(bad.as_bytes())
        .cluster(CLUSTER)
        .build();
    let error = built
        .err()
        .expect("the configuration is refused")
        .to_string();
    assert!(error.contains("rejected its configuration"), "{error}");
}

#[test]
fn a_streamed_answer_is_stored_as_its_frames_and_replayed_to_a_stream_request() {
    let host = host();
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#;
    let (mut stream, _) = open(&host, "Bearer alice", body);
    let lookup = pending_call(&host, "/lookup");
    let params = body_json(&lookup)["params"].clone();
    assert_ne!(
        params,
        {
            let (_s, _) = open(&host, "Bearer alice", &chat("Say hello"));
            let calls = host.http_calls();
            body_json(&calls[1])["params"].clone()
        },
        "a stream request is in another partition than a JSON one"
    );
    host.respond_http_call(lookup.id, &[(":status", "200")], br#"{"hit":false}"#)
        .unwrap();
    let frames = [
        "data: {\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"chatcmpl-up\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n",
    ];
    stream.send_response_headers(
        &[(":status", "200"), ("content-type", "text/event-stream")],
        false,
    );
    for (i, frame) in frames.iter().enumerate() {
        stream.send_response_body(frame.as_bytes(), i + 1 == frames.len());
    }
    stream.finish();
    let store = host
        .http_calls()
        .into_iter()
        .find(|c| c.headers.get(":path").as_deref() == Some("/store"))
        .expect("the complete stream is stored");
    let stored = body_json(&store);
    assert_eq!(stored["answer"]["content_type"], "text/event-stream");
    assert_eq!(stored["answer"]["body"], frames.concat());

    // A hit for a stream request replays the frames, restamped.
    let (hit_stream, _) = open(&host, "Bearer alice", body);
    let call = host
        .http_calls()
        .into_iter()
        .rfind(|c| c.headers.get(":path").as_deref() == Some("/lookup"))
        .unwrap();
    let hit =
        serde_json::json!({"hit": true, "similarity": 1.0, "age_s": 0, "answer": stored["answer"]});
    host.respond_http_call(call.id, &[(":status", "200")], hit.to_string().as_bytes())
        .unwrap();
    let reply = hit_stream.local_reply().unwrap();
    assert_eq!(
        reply.headers.get("content-type").as_deref(),
        Some("text/event-stream")
    );
    let text = String::from_utf8(reply.body).unwrap();
    assert_eq!(text.matches("data: ").count(), 3, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("chatcmpl-up"), "fresh ids: {text}");
    assert!(text.contains("\"content\":\"Hel\"") && text.contains("\"content\":\"lo\""));
}

#[test]
fn a_truncated_stream_is_not_stored() {
    let host = host();
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#;
    let (mut stream, _) = open(&host, "Bearer alice", body);
    let lookup = pending_call(&host, "/lookup");
    host.respond_http_call(lookup.id, &[(":status", "200")], br#"{"hit":false}"#)
        .unwrap();
    stream.send_response_headers(
        &[(":status", "200"), ("content-type", "text/event-stream")],
        false,
    );
    stream.send_response_body(
        b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        true,
    );
    stream.finish();
    assert!(host.http_calls().is_empty(), "{:?}", host.http_calls());
}
