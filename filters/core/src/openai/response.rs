//! The OpenAI chat-completions responses the gateway produces from other providers' answers.

use crate::openai::request::ToolCall;
use crate::usage::OpenAiUsage;
use serde::Serialize;

/// A complete (non-streamed) answer: `object: chat.completion`.
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletion {
    /// Response id (`chatcmpl-...` or the provider's id).
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// One choice per candidate.
    pub choices: Vec<Choice>,
    /// Token counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OpenAiUsage>,
}

/// One candidate answer.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    /// Position among the candidates.
    pub index: u32,
    /// The assistant's message.
    pub message: ResponseMessage,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, `content_filter`).
    pub finish_reason: Option<&'static str>,
}

/// The assistant's message in a complete answer.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text, or null when the answer is only tool calls.
    pub content: Option<String>,
    /// The functions the assistant called.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// One streamed event: `object: chat.completion.chunk`.
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletionChunk<'a> {
    /// Same id on every chunk of a stream.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds, same on every chunk.
    pub created: u64,
    /// The model that answers.
    pub model: &'a str,
    /// The deltas; empty on the final usage chunk.
    pub choices: Vec<ChunkChoice<'a>>,
    /// Only on the final usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OpenAiUsage>,
}

/// The delta of one candidate in a chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice<'a> {
    /// Position among the candidates.
    pub index: u32,
    /// What was added.
    pub delta: Delta<'a>,
    /// Set on the candidate's last chunk.
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds to the assistant's message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta<'a> {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Added text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// Added tool-call pieces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta<'a>>,
}

/// A piece of a streamed tool call: the first piece names it, later ones add arguments.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallDelta<'a> {
    /// Which call of the message this piece belongs to.
    pub index: u32,
    /// On the first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// `function`, on the first piece.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Name (first piece) and argument text.
    pub function: FunctionDelta<'a>,
}

/// The function part of a tool-call piece.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionDelta<'a> {
    /// On the first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// A fragment of the JSON-encoded arguments.
    pub arguments: &'a str,
}

/// Appends one SSE event `data: <json>\n\n` to `out`.
pub fn write_sse_data<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    out.extend_from_slice(b"data: ");
    // Serializing these plain structs into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

/// The event that ends every OpenAI stream.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// Whether an SSE `data:` payload is an error event ([`write_sse_error`]'s, or a provider's
/// own): a stream that carries one before `[DONE]` did not complete, so it is neither cached
/// nor counted as a complete answer.
pub fn is_sse_error_event(data: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde::de::IgnoredAny>,
    }
    let data = data.trim_ascii();
    // Cheap first: ordinary chunks have no `"error"` key (a mention inside their text still
    // needs the parse below to be told apart).
    if !data.starts_with(b"{") || !data.windows(7).any(|w| w == b"\"error\"") {
        return false;
    }
    serde_json::from_slice::<Probe>(data).is_ok_and(|p| p.error.is_some())
}

/// Ends an OpenAI stream with an error event (OpenAI's SDKs raise it as an `APIError`) and
/// `data: [DONE]`, so a stream the gateway cannot finish is still well-formed.
pub fn write_sse_error(out: &mut Vec<u8>, error: &crate::errors::GatewayError) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&error.to_openai().to_bytes());
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(SSE_DONE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn error_events_are_told_from_chunks() {
        let mut out = Vec::new();
        write_sse_error(
            &mut out,
            &crate::errors::GatewayError::BadProviderAnswer("cut".into()),
        );
        let text = String::from_utf8(out).unwrap();
        let first = text
            .split("\n\n")
            .next()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap();
        assert!(is_sse_error_event(first.as_bytes()));
        assert!(text.ends_with("data: [DONE]\n\n"));
        for not_error in [
            &br#"{"id":"c","object":"chat.completion.chunk","choices":[]}"#[..],
            b"[DONE]",
            br#"{"error":null}"#,
            b"not json",
        ] {
            assert!(
                !is_sse_error_event(not_error),
                "{}",
                String::from_utf8_lossy(not_error)
            );
        }
    }
}
