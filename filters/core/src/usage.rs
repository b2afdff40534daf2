//! Token usage: what every provider reports, in one shape, and its OpenAI rendering.
//!
//! The budget and metrics filters count these numbers, so every translated answer carries them
//! in the OpenAI `usage` object: cached prompt tokens in `prompt_tokens_details.cached_tokens`,
//! prompt-cache writes in `prompt_tokens_details.cache_creation_tokens` (not OpenAI's: it has no
//! cache writes; the name LiteLLM uses for Anthropic's, left out when 0), both also counted in
//! `prompt_tokens`.

use serde::{Deserialize, Serialize};

/// Token counts of one answer, whichever provider gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// All prompt tokens, cached ones included (OpenAI's `prompt_tokens`).
    pub input_tokens: u64,
    /// Generated tokens (OpenAI's `completion_tokens`).
    pub output_tokens: u64,
    /// The part of `input_tokens` served from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// The part of `input_tokens` written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`, billed above input); 0 for providers that do not report it.
    pub cache_write_tokens: u64,
}

impl TokenUsage {
    /// The OpenAI `usage` object for these counts.
    pub fn to_openai(self) -> OpenAiUsage {
        OpenAiUsage {
            prompt_tokens: self.input_tokens,
            completion_tokens: self.output_tokens,
            total_tokens: self.total(),
            prompt_tokens_details: Some(PromptTokensDetails {
                cached_tokens: self.cached_input_tokens,
                cache_creation_tokens: self.cache_write_tokens,
            }),
        }
    }

    /// Prompt plus generated tokens (OpenAI's `total_tokens`; what a token budget counts).
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// OpenAI's `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAiUsage {
    /// Prompt tokens, cached ones included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// Where the cached count lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// OpenAI's `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens read from the provider's cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache (an extension; see the module doc).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<OpenAiUsage> for TokenUsage {
    fn from(u: OpenAiUsage) -> Self {
        TokenUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cached_input_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
            cache_write_tokens: u
                .prompt_tokens_details
                .map_or(0, |d| d.cache_creation_tokens),
        }
    }
}

/// Just the `usage` of an OpenAI completion or chunk, whatever else it holds.
#[derive(Deserialize)]
struct UsageCarrier {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

/// The usage of an OpenAI `chat.completion` body or of one `chat.completion.chunk` event's data;
/// `None` when the document has none (every chunk but the last of a stream).
pub fn usage_of_openai_document(json: &[u8]) -> Option<TokenUsage> {
    serde_json::from_slice::<UsageCarrier>(json)
        .ok()?
        .usage
        .map(TokenUsage::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn openai_rendering_counts_cached_tokens_inside_prompt_tokens() {
        let usage = TokenUsage {
            input_tokens: 100,
            output_tokens: 7,
            cached_input_tokens: 60,
            cache_write_tokens: 0,
        };
        let json = serde_json::to_value(usage.to_openai()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,
                "prompt_tokens_details":{"cached_tokens":60}})
        );
    }

    #[test]
    fn usage_is_read_from_a_final_chunk_and_absent_from_others() {
        let last = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        assert_eq!(
            usage_of_openai_document(last),
            Some(TokenUsage {
                input_tokens: 5,
                output_tokens: 2,
                cached_input_tokens: 0,
                cache_write_tokens: 0
            })
        );
        assert_eq!(
            usage_of_openai_document(br#"{"id":"x","choices":[{"delta":{}}]}"#),
            None
        );
        assert_eq!(usage_of_openai_document(br#"{"usage":null}"#), None);
    }

    #[test]
    fn cache_writes_are_rendered_and_read_back_inside_prompt_tokens() {
        // Anthropic: 12 uncached + 20 read + 3 written prompt tokens.
        let usage = TokenUsage {
            input_tokens: 35,
            output_tokens: 4,
            cached_input_tokens: 20,
            cache_write_tokens: 3,
        };
        let json = serde_json::to_vec(&serde_json::json!({ "usage": usage.to_openai() })).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&json).unwrap()["usage"],
            serde_json::json!({"prompt_tokens":35,"completion_tokens":4,"total_tokens":39,
                "prompt_tokens_details":{"cached_tokens":20,"cache_creation_tokens":3}})
        );
        assert_eq!(usage_of_openai_document(&json), Some(usage));
    }
}
