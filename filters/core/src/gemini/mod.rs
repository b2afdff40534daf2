//! Google Gemini generateContent: the request built from an OpenAI chat request, and the
//! answers (JSON and SSE with `alt=sse`) translated back to OpenAI chat completions.

pub mod finish_reason;
pub mod request;
pub mod response;
pub mod stream;

pub use request::to_generate_content_request;
pub use response::to_chat_completion;
pub use stream::GeminiStreamTranslator;
