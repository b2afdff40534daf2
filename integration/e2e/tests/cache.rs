//! The guide's `response-cache` (safe mode, 1h, 100Mi, key over Authorization, `$.model`,
//! `$.messages`, `$.temperature`) on a real Envoy with the OpenAI mock: a repeated request is
//! answered by the gateway without reaching the provider, another caller misses, a stream is
//! replayed frame for frame, a truncated stream is never stored.

use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http;
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-cache-e2e-operator";

fn setup() -> (MockHandle, Gateway) {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some(OPENAI_KEY.to_string());
    let mock = spawn(config).unwrap();
    let spec = GatewaySpec {
        inputs: vec![
            "envoy-config/guide/13-trafficpolicy-response-cache.yaml".into(),
            "integration/e2e/tests/fixtures/cache.yaml".into(),
        ],
        ..Default::default()
    }
    .endpoint("gpt", mock.base_url())
    .endpoint("mcp-tools", "http://127.0.0.1:9")
    .secret("openai-secret", OPENAI_KEY);
    let gateway = Gateway::start(&spec).unwrap();
    (mock, gateway)
}

/// Chat requests the provider received.
fn provider_calls(mock: &MockHandle) -> usize {
    mock.received()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .count()
}

fn chat(gateway: &Gateway, auth: &str, body: &str) -> http::Response {
    http::post(
        &gateway.url("/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("authorization", auth),
        ],
        body,
    )
    .unwrap()
}

const DETERMINISTIC: &str = r#"{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"Name three colours."}]}"#;
const STREAMED: &str = r#"{"model":"gpt-4o-mini","temperature":0,"stream":true,"messages":[{"role":"user","content":"Tell me a story"}]}"#;

/// The OpenAI SSE `data:` payloads of a body, in order.
fn data_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn a_repeated_request_is_answered_from_the_cache_without_reaching_the_provider() {
    let (mock, gateway) = setup();
    let first = chat(&gateway, "Bearer alice", DETERMINISTIC);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    assert_eq!(provider_calls(&mock), 1);

    let second = chat(&gateway, "Bearer alice", DETERMINISTIC);
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.header("x-cache-status"), Some("HIT"));
    assert!(second.header("age").is_some());
    assert_eq!(provider_calls(&mock), 1, "the provider was asked again");
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&first.body).unwrap(),
        serde_json::from_str(&second.body).unwrap(),
    );
    assert_eq!(a["choices"], b["choices"]);
    assert_eq!(
        a["usage"], b["usage"],
        "the original answer's usage is reported"
    );
    assert_ne!(a["id"], b["id"], "a replayed answer gets a fresh id");
    // The hit names the provider and model that wrote it (the metrics stage prices the saving).
    assert_eq!(first.header("x-tollgate-provider"), Some("gpt"));
    assert_eq!(second.header("x-tollgate-provider"), Some("gpt"));
    assert_eq!(second.header("x-tollgate-model"), Some("gpt-4o-mini"));

    // Another Authorization is another tenant: a miss, served by the provider.
    let bob = chat(&gateway, "Bearer bob", DETERMINISTIC);
    assert_eq!(bob.header("x-cache-status"), Some("MISS"));
    assert_eq!(provider_calls(&mock), 2);

    // Safe mode: a sampled request is never answered from the cache.
    let sampled = DETERMINISTIC.replace(r#""temperature":0"#, r#""temperature":0.8"#);
    for _ in 0..2 {
        let r = chat(&gateway, "Bearer alice", &sampled);
        assert_eq!(r.header("x-cache-status"), Some("BYPASS"));
    }
    assert_eq!(provider_calls(&mock), 4);
}

#[test]
fn a_stream_is_stored_after_its_last_event_and_replayed_frame_for_frame() {
    let (mock, gateway) = setup();
    let headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer alice"),
    ];
    let url = gateway.url("/v1/chat/completions");
    let first = http::post_timed(&url, &headers, STREAMED).unwrap();
    assert_eq!(first.status, 200);
    let second = http::post_timed(&url, &headers, STREAMED).unwrap();
    assert_eq!(provider_calls(&mock), 1);
    let status = |r: &http::TimedResponse| {
        r.headers
            .iter()
            .find(|(k, _)| k == "x-cache-status")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(status(&first).as_deref(), Some("MISS"));
    assert_eq!(status(&second).as_deref(), Some("HIT"));
    let (sent, replayed) = (data_events(&first.body()), data_events(&second.body()));
    assert_eq!(sent.len(), replayed.len(), "{}", second.body());
    assert!(sent.len() > 3);
    assert_eq!(replayed.last().map(String::as_str), Some("[DONE]"));
    for (sent, replayed) in sent.iter().zip(&replayed) {
        if sent == "[DONE]" {
            continue;
        }
        let mut sent: serde_json::Value = serde_json::from_str(sent).unwrap();
        let replayed: serde_json::Value = serde_json::from_str(replayed).unwrap();
        assert_ne!(sent["id"], replayed["id"]);
        sent["id"] = replayed["id"].clone();
        sent["created"] = replayed["created"].clone();
        assert_eq!(sent, replayed);
    }
}

#[test]
fn a_truncated_stream_is_not_stored() {
    let (mock, gateway) = setup();
    mock.set_faults(InstanceFaults {
        reset_after_chunks: Some(2),
        fail_first: 1,
        ..Default::default()
    })
    .unwrap();
    let url = gateway.url("/v1/chat/completions");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer alice"),
    ];
    // The client sees the stream break (an error or a body without [DONE]).
    if let Ok(cut) = http::post_timed(&url, &headers, STREAMED) {
        let events = data_events(&cut.body());
        assert_ne!(events.last().map(String::as_str), Some("[DONE]"));
    }
    assert_eq!(provider_calls(&mock), 1);
    let again = http::post_timed(&url, &headers, STREAMED).unwrap();
    let status = again
        .headers
        .iter()
        .find(|(k, _)| k == "x-cache-status")
        .map(|(_, v)| v.as_str());
    assert_eq!(status, Some("MISS"));
    assert_eq!(provider_calls(&mock), 2);
    assert_eq!(
        data_events(&again.body()).last().map(String::as_str),
        Some("[DONE]")
    );
}
