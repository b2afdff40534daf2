//! OpenAI Chat Completions: `POST /v1/chat/completions`, JSON and SSE, `Authorization: Bearer`.
//! Ollama's OpenAI-compatible endpoint reuses everything here except authentication.

use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_bearer, sse_data, Exchange, Failure, Reply, CREATED, SSE};
use crate::conversation::{stream_pieces, Answer, Completion, Finish, Prompt};

pub(super) const CHAT_PATH: &str = "/v1/chat/completions";

pub(super) fn route(exchange: &Exchange<'_>) -> Result<Reply, Failure> {
    if exchange.method == Method::POST && exchange.path == CHAT_PATH {
        check_bearer(exchange)?;
        chat(exchange, "fp_mock")
    } else {
        Err(Failure::NotFound)
    }
}

/// The part of a chat completion request the mock acts on.
#[derive(Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    tools: Vec<Tool>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct Tool {
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
}

impl Content {
    fn text(&self) -> String {
        match self {
            Content::Text(text) => text.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter(|part| part.kind == "text")
                .filter_map(|part| part.text.as_deref())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Answers a chat completion; `fingerprint` is the `system_fingerprint` to report.
pub(super) fn chat(exchange: &Exchange<'_>, fingerprint: &str) -> Result<Reply, Failure> {
    let request: ChatRequest = exchange.json_body()?;
    let model = request
        .model
        .filter(|model| !model.is_empty())
        .ok_or_else(|| Failure::invalid("model", "you must provide a model parameter"))?;
    let messages = request
        .messages
        .ok_or_else(|| Failure::invalid("messages", "'messages' is a required property"))?;
    if messages.is_empty() {
        return Err(Failure::invalid(
            "messages",
            "[] is too short - 'messages' must contain at least one message",
        ));
    }
    let texts: Vec<String> = messages
        .iter()
        .map(|m| m.content.as_ref().map(Content::text).unwrap_or_default())
        .collect();
    let last_user_text = match messages.last() {
        Some(last) if last.role == "user" => texts.last().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let prompt = Prompt {
        model,
        message_texts: texts,
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        first_tool: request.tools.first().map(|tool| tool.function.name.clone()),
        last_user_text,
    };
    let completion = Completion::answer(exchange.name, &prompt);
    let ids = Ids {
        id: format!("chatcmpl-mock-{}", exchange.seq),
        call_id: format!("call_mock_{}", exchange.seq),
        model: &prompt.model,
        fingerprint,
    };
    if request.stream {
        let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
        Ok(Reply::Stream {
            content_type: SSE,
            events: stream_events(&ids, &completion, include_usage),
        })
    } else {
        Ok(Reply::json(&whole_answer(&ids, &completion)))
    }
}

/// Identifiers repeated in every piece of one answer.
struct Ids<'a> {
    id: String,
    call_id: String,
    model: &'a str,
    fingerprint: &'a str,
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Complete => "stop",
        Finish::Length => "length",
        Finish::ToolCall => "tool_calls",
    }
}

/// A whole `chat.completion`, typed: this is the answer load benchmarks ask for, and
/// serializing it directly costs a fraction of building a `serde_json::Value` first.
#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
    system_fingerprint: &'a str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    fn of(completion: &Completion) -> Usage {
        Usage {
            prompt_tokens: completion.prompt_tokens,
            completion_tokens: completion.completion_tokens,
            total_tokens: completion.total_tokens(),
        }
    }
}

fn whole_answer<'a>(ids: &'a Ids<'a>, completion: &'a Completion) -> ChatCompletion<'a> {
    let message = match &completion.answer {
        Answer::Text(text) => AssistantMessage {
            role: "assistant",
            content: Some(text),
            refusal: None,
            tool_calls: None,
        },
        Answer::ToolCall { name, arguments } => AssistantMessage {
            role: "assistant",
            content: None,
            refusal: None,
            tool_calls: Some([ToolCall {
                id: &ids.call_id,
                kind: "function",
                function: FunctionCall { name, arguments },
            }]),
        },
    };
    ChatCompletion {
        id: &ids.id,
        object: "chat.completion",
        created: CREATED,
        model: ids.model,
        choices: [Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: finish_reason(completion.finish),
        }],
        usage: Usage::of(completion),
        system_fingerprint: ids.fingerprint,
    }
}

fn stream_events(ids: &Ids<'_>, completion: &Completion, include_usage: bool) -> Vec<bytes::Bytes> {
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut chunk = json!({
            "id": ids.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": ids.model,
            "system_fingerprint": ids.fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        sse_data(&chunk)
    };

    let mut events = Vec::new();
    match &completion.answer {
        Answer::Text(text) => {
            events.push(chunk(json!({"role": "assistant", "content": ""}), None));
            for piece in stream_pieces(text) {
                events.push(chunk(json!({"content": piece}), None));
            }
        }
        Answer::ToolCall { name, arguments } => {
            events.push(chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [{
                    "index": 0,
                    "id": ids.call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]}),
                None,
            ));
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
                None,
            ));
        }
    }
    events.push(chunk(json!({}), Some(finish_reason(completion.finish))));
    if include_usage {
        events.push(sse_data(&json!({
            "id": ids.id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": ids.model,
            "system_fingerprint": ids.fingerprint,
            "choices": [],
            "usage": Usage::of(completion),
        })));
    }
    events.push(bytes::Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// The error body in OpenAI's format: `{"error":{"message","type","param","code"}}`.
pub(super) fn error_body(failure: &Failure) -> Value {
    let (kind, param, code) = match failure {
        Failure::Unauthorized => ("invalid_request_error", None, Some("invalid_api_key")),
        Failure::InvalidRequest { param, .. } => ("invalid_request_error", *param, None),
        Failure::NotFound => ("invalid_request_error", None, Some("unknown_url")),
        Failure::TooLarge => ("invalid_request_error", None, None),
        Failure::Injected(status) if status.as_u16() == 429 => {
            ("requests", None, Some("rate_limit_exceeded"))
        }
        Failure::Injected(status) if status.is_server_error() => ("server_error", None, None),
        Failure::Injected(_) => ("invalid_request_error", None, None),
    };
    json!({"error": {"message": failure.message(), "type": kind, "param": param, "code": code}})
}
