//! Each provider's wire format: answers (JSON and streams, over HTTP/1.1 and h2c) compared with
//! the fixtures in `tests/fixtures/`, token counts, tool calls, authentication and validation
//! errors in the provider's own format.

mod common;

use common::{fixture, fixture_json, words, Call, Protocol};
use serde_json::{json, Value};
use tollgate_mock::{answer_text, spawn, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-test-openai";
const ANTHROPIC_KEY: &str = "sk-ant-test";
const GEMINI_KEY: &str = "gemini-test-key";

/// A mock of `kind` on a free loopback port with the test key of its provider.
fn mock(kind: Kind) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = match kind {
        Kind::Openai => Some(OPENAI_KEY.into()),
        Kind::Anthropic => Some(ANTHROPIC_KEY.into()),
        Kind::Gemini => Some(GEMINI_KEY.into()),
        Kind::Ollama => None,
    };
    spawn(config).unwrap()
}

/// The headers a correct client of `kind` sends.
fn auth_headers(kind: Kind) -> Vec<(&'static str, String)> {
    match kind {
        Kind::Openai => vec![("authorization", format!("Bearer {OPENAI_KEY}"))],
        Kind::Anthropic => vec![
            ("x-api-key", ANTHROPIC_KEY.to_string()),
            ("anthropic-version", "2023-06-01".to_string()),
        ],
        Kind::Gemini => vec![("x-goog-api-key", GEMINI_KEY.to_string())],
        Kind::Ollama => vec![],
    }
}

fn authorized(kind: Kind, call: Call) -> Call {
    auth_headers(kind)
        .into_iter()
        .fold(call, |call, (name, value)| call.header(name, &value))
}

/// A happy-path exchange whose answer is a fixture.
struct AnswerCase {
    kind: Kind,
    path: &'static str,
    request: &'static str,
    /// `.json` fixtures are compared as JSON, `.sse` fixtures byte for byte.
    expected: &'static str,
}

const ANSWER_CASES: &[AnswerCase] = &[
    AnswerCase {
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        request: "openai/chat.request.json",
        expected: "openai/chat.response.json",
    },
    AnswerCase {
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        request: "openai/chat_stream.request.json",
        expected: "openai/chat_stream.response.sse",
    },
    AnswerCase {
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        request: "openai/tool_call.request.json",
        expected: "openai/tool_call.response.json",
    },
    AnswerCase {
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        request: "openai/tool_call_stream.request.json",
        expected: "openai/tool_call_stream.response.sse",
    },
    AnswerCase {
        kind: Kind::Anthropic,
        path: "/v1/messages",
        request: "anthropic/messages.request.json",
        expected: "anthropic/messages.response.json",
    },
    AnswerCase {
        kind: Kind::Anthropic,
        path: "/v1/messages",
        request: "anthropic/messages_stream.request.json",
        expected: "anthropic/messages_stream.response.sse",
    },
    AnswerCase {
        kind: Kind::Anthropic,
        path: "/v1/messages",
        request: "anthropic/tool_use.request.json",
        expected: "anthropic/tool_use.response.json",
    },
    AnswerCase {
        kind: Kind::Anthropic,
        path: "/v1/messages",
        request: "anthropic/tool_use_stream.request.json",
        expected: "anthropic/tool_use_stream.response.sse",
    },
    AnswerCase {
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:generateContent",
        request: "gemini/generate.request.json",
        expected: "gemini/generate.response.json",
    },
    AnswerCase {
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        request: "gemini/generate.request.json",
        expected: "gemini/generate_stream.response.sse",
    },
    AnswerCase {
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:generateContent",
        request: "gemini/function_call.request.json",
        expected: "gemini/function_call.response.json",
    },
    AnswerCase {
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        request: "gemini/function_call.request.json",
        expected: "gemini/function_call_stream.response.sse",
    },
    AnswerCase {
        kind: Kind::Ollama,
        path: "/v1/chat/completions",
        request: "ollama/chat.request.json",
        expected: "ollama/chat.response.json",
    },
];

