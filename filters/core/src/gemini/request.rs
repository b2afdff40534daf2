//! OpenAI chat request -> Gemini generateContent request.

use crate::errors::GatewayError;
use crate::openai::request::{ChatRequest, ContentPart, Message, MessageContent, ToolChoice};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A `generateContent` / `streamGenerateContent` body (the model is in the path).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<Value>,
}

#[derive(Debug, Serialize)]
struct Content {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<Value>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_none()
            && self.candidate_count.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
    }
}

/// Builds the Gemini request from a client's chat request.
///
/// Roles: `assistant` -> `model`, `tool` -> a `functionResponse` part of a `user` turn (named
/// after the call it answers), system messages -> `systemInstruction`. Consecutive turns of
/// one role are merged.
pub fn to_generate_content_request(
    request: &ChatRequest,
) -> Result<GenerateContentRequest, GatewayError> {
    let mut system_parts = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    // Tool call id -> function name, built once: a tool message is named after the call it
    // answers, and looking each one up in the whole history was quadratic in tool messages.
    let mut call_names: BTreeMap<&str, &str> = BTreeMap::new();
    for call in request
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
    {
        // The first call with an id names it, as a scan from the start would.
        call_names
            .entry(call.id.as_str())
            .or_insert(call.function.name.as_str());
    }
    for message in &request.messages {
        let (role, parts) = match message.role.as_str() {
            "system" | "developer" => {
                if let Some(content) = &message.content {
                    system_parts.push(json!({ "text": content.joined_text() }));
                }
                continue;
            }
            "user" => ("user", user_parts(message)),
            "assistant" => ("model", model_parts(message)?),
            "tool" => ("user", vec![function_response_part(message, &call_names)?]),
            other => {
                return Err(GatewayError::invalid(
                    format!("Invalid value for 'messages[].role': '{other}' is not supported."),
                    Some("messages"),
                ))
            }
        };
        match contents.last_mut() {
            Some(last) if last.role == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role),
                parts,
            }),
        }
    }
    let generation_config = GenerationConfig {
        temperature: request.temperature,
        top_p: request.top_p,
        max_output_tokens: request.output_cap(),
        stop_sequences: request.stop.as_ref().map(|s| s.sequences()),
        candidate_count: request.rest.get("n").cloned(),
        seed: request.rest.get("seed").cloned(),
        presence_penalty: request.rest.get("presence_penalty").cloned(),
        frequency_penalty: request.rest.get("frequency_penalty").cloned(),
        response_mime_type: request
            .rest
            .get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
            .filter(|t| *t == "json_object" || *t == "json_schema")
            .map(|_| "application/json"),
    };
    let declarations: Vec<Value> = request
        .tools
        .iter()
        .flatten()
        .map(|tool| {
            let mut declaration = Map::new();
            declaration.insert("name".into(), Value::String(tool.function.name.clone()));
            if let Some(description) = &tool.function.description {
                declaration.insert("description".into(), Value::String(description.clone()));
            }
            if let Some(parameters) = &tool.function.parameters {
                declaration.insert("parameters".into(), gemini_schema(parameters));
            }
            Value::Object(declaration)
        })
        .collect();
    Ok(GenerateContentRequest {
        contents,
        system_instruction: if system_parts.is_empty() {
            None
        } else {
            Some(Content {
                role: None,
                parts: system_parts,
            })
        },
        generation_config: if generation_config.is_empty() {
            None
        } else {
            Some(generation_config)
        },
        tools: if declarations.is_empty() {
            Vec::new()
        } else {
            vec![json!({ "functionDeclarations": declarations })]
        },
        tool_config: request.tool_choice.as_ref().and_then(tool_config),
    })
}

fn user_parts(message: &Message) -> Vec<Value> {
    match &message.content {
        None => Vec::new(),
        Some(MessageContent::Text(text)) => vec![json!({ "text": text })],
        Some(MessageContent::Parts(parts)) => parts.iter().filter_map(part).collect(),
    }
}

fn part(part: &ContentPart) -> Option<Value> {
    match part.kind.as_str() {
        "text" => part.text.as_ref().map(|text| json!({ "text": text })),
        "image_url" => {
            let image = part.image_url.as_ref()?;
            Some(match image.inline() {
                Some(inline) => {
                    json!({ "inlineData": { "mimeType": inline.media_type, "data": inline.base64_data } })
                }
                None => json!({ "fileData": { "fileUri": image.url } }),
            })
        }
        _ => None,
    }
}

fn model_parts(message: &Message) -> Result<Vec<Value>, GatewayError> {
    let mut parts = Vec::new();
    if let Some(content) = &message.content {
        let text = content.joined_text();
        if !text.is_empty() {
            parts.push(json!({ "text": text }));
        }
    }
    for call in message.tool_calls.iter().flatten() {
        let args: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|_| {
                GatewayError::invalid(
                    "Invalid 'messages[].tool_calls[].function.arguments': expected a JSON document.",
                    Some("messages"),
                )
            })?
        };
        parts.push(json!({ "functionCall": { "name": call.function.name, "args": args } }));
    }
    Ok(parts)
}

/// A tool result as Gemini wants it: named after the function whose call it answers, with an
/// object as response (a JSON object result is used as is, anything else is wrapped).
fn function_response_part(
    message: &Message,
    call_names: &BTreeMap<&str, &str>,
) -> Result<Value, GatewayError> {
    let call_id = message.tool_call_id.as_deref().ok_or_else(|| {
        GatewayError::invalid(
            "Missing 'tool_call_id' on a message with role 'tool'.",
            Some("messages"),
        )
    })?;
    let name = call_names
        .get(call_id)
        .map(|name| (*name).to_string())
        .ok_or_else(|| {
            GatewayError::invalid(
                format!("The tool message answers the unknown call '{call_id}'."),
                Some("messages"),
            )
        })?;
    let text = message
        .content
        .as_ref()
        .map(MessageContent::joined_text)
        .unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({ "content": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

fn tool_config(choice: &ToolChoice) -> Option<Value> {
    let config = match choice {
        ToolChoice::Mode(mode) => match mode.as_str() {
            "auto" => json!({ "mode": "AUTO" }),
            "required" => json!({ "mode": "ANY" }),
            "none" => json!({ "mode": "NONE" }),
            _ => return None,
        },
        ToolChoice::Named(named) => {
            json!({ "mode": "ANY", "allowedFunctionNames": [named.function.name] })
        }
    };
    Some(json!({ "functionCallingConfig": config }))
}

/// Gemini's schema dialect (an OpenAPI subset) rejects some JSON-schema keywords clients
/// commonly send; they are dropped, recursively.
fn gemini_schema(schema: &Value) -> Value {
    const UNSUPPORTED: &[&str] = &["$schema", "additionalProperties", "strict"];
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !UNSUPPORTED.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), gemini_schema(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}
