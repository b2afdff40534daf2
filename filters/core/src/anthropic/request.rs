//! OpenAI chat request -> Anthropic Messages request.

use crate::errors::GatewayError;
use crate::openai::request::{ChatRequest, ContentPart, Message, MessageContent, ToolChoice};
use serde::Serialize;
use serde_json::{json, Value};

/// `max_tokens` is required by Anthropic; used when the client gave no output cap.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Anthropic's sampling temperature tops out at 1.0 where OpenAI's goes to 2.0.
const MAX_TEMPERATURE: f64 = 1.0;

/// A `POST /v1/messages` body.
#[derive(Debug, Serialize)]
pub struct MessagesRequest {
    model: String,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<AnthropicMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<AnthropicTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

#[derive(Debug, Serialize)]
struct AnthropicMessage {
    role: &'static str,
    content: Vec<Block>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Serialize)]
struct AnthropicTool {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: Value,
}

/// Builds the Anthropic request for `model` from a client's chat request.
///
/// System (and `developer`) messages are lifted into `system`; tool results become
/// `tool_result` blocks of a user turn; consecutive turns of one role are merged, as the
/// Messages API wants alternating roles.
pub fn to_messages_request(
    request: &ChatRequest,
    model: &str,
) -> Result<MessagesRequest, GatewayError> {
    let mut system_texts = Vec::new();
    let mut messages: Vec<AnthropicMessage> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message.role.as_str() {
            "system" | "developer" => {
                if let Some(content) = &message.content {
                    system_texts.push(content.joined_text());
                }
                continue;
            }
            "user" => ("user", user_blocks(message)),
            "assistant" => ("assistant", assistant_blocks(message)?),
            "tool" => ("user", vec![tool_result_block(message)?]),
            other => {
                return Err(GatewayError::invalid(
                    format!("Invalid value for 'messages[].role': '{other}' is not supported."),
                    Some("messages"),
                ))
            }
        };
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => messages.push(AnthropicMessage {
                role,
                content: blocks,
            }),
        }
    }
    Ok(MessagesRequest {
        model: model.to_string(),
        max_tokens: request.output_cap().unwrap_or(DEFAULT_MAX_TOKENS),
        system: if system_texts.is_empty() {
            None
        } else {
            Some(system_texts.join("\n\n"))
        },
        messages,
        stop_sequences: request.stop.as_ref().map(|s| s.sequences()),
        temperature: request.temperature.map(|t| t.clamp(0.0, MAX_TEMPERATURE)),
        top_p: request.top_p,
        stream: request.stream.filter(|s| *s),
        tools: request
            .tools
            .iter()
            .flatten()
            .map(|tool| AnthropicTool {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                input_schema: tool
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object"})),
            })
            .collect(),
        tool_choice: request.tool_choice.as_ref().and_then(tool_choice),
    })
}

fn user_blocks(message: &Message) -> Vec<Block> {
    match &message.content {
        None => Vec::new(),
        Some(MessageContent::Text(text)) => vec![Block::Text { text: text.clone() }],
        Some(MessageContent::Parts(parts)) => parts.iter().filter_map(part_block).collect(),
    }
}

fn part_block(part: &ContentPart) -> Option<Block> {
    match part.kind.as_str() {
        "text" => part
            .text
            .as_ref()
            .map(|text| Block::Text { text: text.clone() }),
        "image_url" => {
            let image = part.image_url.as_ref()?;
            let source = match image.inline() {
                Some(inline) => ImageSource::Base64 {
                    media_type: inline.media_type.to_string(),
                    data: inline.base64_data.to_string(),
                },
                None => ImageSource::Url {
                    url: image.url.clone(),
                },
            };
            Some(Block::Image { source })
        }
        _ => None,
    }
}

fn assistant_blocks(message: &Message) -> Result<Vec<Block>, GatewayError> {
    let mut blocks = Vec::new();
    if let Some(content) = &message.content {
        let text = content.joined_text();
        // The Messages API rejects empty text blocks.
        if !text.is_empty() {
            blocks.push(Block::Text { text });
        }
    }
    for call in message.tool_calls.iter().flatten() {
        let input = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|_| {
                GatewayError::invalid(
                    "Invalid 'messages[].tool_calls[].function.arguments': expected a JSON document.",
                    Some("messages"),
                )
            })?
        };
        blocks.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.function.name.clone(),
            input,
        });
    }
    Ok(blocks)
}

fn tool_result_block(message: &Message) -> Result<Block, GatewayError> {
    let tool_use_id = message.tool_call_id.clone().ok_or_else(|| {
        GatewayError::invalid(
            "Missing 'tool_call_id' on a message with role 'tool'.",
            Some("messages"),
        )
    })?;
    let content = message
        .content
        .as_ref()
        .map(MessageContent::joined_text)
        .unwrap_or_default();
    Ok(Block::ToolResult {
        tool_use_id,
        content,
    })
}

fn tool_choice(choice: &ToolChoice) -> Option<Value> {
    match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            _ => None,
        },
        ToolChoice::Named(named) => Some(json!({"type": "tool", "name": named.function.name})),
    }
}
