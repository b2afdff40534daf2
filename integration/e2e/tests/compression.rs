//! Envoy's compressor in front of the pipeline (envoy-config/src/output/compression.rs), on a
//! real Envoy with the guide + companion: a client sending `accept-encoding: gzip` gets its
//! JSON answer gzipped, while the providers are still asked for identity and the stages still
//! read the answer (tokens counted, answers cached); streams stay plain SSE; small answers
//! and clients that do not accept gzip get identity; a cache hit is gzipped like a miss; a
//! proxy route is passed through untouched.
//!
//! The mocks compress whenever a request's accept-encoding allows it, as real providers do,
//! so a client's gzip leaking upstream would reach the stages compressed.

use flate2::read::GzDecoder;
use std::io::Read;
use std::time::{Duration, Instant};
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http::{self, TimedResponse};
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-compression-openai";

/// A mock name long enough that its answers pass the compressor's 1100-byte floor: the
/// answer text repeats it (`Hello from {name} ...`).
fn long_name() -> String {
    "compression-mock ".repeat(60).trim_end().to_string()
}

/// An OpenAI mock named `name` that gzips when asked and spaces stream chunks out (as
/// tests/streaming.rs does, so that a stream passed on event by event arrives in many reads).
fn openai_mock(name: String) -> MockHandle {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.name = name;
    config.api_key = Some(OPENAI_KEY.to_string());
    config.faults = InstanceFaults {
        gzip: true,
        chunk_delay_ms: 80,
        ..Default::default()
    };
    spawn(config).unwrap()
}

/// Guide + companion (+ `extra` inputs) with `openai` (native, `/openai`) and `gpt-4o-mini`
/// (adapter, first of multi-provider on `/v1`) on `mock`; every other provider is down.
fn start_gateway(mock: &MockHandle, extra: &[(&str, &str, String)]) -> Gateway {
    let mut spec = GatewaySpec::guide_and_companion()
        .endpoint("openai", mock.base_url())
        .endpoint("gpt-4o-mini", mock.base_url())
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", "sk-ant")
        .secret("google-ai-secret", "goog");
    for down in [
        "local-llama",
        "gemini-flash",
        "claude-haiku",
        "mcp-tools",
        "semantic-cache-service",
    ] {
        spec = spec.endpoint(down, "http://127.0.0.1:9");
    }
    for (input, endpoint, url) in extra {
        spec.inputs.push(input.to_string());
        spec = spec.endpoint(endpoint, url.clone());
    }
    Gateway::start(&spec).unwrap()
}

fn chat_body(prompt: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"stream":{stream},"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
    )
}