#[test]
fn every_provider_answers_as_in_the_fixtures_over_http1_and_http2() {
    for case in ANSWER_CASES {
        for protocol in [Protocol::Http1, Protocol::Http2] {
            let mock = mock(case.kind);
            let mut call = authorized(case.kind, Call::post(case.path, fixture(case.request)));
            call.protocol = protocol;
            let reply = call.send(mock.addr()).unwrap();
            let context = format!("{} over {protocol:?}", case.expected);

            assert_eq!(reply.status, 200, "{context}: {}", reply.text());
            assert!(reply.body_error.is_none(), "{context}: body cut");
            if case.expected.ends_with(".sse") {
                assert_eq!(reply.header("content-type"), Some("text/event-stream"));
                assert_eq!(reply.text(), fixture(case.expected), "{context}");
            } else {
                assert_eq!(reply.header("content-type"), Some("application/json"));
                assert_eq!(reply.json(), fixture_json(case.expected), "{context}");
            }
        }
    }
}

#[test]
fn token_counts_follow_the_documented_formula() {
    let system = "Answer in one short sentence.";
    let question = "How many   moons\ndoes Mars have?";
    let mock = mock(Kind::Openai);
    let request = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
    });
    let reply = authorized(
        Kind::Openai,
        Call::post("/v1/chat/completions", request.to_string()),
    )
    .send(mock.addr())
    .unwrap();
    let body = reply.json();

    let prompt_words = words(system) + words(question);
    let expected_answer = answer_text("mock-openai", "gpt-4o", 2, prompt_words as usize);
    assert_eq!(body["choices"][0]["message"]["content"], expected_answer);
    assert_eq!(body["usage"]["prompt_tokens"], prompt_words + 2);
    assert_eq!(body["usage"]["completion_tokens"], words(&expected_answer));
    assert_eq!(
        body["usage"]["total_tokens"],
        prompt_words + 2 + words(&expected_answer)
    );
}

