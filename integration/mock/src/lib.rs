//! Mock LLM providers for tollgate's tests and local stack.
//!
//! One mock speaks one provider's wire format (OpenAI, Anthropic, Gemini or Ollama's
//! OpenAI-compatible API) on one loopback port, over HTTP/1.1 and HTTP/2 with prior knowledge
//! (h2c) on the same port. Answers are deterministic so tests can compute what to expect, and
//! faults (error statuses, latency, slow streams, connection resets) can be injected per request
//! or per instance.
//!
//! # Use from a Rust test
//!
//! ```no_run
//! use tollgate_mock::{spawn, Kind, MockConfig};
//!
//! let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
//! config.api_key = Some("sk-test".into());
//! let mut mock = spawn(config).unwrap();
//! // ... send requests to http://{mock.addr()} ...
//! assert_eq!(mock.request_count(), 0);
//! mock.stop(); // the port now refuses connections; `spawn` on it again brings it back
//! ```
//!
//! The binary `tollgate-mock` serves several mocks from one process (see `tollgate-mock --help`).
//!
//! # Endpoints
//!
//! | kind      | method and path                                                        |
//! |-----------|------------------------------------------------------------------------|
//! | openai    | `POST /v1/chat/completions`                                            |
//! | anthropic | `POST /v1/messages`                                                    |
//! | gemini    | `POST /v1beta/models/{model}:generateContent`, `POST /v1beta/models/{model}:streamGenerateContent[?alt=sse]` (also under `/v1/`) |
//! | ollama    | `POST /v1/chat/completions`, `GET /v1/models`, `GET /api/tags`, `GET /` |
//! | every mock| `GET /__mock/health`, `GET /__mock/received`, `GET`/`POST /__mock/faults`, `POST /__mock/reset` |
//!
//! Requests under `/__mock/` are never counted, recorded or faulted, so health checks do not
//! disturb what a test observes. Every other response carries `x-mock-name` (the mock's name)
//! and `x-mock-seq` (the request's 1-based number on this mock), so a test behind a proxy can
//! tell which mock and which attempt answered. Response ids embed the same number
//! (`chatcmpl-mock-{n}`, `msg_mock_{n}`, `mock-{n}`).
//!
//! # Authentication
//!
//! With `api_key: Some(key)` a mock requires: OpenAI `Authorization: Bearer <key>`; Anthropic
//! `x-api-key: <key>`; Gemini `x-goog-api-key: <key>` or the query parameter `key=<key>`.
//! Otherwise it answers 401 in the provider's error format. With `api_key: None` no key is
//! checked. Ollama never checks a key, like the real server. Anthropic also requires an
//! `anthropic-version` header (400 without it), whatever the key setting.
//!
//! # Deterministic answers and token counts
//!
//! A *word* is a whitespace-separated piece of text (`str::split_whitespace`). The text of a
//! message is a string `content`, or the texts of its `{"type":"text"}` parts (OpenAI,
//! Anthropic) or of its `parts[].text` (Gemini) joined by a space. Other parts (images, tool
//! calls, tool results) contribute no words.
//!
//! - **prompt tokens** = words in all message texts + 1 per message. A system prompt counts as one
//!   message: Anthropic's top-level `system`, Gemini's `systemInstruction`, or an OpenAI message
//!   with role `system`/`developer`.
//! - **answer** = `Hello from {name} ({model}). Prompt: {messages} messages, {words} words.`
//!   where `name` is the mock's [`MockConfig::name`], `model` the requested model, `messages` the
//!   number of messages (system included) and `words` the prompt's word count. See [`answer_text`].
//! - **completion tokens** = words in the answer (9 when name and model contain no spaces).
//!   If the request caps output tokens (`max_tokens`/`max_completion_tokens`, Anthropic
//!   `max_tokens`, Gemini `generationConfig.maxOutputTokens`) below that, the answer is cut to
//!   that many words and ends with `length` / `max_tokens` / `MAX_TOKENS`.
//! - **total tokens** = prompt + completion.
//!
//! **Tool calls**: when the request declares tools and the *last* message is from the user and
//! contains the word `weather` (any case), the answer is a call of the first declared tool with
//! arguments [`TOOL_CALL_ARGUMENTS`] and [`TOOL_CALL_COMPLETION_TOKENS`] completion tokens
//! (OpenAI `tool_calls` / finish `tool_calls`; Anthropic `tool_use` block / stop `tool_use`;
//! Gemini `functionCall` part / finish `STOP`). A follow-up turn that ends with the tool's result
//! gets an ordinary text answer.
//!
//! # Streams
//!
//! Streams are sent one event per body frame, flushed as written. A *chunk* below is one SSE
//! event (`data:` line, or `event:`+`data:` pair for Anthropic).
//! - OpenAI/Ollama: a first chunk with `delta.role` and empty content, one chunk per answer word
//!   (every word after the first with a leading space, so the deltas concatenate to the answer),
//!   a chunk with the `finish_reason`, then — only with `stream_options.include_usage` — a chunk
//!   with `choices: []` and `usage` (other chunks then carry `"usage": null`), then `data: [DONE]`.
//! - Anthropic: `message_start` (usage with `input_tokens` and `output_tokens: 1`),
//!   `content_block_start`, `ping`, one `content_block_delta` (`text_delta`) per word,
//!   `content_block_stop`, `message_delta` (stop reason and the final, cumulative
//!   `output_tokens`), `message_stop`.
//! - Gemini (`alt=sse`): one `data: {GenerateContentResponse}` per word; the last one has
//!   `finishReason` and `usageMetadata {promptTokenCount, candidatesTokenCount, totalTokenCount}`.
//!   Without `alt=sse` the same objects are sent as one JSON array.
//!
//! # Fault injection
//!
//! Per request, header `x-mock-fault` with `;`-separated `key=value` pairs:
//! `status=<400..599>`, `retry-after=<seconds>`, `latency-ms=<ms>`, `chunk-delay-ms=<ms>`,
//! `reset-after-chunks=<n>`, `reset-before-headers=<true|false>`. Per instance, [`InstanceFaults`] (the same knobs plus `fail_first`),
//! set at spawn, with [`MockHandle::set_faults`], `POST /__mock/faults` or the binary's flags. A
//! request's header overrides the instance's knobs one by one. See [`InstanceFaults`] for each
//! knob's exact meaning. Faults are applied before authentication and validation; error statuses
//! use the provider's own error format, and 429 always carries `Retry-After`.

mod body;
mod config;
mod control;
mod conversation;
mod faults;
mod providers;
mod received;
mod server;

pub use config::{Kind, MockConfig, MockError};
pub use conversation::{answer_text, TOOL_CALL_ARGUMENTS, TOOL_CALL_COMPLETION_TOKENS};
pub use faults::InstanceFaults;
pub use received::ReceivedRequest;
pub use server::{spawn, MockHandle};

/// Models listed by the Ollama mock's `GET /api/tags` and `GET /v1/models`.
pub const LISTED_MODELS: &[&str] = &["llama3.2:latest", "qwen2.5:0.5b"];
