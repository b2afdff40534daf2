//! The OpenAI chat-completions request, typed only where the gateway acts on it.
//!
//! Every struct keeps what it does not type in `rest`, so a request relayed to an
//! OpenAI-compatible provider loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatRequest {
    /// The model the client asked for.
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Whether the client wants server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Legacy output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Output cap (newer name; wins over `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which function must be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Everything else, relayed untouched to OpenAI-compatible providers.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ChatRequest {
    /// The output cap the client asked for, under either of its names.
    pub fn output_cap(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Whether the client asked for a stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences as a list, whichever form the client used.
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text or parts; absent or null on assistant messages that only call tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// Calls the assistant made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On `tool` messages: which call this is the result of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Everything else (`name`, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A message's content: plain text or a list of typed parts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text of the content, parts joined; images are skipped.
    pub fn joined_text(&self) -> String {
        match self {
            MessageContent::Text(t) => t.clone(),
            MessageContent::Parts(parts) => {
                let texts: Vec<&str> = parts.iter().filter_map(|p| p.text.as_deref()).collect();
                texts.join("\n")
            }
        }
    }
}

/// One part of a multi-part content.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContentPart {
    /// `text`, `image_url`, or another kind the gateway relays without acting on it.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The image of an `image_url` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    /// Everything else.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// An image reference: an `http(s)` URL or a `data:` URL with base64 content.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImageUrl {
    /// The URL.
    pub url: String,
    /// Everything else (`detail`).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A `data:<media type>;base64,<data>` URL split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage<'a> {
    /// E.g. `image/png`.
    pub media_type: &'a str,
    /// The base64 payload, as given.
    pub base64_data: &'a str,
}

impl ImageUrl {
    /// The inline image, when the URL is a base64 `data:` URL.
    pub fn inline(&self) -> Option<InlineImage<'_>> {
        let rest = self.url.strip_prefix("data:")?;
        let (meta, data) = rest.split_once(',')?;
        let media_type = meta.strip_suffix(";base64")?;
        Some(InlineImage {
            media_type,
            base64_data: data,
        })
    }
}

/// A function the model may call.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tool {
    /// Always `function` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function's declaration.
    pub function: FunctionDefinition,
}

/// A function's name, description and JSON-schema parameters.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDefinition {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `tool_choice`: a mode string or a named function.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// `{"type":"function","function":{"name":...}}`.
    Named(NamedToolChoice),
}

/// A tool choice that names one function.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function to call.
    pub function: FunctionName,
}

/// A function named by a tool choice.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionName {
    /// The function's name.
    pub name: String,
}

/// A call the assistant made (in requests: the history; in responses: the answer).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ToolCall {
    /// Id the tool result refers back to.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function called and its JSON-encoded arguments.
    pub function: FunctionCall,
}

/// A function called with JSON-encoded arguments.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON document encoded as a string.
    pub arguments: String,
}
