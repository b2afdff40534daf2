//! Anthropic Messages SSE -> OpenAI chat-completion chunks, chunk by chunk.
//!
//! A state machine over Anthropic's events: `message_start` opens the OpenAI stream with the
//! assistant role, content deltas become content or tool-call deltas, `message_delta` carries
//! the finish reason, and `message_stop` ends with the usage chunk and `data: [DONE]`.

use crate::anthropic::finish_reason::finish_reason;
use crate::anthropic::response::AnthropicUsage;
use crate::config::ProviderKind;
use crate::errors::translate_error_body;
use crate::openai::response::{
    write_sse_data, write_sse_error, ChatCompletionChunk, ChunkChoice, Delta, FunctionDelta,
    ToolCallDelta, SSE_DONE,
};
use crate::sse::{SseEvent, SseParser};
use crate::translate::{ResponseContext, StreamFault, MAX_STREAM_TOOL_CALLS};
use crate::usage::TokenUsage;
use serde::Deserialize;
use std::borrow::Cow;

/// Translates an Anthropic event stream into an OpenAI one as its bytes arrive.
#[derive(Debug)]
pub struct AnthropicStreamTranslator {
    parser: SseParser,
    state: StreamState,
}

#[derive(Debug)]
struct StreamState {
    id: String,
    model: String,
    created: u64,
    /// Anthropic content-block index -> OpenAI tool-call index, for tool_use blocks.
    tool_blocks: Vec<(u32, u32)>,
    next_tool_index: u32,
    usage: TokenUsage,
    /// Anthropic's input, cache-read and cache-write counts, which arrive separately.
    input_parts: (u64, u64, u64),
    finish_reason: Option<&'static str>,
    done: bool,
    /// Why the stream was ended with an error event, if it was.
    fault: Option<StreamFault>,
    /// The upstream ended: an event that does not parse now is a cut one.
    finishing: bool,
}

/// One Anthropic event, read as a flat struct rather than a `type`-tagged enum: serde buffers
/// a tagged enum's whole map before choosing the variant, which doubled the per-chunk cost.
/// Strings borrow from the event when they hold no escapes.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: u32,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default, borrow)]
    content_block: Option<RawBlock<'a>>,
    #[serde(default, borrow)]
    delta: Option<RawDelta<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

/// `content_block` of `content_block_start`: `text` or `tool_use` (others are skipped).
#[derive(Deserialize)]
struct RawBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

/// `delta` of `content_block_delta` (typed) or of `message_delta` (untyped, `stop_reason`).
#[derive(Deserialize)]
struct RawDelta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

impl AnthropicStreamTranslator {
    /// A translator for one response.
    pub fn new(context: &ResponseContext) -> Self {
        Self {
            parser: SseParser::new(),
            state: StreamState {
                id: context.fallback_id.clone(),
                model: context.model.clone(),
                created: context.created,
                tool_blocks: Vec::new(),
                next_tool_index: 0,
                usage: TokenUsage::default(),
                input_parts: (0, 0, 0),
                finish_reason: None,
                done: false,
                fault: None,
                finishing: false,
            },
        }
    }

    /// Translates a chunk of upstream bytes, appending OpenAI SSE bytes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let state = &mut self.state;
        self.parser.push(chunk, |event| state.on_event(event, out));
        if self.parser.overflowed() {
            state.fail(out, StreamFault::EventTooLarge);
        }
    }

    /// Ends the stream. If the upstream closed after its finish reason without `message_stop`,
    /// the usage chunk and `[DONE]` are still sent; a stream cut earlier ends with an error
    /// event and `[DONE]`, so the client can tell it was cut.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        state.finishing = true;
        self.parser.finish(|event| state.on_event(event, out));
        if !state.done && state.finish_reason.is_some() {
            state.end(out);
        }
        state.fail(out, StreamFault::Cut);
    }

    /// Why the stream ended with an error event, if it did.
    pub fn fault(&self) -> Option<StreamFault> {
        self.state.fault
    }

    /// Token usage seen so far (complete once the stream ended).
    pub fn usage(&self) -> TokenUsage {
        self.state.usage
    }
}

