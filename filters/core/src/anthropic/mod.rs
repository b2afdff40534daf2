//! Anthropic Messages API: the request built from an OpenAI chat request, and the answers
//! (JSON and SSE) translated back to OpenAI chat completions.

pub mod finish_reason;
pub mod request;
pub mod response;
pub mod stream;

pub use request::{to_messages_request, DEFAULT_MAX_TOKENS};
pub use response::to_chat_completion;
pub use stream::AnthropicStreamTranslator;