#[test]
fn system_prompts_count_as_one_message_in_every_format() {
    // "Be brief." + "Say hi to me" = 2 + 4 words, 2 messages: 8 prompt tokens.
    let cases = [
        (
            Kind::Openai,
            "/v1/chat/completions",
            json!({"model": "m", "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "Say hi to me"}]}),
            "/usage/prompt_tokens",
        ),
        (
            Kind::Anthropic,
            "/v1/messages",
            json!({"model": "m", "max_tokens": 50,
                   "system": [{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}],
                   "messages": [{"role": "user", "content": "Say hi to me"}]}),
            "/usage/input_tokens",
        ),
        (
            Kind::Gemini,
            "/v1beta/models/m:generateContent",
            json!({"system_instruction": {"parts": [{"text": "Be brief."}]},
                   "contents": [{"role": "user", "parts": [{"text": "Say hi to me"}]}]}),
            "/usageMetadata/promptTokenCount",
        ),
    ];
    for (kind, path, request, pointer) in cases {
        let mock = mock(kind);
        let reply = authorized(kind, Call::post(path, request.to_string()))
            .send(mock.addr())
            .unwrap();
        assert_eq!(reply.json().pointer(pointer), Some(&json!(8)), "{kind}");
        assert!(
            reply.text().contains("Prompt: 2 messages, 6 words."),
            "{kind}"
        );
    }
}

#[test]
fn stream_deltas_concatenate_to_the_whole_answer() {
    let mock = mock(Kind::Openai);
    let reply = authorized(
        Kind::Openai,
        Call::post(
            "/v1/chat/completions",
            fixture("openai/chat_stream.request.json"),
        ),
    )
    .send(mock.addr())
    .unwrap();
    let text: String = reply
        .sse_json()
        .iter()
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    let whole = fixture_json("openai/chat.response.json");
    assert_eq!(text, whole["choices"][0]["message"]["content"]);
}

#[test]
fn openai_stream_without_include_usage_has_no_usage_chunk() {
    let mock = mock(Kind::Openai);
    let mut request = fixture_json("openai/chat_stream.request.json");
    request.as_object_mut().unwrap().remove("stream_options");
    let reply = authorized(
        Kind::Openai,
        Call::post("/v1/chat/completions", request.to_string()),
    )
    .send(mock.addr())
    .unwrap();
    let chunks = reply.sse_json();
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
    assert!(chunks
        .iter()
        .all(|chunk| chunk["choices"].as_array().is_some_and(|c| c.len() == 1)));
    assert_eq!(reply.sse_data().last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn gemini_stream_without_alt_sse_is_one_json_array() {
    let mock = mock(Kind::Gemini);
    let reply = authorized(
        Kind::Gemini,
        Call::post(
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            fixture("gemini/generate.request.json"),
        ),
    )
    .send(mock.addr())
    .unwrap();
    let sse_chunks: Vec<Value> = fixture("gemini/generate_stream.response.sse")
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(reply.json(), Value::Array(sse_chunks));
}

#[test]
fn max_tokens_cuts_the_answer_and_says_why() {
    struct Case {
        kind: Kind,
        path: &'static str,
        request: Value,
        text: fn(&Value) -> &Value,
        reason: fn(&Value) -> &Value,
        expected_reason: &'static str,
    }
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        Case {
            kind: Kind::Openai,
            path: "/v1/chat/completions",
            request: json!({"model": "m", "max_tokens": 3, "messages": user}),
            text: |b| &b["choices"][0]["message"]["content"],
            reason: |b| &b["choices"][0]["finish_reason"],
            expected_reason: "length",
        },
        Case {
            kind: Kind::Openai,
            path: "/v1/chat/completions",
            request: json!({"model": "m", "max_completion_tokens": 3, "max_tokens": 50, "messages": user}),
            text: |b| &b["choices"][0]["message"]["content"],
            reason: |b| &b["choices"][0]["finish_reason"],
            expected_reason: "length",
        },
        Case {
            kind: Kind::Anthropic,
            path: "/v1/messages",
            request: json!({"model": "m", "max_tokens": 3, "messages": user}),
            text: |b| &b["content"][0]["text"],
            reason: |b| &b["stop_reason"],
            expected_reason: "max_tokens",
        },
        Case {
            kind: Kind::Gemini,
            path: "/v1beta/models/m:generateContent",
            request: json!({"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 3}}),
            text: |b| &b["candidates"][0]["content"]["parts"][0]["text"],
            reason: |b| &b["candidates"][0]["finishReason"],
            expected_reason: "MAX_TOKENS",
        },
    ];
    for case in cases {
        let mock = mock(case.kind);
        let reply = authorized(case.kind, Call::post(case.path, case.request.to_string()))
            .send(mock.addr())
            .unwrap();
        let body = reply.json();
        let expected_text = format!("Hello from mock-{}", case.kind);
        assert_eq!((case.text)(&body), &json!(expected_text), "{}", case.kind);
        assert_eq!((case.reason)(&body), case.expected_reason, "{}", case.kind);
    }
}

#[test]
fn a_turn_ending_with_the_tool_result_gets_a_text_answer() {
    let cases = [
        (
            Kind::Openai,
            "/v1/chat/completions",
            json!({"model": "m", "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                   "messages": [
                       {"role": "user", "content": "What is the weather in Paris?"},
                       {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
                       {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]}),
        ),
        (
            Kind::Anthropic,
            "/v1/messages",
            json!({"model": "m", "max_tokens": 100, "tools": [{"name": "get_weather", "input_schema": {}}],
                   "messages": [
                       {"role": "user", "content": "What is the weather in Paris?"},
                       {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]}),
        ),
        (
            Kind::Gemini,
            "/v1beta/models/m:generateContent",
            json!({"tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
                   "contents": [
                       {"role": "user", "parts": [{"text": "What is the weather in Paris?"}]},
                       {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
                       {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}]}]}),
        ),
    ];
    for (kind, path, request) in cases {
        let mock = mock(kind);
        let reply = authorized(kind, Call::post(path, request.to_string()))
            .send(mock.addr())
            .unwrap();
        assert_eq!(reply.status, 200, "{kind}");
        let text = reply.text();
        assert!(text.contains("Hello from"), "{kind}: {text}");
        assert!(
            !text.contains("Paris\\\""),
            "{kind} called the tool again: {text}"
        );
    }
}

#[test]
fn gemini_accepts_the_key_as_query_parameter() {
    let mock = mock(Kind::Gemini);
    let path = format!("/v1beta/models/gemini-2.0-flash:generateContent?key={GEMINI_KEY}");
    let reply = Call::post(path, fixture("gemini/generate.request.json"))
        .send(mock.addr())
        .unwrap();
    assert_eq!(reply.json(), fixture_json("gemini/generate.response.json"));
}

#[test]
fn ollama_lists_its_models_and_answers_without_a_key() {
    let mock = mock(Kind::Ollama);
    let chat = Call::post("/v1/chat/completions", fixture("ollama/chat.request.json"))
        .header("authorization", "Bearer anything")
        .send(mock.addr())
        .unwrap();
    assert_eq!(chat.json(), fixture_json("ollama/chat.response.json"));

    let tags = Call::get("/api/tags").send(mock.addr()).unwrap();
    assert_eq!(tags.status, 200);
    assert_eq!(tags.json(), fixture_json("ollama/tags.response.json"));

    let banner = Call::get("/").send(mock.addr()).unwrap();
    assert_eq!(banner.text(), "Ollama is running");
}

/// A request that must be refused, and the exact error body expected.
struct ErrorCase {
    name: &'static str,
    kind: Kind,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    status: u16,
    expected: fn() -> Value,
}

const VALID_OPENAI: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
const VALID_ANTHROPIC: &str =
    r#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
const VALID_GEMINI: &str = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;
const ANTHROPIC_VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

fn openai_error(message: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
}

fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn gemini_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

const ERROR_CASES: &[ErrorCase] = &[
    ErrorCase {
        name: "openai without key",
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        headers: &[],
        body: VALID_OPENAI,
        status: 401,
        expected: || {
            openai_error(
                "Missing or incorrect API key.",
                None,
                Some("invalid_api_key"),
            )
        },
    },
    ErrorCase {
        name: "openai with wrong key",
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        headers: &[("authorization", "Bearer sk-wrong-secret")],
        body: VALID_OPENAI,
        status: 401,
        expected: || {
            openai_error(
                "Missing or incorrect API key.",
                None,
                Some("invalid_api_key"),
            )
        },
    },
    ErrorCase {
        name: "openai without model",
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        headers: &[("authorization", "Bearer sk-test-openai")],
        body: r#"{"messages":[{"role":"user","content":"hi"}]}"#,
        status: 400,
        expected: || openai_error("you must provide a model parameter", Some("model"), None),
    },
    ErrorCase {
        name: "openai without messages",
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        headers: &[("authorization", "Bearer sk-test-openai")],
        body: r#"{"model":"m"}"#,
        status: 400,
        expected: || openai_error("'messages' is a required property", Some("messages"), None),
    },
    ErrorCase {
        name: "openai with empty messages",
        kind: Kind::Openai,
        path: "/v1/chat/completions",
        headers: &[("authorization", "Bearer sk-test-openai")],
        body: r#"{"model":"m","messages":[]}"#,
        status: 400,
        expected: || {
            openai_error(
                "[] is too short - 'messages' must contain at least one message",
                Some("messages"),
                None,
            )
        },
    },
    ErrorCase {
        name: "ollama unknown path",
        kind: Kind::Ollama,
        path: "/v1/completions",
        headers: &[],
        body: VALID_OPENAI,
        status: 404,
        expected: || {
            openai_error(
                "No such endpoint on this mock provider.",
                None,
                Some("unknown_url"),
            )
        },
    },
    ErrorCase {
        name: "anthropic with wrong key",
        kind: Kind::Anthropic,
        path: "/v1/messages",
        headers: &[("x-api-key", "sk-ant-wrong-secret"), ANTHROPIC_VERSION],
        body: VALID_ANTHROPIC,
        status: 401,
        expected: || anthropic_error("authentication_error", "Missing or incorrect API key."),
    },
    ErrorCase {
        name: "anthropic without anthropic-version",
        kind: Kind::Anthropic,
        path: "/v1/messages",
        headers: &[("x-api-key", "sk-ant-test")],
        body: VALID_ANTHROPIC,
        status: 400,
        expected: || {
            anthropic_error(
                "invalid_request_error",
                "anthropic-version: header is required",
            )
        },
    },
    ErrorCase {
        name: "anthropic without max_tokens",
        kind: Kind::Anthropic,
        path: "/v1/messages",
        headers: &[("x-api-key", "sk-ant-test"), ANTHROPIC_VERSION],
        body: r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
        status: 400,
        expected: || anthropic_error("invalid_request_error", "max_tokens: Field required"),
    },
    ErrorCase {
        name: "anthropic without model",
        kind: Kind::Anthropic,
        path: "/v1/messages",
        headers: &[("x-api-key", "sk-ant-test"), ANTHROPIC_VERSION],
        body: r#"{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
        status: 400,
        expected: || anthropic_error("invalid_request_error", "model: Field required"),
    },
    ErrorCase {
        name: "anthropic without messages",
        kind: Kind::Anthropic,
        path: "/v1/messages",
        headers: &[("x-api-key", "sk-ant-test"), ANTHROPIC_VERSION],
        body: r#"{"model":"m","max_tokens":10}"#,
        status: 400,
        expected: || anthropic_error("invalid_request_error", "messages: Field required"),
    },
    ErrorCase {
        name: "anthropic with a system role message",
        kind: Kind::Anthropic,
        path: "/v1/messages",
        headers: &[("x-api-key", "sk-ant-test"), ANTHROPIC_VERSION],
        body: r#"{"model":"m","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}"#,
        status: 400,
        expected: || {
            anthropic_error(
                "invalid_request_error",
                "messages: Unexpected role \"system\", expected user or assistant",
            )
        },
    },
    ErrorCase {
        name: "gemini without key",
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:generateContent",
        headers: &[],
        body: VALID_GEMINI,
        status: 401,
        expected: || gemini_error(401, "UNAUTHENTICATED", "Missing or incorrect API key."),
    },
    ErrorCase {
        name: "gemini with wrong key in the query",
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:generateContent?key=wrong-secret",
        headers: &[],
        body: VALID_GEMINI,
        status: 401,
        expected: || gemini_error(401, "UNAUTHENTICATED", "Missing or incorrect API key."),
    },
    ErrorCase {
        name: "gemini without contents",
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:generateContent",
        headers: &[("x-goog-api-key", "gemini-test-key")],
        body: r#"{"contents":[]}"#,
        status: 400,
        expected: || gemini_error(400, "INVALID_ARGUMENT", "contents is not specified"),
    },
    ErrorCase {
        name: "gemini unknown method",
        kind: Kind::Gemini,
        path: "/v1beta/models/gemini-2.0-flash:countTokens",
        headers: &[("x-goog-api-key", "gemini-test-key")],
        body: VALID_GEMINI,
        status: 404,
        expected: || gemini_error(404, "NOT_FOUND", "No such endpoint on this mock provider."),
    },
];

#[test]
fn refused_requests_get_the_providers_own_error_format() {
    for case in ERROR_CASES {
        let mock = mock(case.kind);
        let reply = Call::post(case.path, case.body)
            .headers(case.headers)
            .send(mock.addr())
            .unwrap();
        assert_eq!(reply.status, case.status, "{}: {}", case.name, reply.text());
        assert_eq!(reply.json(), (case.expected)(), "{}", case.name);
        assert!(
            !reply.text().contains("secret"),
            "{}: error body echoes the key",
            case.name
        );
    }
}

#[test]
fn a_body_that_is_not_json_is_a_400_in_the_providers_format() {
    for (kind, path) in [
        (Kind::Openai, "/v1/chat/completions"),
        (Kind::Anthropic, "/v1/messages"),
        (Kind::Gemini, "/v1beta/models/m:generateContent"),
    ] {
        let mock = mock(kind);
        let reply = authorized(kind, Call::post(path, "{not json"))
            .send(mock.addr())
            .unwrap();
        assert_eq!(reply.status, 400, "{kind}");
        let body = reply.json();
        let error_type = match kind {
            Kind::Openai => &body["error"]["type"],
            Kind::Anthropic => &body["error"]["type"],
            _ => &body["error"]["status"],
        };
        assert!(
            matches!(
                error_type.as_str(),
                Some("invalid_request_error" | "INVALID_ARGUMENT")
            ),
            "{kind}: {body}"
        );
    }
}
