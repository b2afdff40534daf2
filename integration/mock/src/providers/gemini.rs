//! Google Gemini: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` (SSE with `?alt=sse`, a JSON array otherwise); `x-goog-api-key`
//! header or `?key=`.

use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{sse_data, Exchange, Failure, Reply, SSE};
use crate::conversation::{stream_pieces, Answer, Completion, Finish, Prompt};
use crate::TOOL_CALL_ARGUMENTS;

/// API version prefixes the mock answers under.
const MODEL_PREFIXES: [&str; 2] = ["/v1beta/models/", "/v1/models/"];

pub(super) fn route(exchange: &Exchange<'_>) -> Result<Reply, Failure> {
    let Some((model, action)) = MODEL_PREFIXES
        .iter()
        .find_map(|prefix| exchange.path.strip_prefix(prefix))
        .and_then(|rest| rest.rsplit_once(':'))
    else {
        return Err(Failure::NotFound);
    };
    let streaming = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return Err(Failure::NotFound),
    };
    if exchange.method != Method::POST || model.is_empty() {
        return Err(Failure::NotFound);
    }
    check_auth(exchange)?;
    generate(exchange, model, streaming)
}

fn check_auth(exchange: &Exchange<'_>) -> Result<(), Failure> {
    let Some(expected) = exchange.api_key else {
        return Ok(());
    };
    let given = exchange
        .header("x-goog-api-key")
        .or_else(|| exchange.query_param("key"));
    if given == Some(expected) {
        Ok(())
    } else {
        Err(Failure::Unauthorized)
    }
}

/// The part of a GenerateContentRequest the mock acts on (camelCase, snake_case accepted too).
#[derive(Deserialize)]
struct GenerateRequest {
    contents: Option<Vec<Content>>,
    #[serde(rename = "systemInstruction", alias = "system_instruction")]
    system_instruction: Option<Content>,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(rename = "generationConfig", alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Deserialize)]
struct Content {
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(
        rename = "functionDeclarations",
        alias = "function_declarations",
        default
    )]
    function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Deserialize)]
struct FunctionDeclaration {
    name: String,
}

#[derive(Deserialize)]
struct GenerationConfig {
    #[serde(rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
}

impl Content {
    fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|part| part.text.as_deref())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Gemini treats a content without a role as the user's.
    fn is_user(&self) -> bool {
        self.role.as_deref().is_none_or(|role| role == "user")
    }
}

fn generate(exchange: &Exchange<'_>, model: &str, streaming: bool) -> Result<Reply, Failure> {
    let request: GenerateRequest = exchange.json_body()?;
    let contents = request
        .contents
        .filter(|contents| !contents.is_empty())
        .ok_or_else(|| Failure::invalid("contents", "contents is not specified"))?;

    let mut texts: Vec<String> = request
        .system_instruction
        .iter()
        .map(Content::text)
        .collect();
    texts.extend(contents.iter().map(Content::text));
    let last_user_text = match contents.last() {
        Some(last) if last.is_user() => last.text(),
        _ => String::new(),
    };
    let prompt = Prompt {
        model: model.to_string(),
        message_texts: texts,
        max_tokens: request
            .generation_config
            .and_then(|config| config.max_output_tokens),
        first_tool: request
            .tools
            .iter()
            .flat_map(|tool| &tool.function_declarations)
            .next()
            .map(|declaration| declaration.name.clone()),
        last_user_text,
    };
    let completion = Completion::answer(exchange.name, &prompt);
    let ids = Ids {
        response_id: format!("mock-{}", exchange.seq),
        model,
    };
    let chunks = || stream_chunks(&ids, &completion);
    Ok(match (streaming, exchange.query_param("alt")) {
        (false, _) => Reply::json(&whole_answer(&ids, &completion)),
        (true, Some("sse")) => Reply::Stream {
            content_type: SSE,
            events: chunks().iter().map(sse_data).collect::<Vec<Bytes>>(),
        },
        (true, _) => Reply::json(&chunks()),
    })
}

struct Ids<'a> {
    response_id: String,
    model: &'a str,
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Complete | Finish::ToolCall => "STOP",
        Finish::Length => "MAX_TOKENS",
    }
}

fn usage_metadata(completion: &Completion) -> Value {
    json!({
        "promptTokenCount": completion.prompt_tokens,
        "candidatesTokenCount": completion.completion_tokens,
        "totalTokenCount": completion.total_tokens(),
    })
}

fn function_call_part(name: &str) -> Value {
    let args = serde_json::from_str::<Value>(TOOL_CALL_ARGUMENTS).unwrap_or_else(|_| json!({}));
    json!({"functionCall": {"name": name, "args": args}})
}

fn response(ids: &Ids<'_>, parts: Value, finish: Option<(Finish, &Completion)>) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    let mut response = json!({
        "candidates": [],
        "modelVersion": ids.model,
        "responseId": ids.response_id,
    });
    if let Some((finish, completion)) = finish {
        candidate["finishReason"] = json!(finish_reason(finish));
        response["usageMetadata"] = usage_metadata(completion);
    }
    response["candidates"] = json!([candidate]);
    response
}

fn whole_answer(ids: &Ids<'_>, completion: &Completion) -> Value {
    let parts = match &completion.answer {
        Answer::Text(text) => json!([{"text": text}]),
        Answer::ToolCall { name, .. } => json!([function_call_part(name)]),
    };
    response(ids, parts, Some((completion.finish, completion)))
}

/// One GenerateContentResponse per word; the last one carries the finish reason and usage.
fn stream_chunks(ids: &Ids<'_>, completion: &Completion) -> Vec<Value> {
    let part_lists: Vec<Value> = match &completion.answer {
        Answer::Text(text) => {
            let pieces = stream_pieces(text);
            if pieces.is_empty() {
                vec![json!([{"text": ""}])]
            } else {
                pieces.into_iter().map(|p| json!([{"text": p}])).collect()
            }
        }
        Answer::ToolCall { name, .. } => vec![json!([function_call_part(name)])],
    };
    let last = part_lists.len().saturating_sub(1);
    part_lists
        .into_iter()
        .enumerate()
        .map(|(index, parts)| {
            let finish = (index == last).then_some((completion.finish, completion));
            response(ids, parts, finish)
        })
        .collect()
}

/// The error body in Google's format: `{"error":{"code","message","status"}}`.
pub(super) fn error_body(failure: &Failure) -> Value {
    let code = failure.status().as_u16();
    let status = match code {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        code if code >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    };
    json!({"error": {"code": code, "message": failure.message(), "status": status}})
}
