//! Streams through the gateway reach the client as the provider sends them, translated chunk by
//! chunk to OpenAI SSE, with the usage chunk and `data: [DONE]` at the end.

use std::time::Duration;
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http::{self, TimedResponse};
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

const CHUNK_DELAY: Duration = Duration::from_millis(80);

fn mock(kind: Kind, key: &str) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some(key.to_string());
    let handle = spawn(config).unwrap();
    handle
        .set_faults(InstanceFaults {
            chunk_delay_ms: CHUNK_DELAY.as_millis() as u64,
            ..Default::default()
        })
        .unwrap();
    handle
}

/// A gateway whose only live provider is `live` (named `name` in the guide's Backends).
fn gateway_with_only(name: &str, live: &MockHandle) -> Gateway {
    let mut spec = GatewaySpec::guide_and_companion()
        .secret("openai-secret", "sk-openai")
        .secret("anthropic-secret", "sk-anthropic")
        .secret("google-ai-secret", "google");
    for other in [
        "local-llama",
        "gemini-flash",
        "gpt-4o-mini",
        "openai",
        "claude-haiku",
        "mcp-tools",
        "semantic-cache-service",
    ] {
        // Port 9 (discard) refuses connections here: every other provider is down.
        spec = spec.endpoint(other, "http://127.0.0.1:9");
    }
    Gateway::start(&spec.endpoint(name, live.base_url())).unwrap()
}

fn stream_chat(gateway: &Gateway, path: &str) -> TimedResponse {
    http::post_timed(
        &gateway.url(path),
        &[("content-type", "application/json")],
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Tell me a story"}]}"#,
    )
    .unwrap()
}

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

/// Checks an OpenAI-format stream: deltas, a usage chunk (forced even though the client did
/// not ask), then `[DONE]`; and that it arrived piece by piece, not buffered.
fn assert_streamed_openai(response: &TimedResponse) {
    assert_eq!(response.status, 200, "{}", response.body());
    let body = response.body();
    let events = data_events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}")))
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{body}"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.starts_with("Hello from"), "{text}");
    let usage = chunks
        .iter()
        .find(|c| c["usage"]["total_tokens"].as_u64().is_some())
        .unwrap_or_else(|| panic!("no usage chunk in {body}"));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Not buffered: the body came in many pieces, and the first long before the last.
    let (first, last) = (
        response.first_byte().unwrap(),
        response.last_byte().unwrap(),
    );
    assert!(
        response.pieces.len() >= 5,
        "{} pieces",
        response.pieces.len()
    );
    assert!(
        last - first >= CHUNK_DELAY * 5,
        "first byte at {first:?}, last at {last:?}: the stream was buffered"
    );
}

#[test]
fn an_openai_stream_reaches_the_client_chunk_by_chunk_with_usage() {
    let provider = mock(Kind::Openai, "sk-openai");
    let gateway = gateway_with_only("gpt-4o-mini", &provider);
    let response = stream_chat(&gateway, "/stream/v1/chat/completions");
    assert_streamed_openai(&response);
    // The client did not ask for usage; the router forced it on the upstream request.
    let sent = provider.received().last().unwrap().body_json().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[test]
fn a_gemini_stream_is_translated_to_openai_sse_as_it_arrives() {
    let provider = mock(Kind::Gemini, "google");
    let gateway = gateway_with_only("gemini-flash", &provider);
    let response = stream_chat(&gateway, "/stream/v1/chat/completions");
    assert_streamed_openai(&response);
    assert_eq!(
        provider.received().last().unwrap().path,
        "/v1beta/models/gemini-1.5-flash:streamGenerateContent?alt=sse"
    );
}

#[test]
fn an_anthropic_stream_is_translated_to_openai_sse_as_it_arrives() {
    let provider = mock(Kind::Anthropic, "sk-anthropic");
    let gateway = gateway_with_only("claude-haiku", &provider);
    let response = stream_chat(&gateway, "/batch/v1/chat/completions");
    assert_streamed_openai(&response);
    assert_eq!(provider.received().last().unwrap().path, "/v1/messages");
}