impl StreamState {
    fn on_event(&mut self, event: SseEvent<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Ok(parsed) = serde_json::from_str::<RawEvent<'_>>(event.data) else {
            let fault = if self.finishing {
                StreamFault::Cut
            } else {
                StreamFault::Unreadable
            };
            return self.fail(out, fault);
        };
        match parsed.kind.as_ref() {
            "message_start" => {
                if let Some(message) = parsed.message {
                    if let Some(id) = message.id {
                        self.id = id;
                    }
                    if let Some(model) = message.model {
                        self.model = model;
                    }
                    if let Some(usage) = &message.usage {
                        usage.apply_to(&mut self.usage, &mut self.input_parts);
                    }
                }
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                };
                self.write_delta(out, delta, None);
            }
            "content_block_start" => {
                let Some(block) = parsed.content_block else {
                    return;
                };
                match block.kind.as_ref() {
                    "text" => {
                        if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            self.write_content(out, text);
                        }
                    }
                    "tool_use" => {
                        if self.tool_blocks.len() >= MAX_STREAM_TOOL_CALLS {
                            return self.fail(out, StreamFault::TooManyToolCalls);
                        }
                        let tool_index = self.next_tool_index;
                        self.next_tool_index += 1;
                        self.tool_blocks.push((parsed.index, tool_index));
                        let call = ToolCallDelta {
                            index: tool_index,
                            id: Some(block.id.as_deref().unwrap_or_default()),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(block.name.as_deref().unwrap_or_default()),
                                arguments: "",
                            },
                        };
                        self.write_tool_call(out, call);
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = parsed.delta else {
                    return;
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        self.write_content(out, delta.text.as_deref().unwrap_or_default())
                    }
                    Some("input_json_delta") => {
                        let Some(&(_, tool_index)) = self
                            .tool_blocks
                            .iter()
                            .find(|(block, _)| *block == parsed.index)
                        else {
                            return;
                        };
                        let call = ToolCallDelta {
                            index: tool_index,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: delta.partial_json.as_deref().unwrap_or_default(),
                            },
                        };
                        self.write_tool_call(out, call);
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = &parsed.usage {
                    usage.apply_to(&mut self.usage, &mut self.input_parts);
                }
                let stop_reason = parsed.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                let reason = stop_reason.map_or("stop", finish_reason);
                self.finish_reason = Some(reason);
                self.write_delta(out, Delta::default(), Some(reason));
            }
            "message_stop" => self.end(out),
            "error" => {
                let body =
                    translate_error_body(ProviderKind::Anthropic, 500, event.data.as_bytes());
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\n\n");
                out.extend_from_slice(SSE_DONE);
                self.done = true;
            }
            _ => {} // ping, content_block_stop, and events added later
        }
    }

    /// Ends the client's stream with an error event and `[DONE]` (once; a finished stream
    /// is left as it is).
    fn fail(&mut self, out: &mut Vec<u8>, fault: StreamFault) {
        if self.done {
            return;
        }
        write_sse_error(out, &fault.error());
        self.fault = Some(fault);
        self.done = true;
    }

    fn write_content(&self, out: &mut Vec<u8>, text: &str) {
        let delta = Delta {
            content: Some(text),
            ..Delta::default()
        };
        self.write_delta(out, delta, None);
    }

    fn write_tool_call(&self, out: &mut Vec<u8>, call: ToolCallDelta<'_>) {
        let delta = Delta {
            tool_calls: vec![call],
            ..Delta::default()
        };
        self.write_delta(out, delta, None);
    }

    fn write_delta(
        &self,
        out: &mut Vec<u8>,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason,
            }],
            usage: None,
        };
        write_sse_data(out, &chunk);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(self.usage.to_openai()),
        };
        write_sse_data(out, &chunk);
        out.extend_from_slice(SSE_DONE);
        self.done = true;
    }
}
