//! Anthropic Messages response (JSON) -> OpenAI chat completion.

use crate::anthropic::finish_reason::finish_reason;
use crate::errors::GatewayError;
use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{ChatCompletion, Choice, ResponseMessage};
use crate::translate::ResponseContext;
use crate::usage::TokenUsage;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<ResponseBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Anthropic's `usage`; in streams, each field may come in a different event.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Folds these counts into `usage`. Anthropic's `input_tokens` excludes cache reads and
    /// writes; OpenAI's `prompt_tokens` includes both, so `input_tokens` here is their sum and
    /// the reads and writes are kept apart as parts of it (they are billed differently).
    pub(crate) fn apply_to(&self, usage: &mut TokenUsage, cache: &mut (u64, u64, u64)) {
        if let Some(n) = self.input_tokens {
            cache.0 = n;
        }
        if let Some(n) = self.cache_read_input_tokens {
            cache.1 = n;
        }
        if let Some(n) = self.cache_creation_input_tokens {
            cache.2 = n;
        }
        if let Some(n) = self.output_tokens {
            usage.output_tokens = n;
        }
        usage.input_tokens = cache.0 + cache.1 + cache.2;
        usage.cached_input_tokens = cache.1;
        usage.cache_write_tokens = cache.2;
    }
}

/// Translates a complete Anthropic answer.
pub fn to_chat_completion(
    body: &[u8],
    context: &ResponseContext,
) -> Result<ChatCompletion, GatewayError> {
    let response: MessagesResponse = serde_json::from_slice(body).map_err(|e| {
        GatewayError::BadProviderAnswer(format!("The Anthropic answer could not be read: {e}"))
    })?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => {
                tool_calls.push(ToolCall {
                    id,
                    kind: "function".into(),
                    function: FunctionCall {
                        name,
                        arguments: input.to_string(),
                    },
                });
            }
            ResponseBlock::Other => {}
        }
    }
    let mut usage = TokenUsage::default();
    if let Some(u) = &response.usage {
        u.apply_to(&mut usage, &mut (0, 0, 0));
    }
    Ok(ChatCompletion {
        id: response.id.unwrap_or_else(|| context.fallback_id.clone()),
        object: "chat.completion",
        created: context.created,
        model: response.model.unwrap_or_else(|| context.model.clone()),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant",
                content: if text.is_empty() && !tool_calls.is_empty() {
                    None
                } else {
                    Some(text)
                },
                tool_calls,
            },
            finish_reason: Some(
                response
                    .stop_reason
                    .as_deref()
                    .map_or("stop", finish_reason),
            ),
        }],
        usage: Some(usage.to_openai()),
    })
}
