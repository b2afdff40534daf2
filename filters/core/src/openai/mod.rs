//! The OpenAI chat-completions wire format: what clients speak to the gateway, and what every
//! provider's answer is translated back into.

pub mod request;
pub mod response;

pub use request::{
    ChatRequest, ContentPart, Message, MessageContent, Stop, Tool, ToolCall, ToolChoice,
};
pub use response::{
    ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta, ResponseMessage, ToolCallDelta,
};