/// POSTs a chat request; `headers` come after the content type.
///
/// Asked again (up to 5 times) when every attempt of Envoy's failed on a down provider: the
/// guide's `multi-provider` Backend balances over three providers and this file leaves two of
/// them down, so Envoy is in panic mode there (2 of 3 hosts unhealthy) and a request's three
/// attempts may all land on the down ones (`gateway_503`). That is failover luck, which
/// edges_failover.rs tests; here only what the answer that comes back looks like counts.
fn chat(gateway: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> TimedResponse {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let mut tries = 0;
    loop {
        let response = http::post_timed(&gateway.url(path), &all, body).unwrap();
        tries += 1;
        let all_down = response.status == 503 && text_body(&response).contains("gateway_503");
        if !all_down || tries == 5 {
            return response;
        }
    }
}

fn header<'a>(response: &'a TimedResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn raw_body(response: &TimedResponse) -> Vec<u8> {
    response
        .pieces
        .iter()
        .flat_map(|(_, b)| b.iter().copied())
        .collect()
}

/// The body as text: gunzipped when the answer says `content-encoding: gzip`.
fn text_body(response: &TimedResponse) -> String {
    let raw = raw_body(response);
    match header(response, "content-encoding") {
        Some("gzip") => {
            let mut text = String::new();
            GzDecoder::new(raw.as_slice())
                .read_to_string(&mut text)
                .expect("a valid gzip body");
            text
        }
        None => String::from_utf8(raw).unwrap(),
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
}

/// The body as JSON (gunzipped when it says so).
fn json_body(response: &TimedResponse) -> serde_json::Value {
    let text = text_body(response);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Output tokens the metrics stage counted for OpenAI providers (native and adapted).
fn counted_output_tokens(gateway: &Gateway) -> u64 {
    let text = http::get(&gateway.stats_url("/stats/prometheus"))
        .unwrap()
        .body;
    text.lines()
        .filter(|l| {
            l.starts_with(r#"agentgateway_llm_tokens_total{direction="output",provider="openai","#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Polls the token counter until it reaches `want` (or a deadline), and returns it.
fn tokens_reach(gateway: &Gateway, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = counted_output_tokens(gateway);
        if got >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gzip_client_gets_gzipped_json_while_the_provider_is_asked_for_identity_and_tokens_are_counted()
{
    let mock = openai_mock(long_name());
    let gateway = start_gateway(&mock, &[]);
    let mut counted = 0;
    // Native Backend (Envoy rewrites the request) and adapted Backend (the wasm adapter).
    for (i, path) in ["/openai/v1/chat/completions", "/v1/chat/completions"]
        .iter()
        .enumerate()
    {
        let response = chat(
            &gateway,
            path,
            &[("accept-encoding", "gzip, deflate")],
            &chat_body(&format!("Say hello {i}"), false),
        );
        assert_eq!(response.status, 200, "{path}: {}", text_body(&response));
        assert_eq!(
            header(&response, "content-encoding"),
            Some("gzip"),
            "{path}"
        );
        assert_eq!(header(&response, "vary"), Some("Accept-Encoding"), "{path}");
        assert!(header(&response, "x-tollgate-provider").is_some(), "{path}");
        let body = json_body(&response);
        assert_eq!(body["object"], "chat.completion", "{path}: {body}");
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(text.starts_with("Hello from compression-mock"), "{text}");
        assert!(
            raw_body(&response).len() < text.len(),
            "{path}: the gzipped body is smaller than the text it holds"
        );

        let sent = mock.received();
        let last = sent.last().expect("the provider got the request");
        assert_eq!(last.header("accept-encoding"), Some("identity"), "{path}");

        // The metrics stage read the (identity) answer: its usage is counted.
        counted += body["usage"]["completion_tokens"].as_u64().unwrap();
        assert!(counted > 0);
        assert_eq!(tokens_reach(&gateway, counted), counted, "{path}");
    }
}

#[test]
fn clients_that_do_not_accept_gzip_and_small_answers_get_identity() {
    let mock = openai_mock(long_name());
    let gateway = start_gateway(&mock, &[]);
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("accept-encoding", "identity")],
        &[("accept-encoding", "br")],
        &[("accept-encoding", "gzip;q=0, identity")],
    ];
    for (i, headers) in cases.iter().enumerate() {
        let response = chat(
            &gateway,
            "/openai/v1/chat/completions",
            headers,
            &chat_body(&format!("Say hello {i}"), false),
        );
        assert_eq!(response.status, 200, "{headers:?}: {}", response.body());
        assert_eq!(header(&response, "content-encoding"), None, "{headers:?}");
        assert_eq!(json_body(&response)["object"], "chat.completion");
        assert_eq!(
            mock.received().last().unwrap().header("accept-encoding"),
            Some("identity")
        );
    }

    // An answer below the floor is sent as it is, even to a gzip client.
    let short = openai_mock("short".to_string());
    let small = start_gateway(&short, &[]);
    let response = chat(
        &small,
        "/openai/v1/chat/completions",
        &[("accept-encoding", "gzip")],
        &chat_body("Say hello", false),
    );
    assert_eq!(response.status, 200, "{}", text_body(&response));
    let length: usize = header(&response, "content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert!(length < 1100, "{length}");
    assert_eq!(header(&response, "content-encoding"), None);
    assert_eq!(json_body(&response)["object"], "chat.completion");
}

#[test]
fn a_stream_to_a_gzip_client_stays_plain_sse_event_by_event() {
    let mock = openai_mock("mock-openai".to_string());
    let gateway = start_gateway(&mock, &[]);
    let before = counted_output_tokens(&gateway);
    let response = chat(
        &gateway,
        "/v1/chat/completions",
        &[("accept-encoding", "gzip")],
        &chat_body("Tell me a story", true),
    );
    assert_eq!(response.status, 200, "{}", text_body(&response));
    assert_eq!(header(&response, "content-encoding"), None);
    assert!(
        header(&response, "content-type").is_some_and(|t| t.starts_with("text/event-stream")),
        "{:?}",
        response.headers
    );
    let body = response.body();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}")))
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    // Event by event, not held back: the body came in many reads.
    assert!(
        response.pieces.len() >= 5,
        "{} pieces",
        response.pieces.len()
    );
    assert_eq!(
        mock.received().last().unwrap().header("accept-encoding"),
        Some("identity")
    );
    // The stage read the stream's usage chunk.
    let usage = chunks
        .iter()
        .find_map(|c| c["usage"]["completion_tokens"].as_u64())
        .unwrap_or_else(|| panic!("no usage chunk in {body}"));
    assert_eq!(tokens_reach(&gateway, before + usage), before + usage);
}

#[test]
fn a_cache_hit_is_gzipped_for_a_gzip_client_and_identity_for_the_others() {
    let mock = openai_mock(long_name());
    let gateway = start_gateway(&mock, &[]);
    let body = chat_body("Name three colours.", false);
    let path = "/openai/v1/chat/completions";
    let auth = ("authorization", "Bearer alice");

    let miss = chat(&gateway, path, &[auth], &body);
    assert_eq!(header(&miss, "x-cache-status"), Some("MISS"));
    assert_eq!(header(&miss, "content-encoding"), None);

    let hit = chat(&gateway, path, &[auth, ("accept-encoding", "gzip")], &body);
    assert_eq!(hit.status, 200, "{}", hit.body());
    assert_eq!(header(&hit, "x-cache-status"), Some("HIT"));
    assert_eq!(header(&hit, "content-encoding"), Some("gzip"));
    assert_eq!(json_body(&hit)["choices"], json_body(&miss)["choices"]);

    let plain = chat(&gateway, path, &[auth], &body);
    assert_eq!(header(&plain, "x-cache-status"), Some("HIT"));
    assert_eq!(header(&plain, "content-encoding"), None);
    assert_eq!(json_body(&plain)["choices"], json_body(&miss)["choices"]);
    assert_eq!(
        mock.request_count(),
        1,
        "the hits never reached the provider"
    );
}

#[test]
fn a_proxy_route_forwards_the_clients_accept_encoding_and_the_upstreams_answer_untouched() {
    let mock = openai_mock(long_name());
    // The plain HTTP Backend `web-app` behind `/web` is a second OpenAI mock.
    let web = openai_mock(long_name());
    let gateway = start_gateway(
        &mock,
        &[(
            "envoy-config/tests/fixtures/proxy-route.yaml",
            "web-app",
            web.base_url(),
        )],
    );
    let response = chat(
        &gateway,
        "/web/anything",
        &[("accept-encoding", "gzip")],
        &chat_body("Say hello", false),
    );
    let received = web.received();
    let last = received.last().expect("the proxied request");
    assert_eq!(last.path, "/web/anything");
    assert_eq!(last.header("accept-encoding"), Some("gzip"));
    // The upstream's own gzip (the mock compresses its 404) is relayed as it came.
    assert_eq!(response.status, 404);
    assert_eq!(header(&response, "content-encoding"), Some("gzip"));
    assert!(json_body(&response)["error"].is_object());
}
