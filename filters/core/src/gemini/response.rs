//! Gemini generateContent response (JSON) -> OpenAI chat completion.

use crate::errors::GatewayError;
use crate::gemini::finish_reason::finish_reason;
use crate::openai::request::{FunctionCall, ToolCall};
use crate::openai::response::{ChatCompletion, Choice, ResponseMessage};
use crate::translate::ResponseContext;
use crate::usage::TokenUsage;
use serde::Deserialize;
use serde_json::Value;

/// One `GenerateContentResponse`: the whole answer, or one event of a stream.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub response_id: Option<String>,
    /// Set when Gemini refused the prompt itself; there are no candidates then.
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub block_reason: Option<String>,
}

impl GenerateContentResponse {
    /// Whether Gemini blocked the prompt, answering no candidate at all.
    pub(crate) fn prompt_blocked(&self) -> bool {
        self.candidates.is_empty()
            && self
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub content: Option<CandidateContent>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub index: u32,
}

#[derive(Deserialize)]
pub(crate) struct CandidateContent {
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub function_call: Option<FunctionCallPart>,
    /// Thought summaries are not part of the answer.
    #[serde(default)]
    pub thought: bool,
}

#[derive(Deserialize)]
pub(crate) struct FunctionCallPart {
    pub name: String,
    #[serde(default)]
    pub args: Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Thinking tokens are billed as output.
    #[serde(default)]
    pub thoughts_token_count: u64,
}

impl From<UsageMetadata> for TokenUsage {
    fn from(u: UsageMetadata) -> Self {
        TokenUsage {
            input_tokens: u.prompt_token_count,
            output_tokens: u.candidates_token_count + u.thoughts_token_count,
            cached_input_tokens: u.cached_content_token_count,
            // Gemini bills its context caches by storage time, not per write.
            cache_write_tokens: 0,
        }
    }
}

/// Translates a complete Gemini answer.
pub fn to_chat_completion(
    body: &[u8],
    context: &ResponseContext,
) -> Result<ChatCompletion, GatewayError> {
    let response: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
        GatewayError::BadProviderAnswer(format!("The Gemini answer could not be read: {e}"))
    })?;
    let blocked = response.prompt_blocked().then(|| Choice {
        index: 0,
        message: ResponseMessage {
            role: "assistant",
            content: Some(String::new()),
            tool_calls: Vec::new(),
        },
        finish_reason: Some("content_filter"),
    });
    let choices = response
        .candidates
        .into_iter()
        .map(|candidate| {
            let mut text = String::new();
            let mut tool_calls = Vec::new();
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if part.thought {
                    continue;
                }
                if let Some(t) = part.text {
                    text.push_str(&t);
                }
                if let Some(call) = part.function_call {
                    tool_calls.push(ToolCall {
                        id: format!("call_{}", tool_calls.len()),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: call.name,
                            arguments: call.args.to_string(),
                        },
                    });
                }
            }
            let reason = finish_reason(
                candidate.finish_reason.as_deref().unwrap_or("STOP"),
                !tool_calls.is_empty(),
            );
            Choice {
                index: candidate.index,
                message: ResponseMessage {
                    role: "assistant",
                    content: if text.is_empty() && !tool_calls.is_empty() {
                        None
                    } else {
                        Some(text)
                    },
                    tool_calls,
                },
                finish_reason: Some(reason),
            }
        })
        .chain(blocked)
        .collect();
    Ok(ChatCompletion {
        id: response
            .response_id
            .unwrap_or_else(|| context.fallback_id.clone()),
        object: "chat.completion",
        created: context.created,
        model: response
            .model_version
            .unwrap_or_else(|| context.model.clone()),
        choices,
        usage: response
            .usage_metadata
            .map(|u| TokenUsage::from(u).to_openai()),
    })
}
