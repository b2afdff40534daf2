//! Gemini `streamGenerateContent?alt=sse` -> OpenAI chat-completion chunks, chunk by chunk.
//!
//! Every Gemini event is a whole `GenerateContentResponse` holding the next piece of text or
//! whole function calls, and cumulative usage. Gemini sends no end event: the usage chunk and
//! `data: [DONE]` are written when the upstream stream ends, if a finish reason was seen.

use crate::gemini::finish_reason::finish_reason;
use crate::gemini::response::GenerateContentResponse;
use crate::openai::response::{
    write_sse_data, write_sse_error, ChatCompletionChunk, ChunkChoice, Delta, FunctionDelta,
    ToolCallDelta, SSE_DONE,
};
use crate::sse::{SseEvent, SseParser};
use crate::translate::{ResponseContext, StreamFault, MAX_STREAM_TOOL_CALLS};
use crate::usage::TokenUsage;

/// Translates a Gemini event stream into an OpenAI one as its bytes arrive.
#[derive(Debug)]
pub struct GeminiStreamTranslator {
    parser: SseParser,
    state: StreamState,
}

#[derive(Debug)]
struct StreamState {
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// Tool calls sent so far, per candidate index, to number the next one.
    tool_calls_sent: Vec<(u32, u32)>,
    usage: TokenUsage,
    finished: bool,
    done: bool,
    /// Tool calls sent so far, all candidates together (capped).
    tool_calls_total: usize,
    /// Why the stream was ended with an error event, if it was.
    fault: Option<StreamFault>,
    /// The upstream ended: an event that does not parse now is a cut one.
    finishing: bool,
}

impl GeminiStreamTranslator {
    /// A translator for one response.
    pub fn new(context: &ResponseContext) -> Self {
        Self {
            parser: SseParser::new(),
            state: StreamState {
                id: context.fallback_id.clone(),
                model: context.model.clone(),
                created: context.created,
                started: false,
                tool_calls_sent: Vec::new(),
                usage: TokenUsage::default(),
                finished: false,
                done: false,
                tool_calls_total: 0,
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

    /// Why the stream ended with an error event, if it did.
    pub fn fault(&self) -> Option<StreamFault> {
        self.state.fault
    }

    /// Ends the stream: usage chunk and `[DONE]` if the answer finished; an error event and
    /// `[DONE]` if it was cut.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        state.finishing = true;
        self.parser.finish(|event| state.on_event(event, out));
        if state.finished && !state.done {
            let chunk = ChatCompletionChunk {
                id: &state.id,
                object: "chat.completion.chunk",
                created: state.created,
                model: &state.model,
                choices: Vec::new(),
                usage: Some(state.usage.to_openai()),
            };
            write_sse_data(out, &chunk);
            out.extend_from_slice(SSE_DONE);
            state.done = true;
        }
        state.fail(out, StreamFault::Cut);
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
        let Ok(response) = serde_json::from_str::<GenerateContentResponse>(event.data) else {
            let fault = if self.finishing {
                StreamFault::Cut
            } else {
                StreamFault::Unreadable
            };
            return self.fail(out, fault);
        };
        if !self.started {
            self.started = true;
            if let Some(id) = &response.response_id {
                self.id.clone_from(id);
            }
            if let Some(model) = &response.model_version {
                self.model.clone_from(model);
            }
            let delta = Delta {
                role: Some("assistant"),
                content: Some(""),
                ..Delta::default()
            };
            self.write(out, 0, delta, None);
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = usage.into();
        }
        if response.prompt_blocked() {
            self.finished = true;
            self.write(out, 0, Delta::default(), Some("content_filter"));
        }
        for candidate in response.candidates {
            let index = candidate.index;
            let mut called_functions = false;
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if part.thought {
                    continue;
                }
                if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                    self.write(
                        out,
                        index,
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                        None,
                    );
                }
                if let Some(call) = part.function_call {
                    if self.tool_calls_total >= MAX_STREAM_TOOL_CALLS
                        || (self.tool_calls_sent.len() >= MAX_STREAM_TOOL_CALLS
                            && !self.tool_calls_sent.iter().any(|(c, _)| *c == index))
                    {
                        return self.fail(out, StreamFault::TooManyToolCalls);
                    }
                    self.tool_calls_total += 1;
                    called_functions = true;
                    let tool_index = self.next_tool_index(index);
                    let id = format!("call_{tool_index}");
                    let arguments = call.args.to_string();
                    let delta = ToolCallDelta {
                        index: tool_index,
                        id: Some(&id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(&call.name),
                            arguments: &arguments,
                        },
                    };
                    self.write(
                        out,
                        index,
                        Delta {
                            tool_calls: vec![delta],
                            ..Delta::default()
                        },
                        None,
                    );
                }
            }
            if let Some(reason) = candidate.finish_reason {
                let called =
                    called_functions || self.tool_calls_sent.iter().any(|(c, _)| *c == index);
                self.finished = true;
                self.write(
                    out,
                    index,
                    Delta::default(),
                    Some(finish_reason(&reason, called)),
                );
            }
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

    fn next_tool_index(&mut self, candidate: u32) -> u32 {
        match self
            .tool_calls_sent
            .iter_mut()
            .find(|(c, _)| *c == candidate)
        {
            Some((_, sent)) => {
                *sent += 1;
                *sent - 1
            }
            None => {
                self.tool_calls_sent.push((candidate, 1));
                0
            }
        }
    }

    fn write(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        delta: Delta<'_>,
        finish_reason: Option<&'static str>,
    ) {
        let chunk = ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index,
                delta,
                finish_reason,
            }],
            usage: None,
        };
        write_sse_data(out, &chunk);
    }
}
