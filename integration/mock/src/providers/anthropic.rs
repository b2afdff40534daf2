//! Anthropic Messages: `POST /v1/messages`, JSON and SSE, `x-api-key` + `anthropic-version`.

use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{sse_event, Exchange, Failure, Reply, SSE};
use crate::conversation::{stream_pieces, Answer, Completion, Finish, Prompt};
use crate::TOOL_CALL_ARGUMENTS;

const MESSAGES_PATH: &str = "/v1/messages";

pub(super) fn route(exchange: &Exchange<'_>) -> Result<Reply, Failure> {
    if exchange.method == Method::POST && exchange.path == MESSAGES_PATH {
        check_auth(exchange)?;
        if exchange.header("anthropic-version").is_none() {
            return Err(Failure::InvalidRequest {
                message: "anthropic-version: header is required".to_string(),
                param: None,
            });
        }
        messages(exchange)
    } else {
        Err(Failure::NotFound)
    }
}

fn check_auth(exchange: &Exchange<'_>) -> Result<(), Failure> {
    match exchange.api_key {
        Some(expected) if exchange.header("x-api-key") != Some(expected) => {
            Err(Failure::Unauthorized)
        }
        _ => Ok(()),
    }
}

/// The part of a Messages request the mock acts on.
#[derive(Deserialize)]
struct MessagesRequest {
    model: Option<String>,
    max_tokens: Option<u64>,
    messages: Option<Vec<Message>>,
    system: Option<Content>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Vec<Tool>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
}

impl Content {
    fn text(&self) -> String {
        match self {
            Content::Text(text) => text.clone(),
            Content::Blocks(blocks) => blocks
                .iter()
                .filter(|block| block.kind == "text")
                .filter_map(|block| block.text.as_deref())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn messages(exchange: &Exchange<'_>) -> Result<Reply, Failure> {
    let request: MessagesRequest = exchange.json_body()?;
    let model = request
        .model
        .filter(|model| !model.is_empty())
        .ok_or_else(|| Failure::invalid("model", "model: Field required"))?;
    let max_tokens = request
        .max_tokens
        .ok_or_else(|| Failure::invalid("max_tokens", "max_tokens: Field required"))?;
    if max_tokens == 0 {
        return Err(Failure::invalid(
            "max_tokens",
            "max_tokens: Input should be greater than or equal to 1",
        ));
    }
    let messages = request
        .messages
        .ok_or_else(|| Failure::invalid("messages", "messages: Field required"))?;
    if messages.is_empty() {
        return Err(Failure::invalid(
            "messages",
            "messages: at least one message is required",
        ));
    }
    if let Some(bad) = messages
        .iter()
        .find(|m| m.role != "user" && m.role != "assistant")
    {
        return Err(Failure::invalid(
            "messages",
            format!(
                "messages: Unexpected role \"{}\", expected user or assistant",
                bad.role
            ),
        ));
    }

    let mut texts: Vec<String> = request.system.iter().map(Content::text).collect();
    texts.extend(messages.iter().map(|m| m.content.text()));
    let last_user_text = match messages.last() {
        Some(last) if last.role == "user" => last.content.text(),
        _ => String::new(),
    };
    let prompt = Prompt {
        model,
        message_texts: texts,
        max_tokens: Some(max_tokens),
        first_tool: request.tools.first().map(|tool| tool.name.clone()),
        last_user_text,
    };
    let completion = Completion::answer(exchange.name, &prompt);
    let ids = Ids {
        id: format!("msg_mock_{}", exchange.seq),
        tool_use_id: format!("toolu_mock_{}", exchange.seq),
        model: &prompt.model,
    };
    if request.stream {
        Ok(Reply::Stream {
            content_type: SSE,
            events: stream_events(&ids, &completion),
        })
    } else {
        Ok(Reply::json(&whole_answer(&ids, &completion)))
    }
}

struct Ids<'a> {
    id: String,
    tool_use_id: String,
    model: &'a str,
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Complete => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCall => "tool_use",
    }
}

fn tool_input() -> Value {
    serde_json::from_str(TOOL_CALL_ARGUMENTS).unwrap_or_else(|_| json!({}))
}

fn whole_answer(ids: &Ids<'_>, completion: &Completion) -> Value {
    let content = match &completion.answer {
        Answer::Text(text) => json!([{"type": "text", "text": text}]),
        Answer::ToolCall { name, .. } => json!([{
            "type": "tool_use",
            "id": ids.tool_use_id,
            "name": name,
            "input": tool_input(),
        }]),
    };
    json!({
        "id": ids.id,
        "type": "message",
        "role": "assistant",
        "model": ids.model,
        "content": content,
        "stop_reason": stop_reason(completion.finish),
        "stop_sequence": null,
        "usage": {
            "input_tokens": completion.prompt_tokens,
            "output_tokens": completion.completion_tokens,
        },
    })
}

fn stream_events(ids: &Ids<'_>, completion: &Completion) -> Vec<Bytes> {
    let mut events = vec![sse_event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": ids.id,
            "type": "message",
            "role": "assistant",
            "model": ids.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": completion.prompt_tokens, "output_tokens": 1},
        }}),
    )];
    let (block, deltas) = match &completion.answer {
        Answer::Text(text) => (
            json!({"type": "text", "text": ""}),
            stream_pieces(text)
                .into_iter()
                .map(|piece| json!({"type": "text_delta", "text": piece}))
                .collect::<Vec<_>>(),
        ),
        Answer::ToolCall { name, arguments } => (
            json!({"type": "tool_use", "id": ids.tool_use_id, "name": name, "input": {}}),
            vec![json!({"type": "input_json_delta", "partial_json": arguments})],
        ),
    };
    events.push(sse_event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": block}),
    ));
    events.push(sse_event("ping", &json!({"type": "ping"})));
    for delta in deltas {
        events.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    events.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(sse_event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(completion.finish), "stop_sequence": null},
            "usage": {"output_tokens": completion.completion_tokens},
        }),
    ));
    events.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    events
}

/// The error body in Anthropic's format: `{"type":"error","error":{"type","message"}}`.
pub(super) fn error_body(failure: &Failure) -> Value {
    let kind = match failure.status().as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        status if status >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": failure.message()}})
}
