//! The pipeline's one pass over an answer the client gets (always in the OpenAI format, the
//! adapter translated it): usage, serving model and whether it ended normally, for the budget
//! (reconcile), metrics (count) and cache (store only complete answers) stages.
//!
//! JSON answers are read once, whole. Streams are scanned event by event as they pass; an
//! event's JSON is parsed only when it can hold what we look for (the first event's `model`,
//! an event with a `usage` object), so ordinary content chunks cost a byte scan.

use crate::sse::SseParser;
use crate::usage::{OpenAiUsage, TokenUsage};
use serde::Deserialize;

/// What kind of body the answer has, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`: read whole at the end.
    Json,
    /// `text/event-stream`: scanned chunk by chunk.
    EventStream,
    /// Anything else: not looked at.
    Other,
}

impl BodyKind {
    /// The kind for a `content-type` value.
    pub fn of_content_type(content_type: &[u8]) -> Self {
        let trimmed = content_type.trim_ascii_start();
        if trimmed.starts_with(b"application/json") {
            BodyKind::Json
        } else if trimmed.starts_with(b"text/event-stream") {
            BodyKind::EventStream
        } else {
            BodyKind::Other
        }
    }
}

/// What an answer turned out to hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Usage the answer reported (a stream's final usage chunk).
    pub usage: Option<TokenUsage>,
    /// The answer's `model`.
    pub model: Option<String>,
    /// A JSON answer read whole, or a stream that reached `data: [DONE]` without an error
    /// event (the adapter ends cut or failed streams with one, then `[DONE]`).
    pub complete: bool,
    /// The stream carried an error event.
    pub errored: bool,
}

/// Incremental observer of one answer.
#[derive(Debug)]
pub struct ResponseObserver {
    kind: BodyKind,
    sse: SseParser,
    observed: Observed,
}

/// The two fields the observer reads of an answer or an event, in one parse.
#[derive(Deserialize)]
struct Carrier {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

fn carrier(json: &[u8]) -> Option<Carrier> {
    serde_json::from_slice(json).ok()
}

impl ResponseObserver {
    /// An observer for a body of `kind`.
    pub fn new(kind: BodyKind) -> Self {
        Self {
            kind,
            sse: SseParser::new(),
            observed: Observed::default(),
        }
    }

    /// The body kind this observer reads.
    pub fn kind(&self) -> BodyKind {
        self.kind
    }

    /// A stream chunk as it passes.
    pub fn push_stream_chunk(&mut self, chunk: &[u8]) {
        if self.kind != BodyKind::EventStream {
            return;
        }
        let observed = &mut self.observed;
        self.sse.push(chunk, |event| {
            observe_event(observed, event.data.as_bytes())
        });
    }

    /// The stream ended (end of stream seen): an unterminated last event is read too.
    pub fn finish_stream(&mut self) {
        let observed = &mut self.observed;
        self.sse
            .finish(|event| observe_event(observed, event.data.as_bytes()));
    }

    /// A whole JSON answer.
    pub fn read_json(&mut self, body: &[u8]) {
        if self.kind != BodyKind::Json {
            return;
        }
        let read = carrier(body);
        self.observed.usage = read.as_ref().and_then(|c| c.usage).map(TokenUsage::from);
        self.observed.model = read.and_then(|c| c.model);
        self.observed.complete = true;
    }

    /// What was seen so far.
    pub fn observed(&self) -> &Observed {
        &self.observed
    }
}

fn observe_event(observed: &mut Observed, data: &[u8]) {
    if data.trim_ascii() == b"[DONE]" {
        // A stream that carried an error event ended badly, whatever follows.
        observed.complete = !observed.errored;
        return;
    }
    if crate::openai::response::is_sse_error_event(data) {
        observed.errored = true;
        return;
    }
    let wants_model = observed.model.is_none() && contains(data, b"\"model\"");
    // Only the final chunk carries a usage object (`"usage":null` elsewhere).
    let wants_usage = contains(data, b"\"usage\"") && !contains(data, b"\"usage\":null");
    if !(wants_model || wants_usage) {
        return; // an ordinary content chunk: no parse
    }
    let Some(read) = carrier(data) else {
        return;
    };
    if wants_model {
        observed.model = read.model;
    }
    if let Some(usage) = read.usage.filter(|_| wants_usage) {
        observed.usage = Some(TokenUsage::from(usage));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const STREAM: &str = concat!(
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn a_stream_split_anywhere_gives_its_usage_model_and_completion() {
        for split in 0..STREAM.len() {
            let mut observer = ResponseObserver::new(BodyKind::EventStream);
            observer.push_stream_chunk(&STREAM.as_bytes()[..split]);
            observer.push_stream_chunk(&STREAM.as_bytes()[split..]);
            observer.finish_stream();
            let seen = observer.observed();
            assert_eq!(
                seen.usage,
                Some(TokenUsage {
                    input_tokens: 12,
                    output_tokens: 3,
                    cached_input_tokens: 4,
                    cache_write_tokens: 0
                }),
                "split at {split}"
            );
            assert_eq!(seen.model.as_deref(), Some("gpt-4o-mini"));
            assert!(seen.complete);
        }
    }

    #[test]
    fn a_truncated_stream_is_not_complete_and_has_no_usage() {
        let cut = STREAM
            .find("data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini\",\"choices\":[]")
            .unwrap();
        let mut observer = ResponseObserver::new(BodyKind::EventStream);
        observer.push_stream_chunk(&STREAM.as_bytes()[..cut]);
        observer.finish_stream();
        assert!(!observer.observed().complete);
        assert_eq!(observer.observed().usage, None);
    }

    #[test]
    fn a_stream_ending_with_an_error_event_and_done_is_not_complete() {
        let cut = STREAM
            .find("data: {\"id\":\"c1\",\"model\":\"gpt-4o-mini\",\"choices\":[]")
            .unwrap();
        let stream = format!(
            "{}data: {{\"error\":{{\"message\":\"cut\",\"type\":\"server_error\"}}}}\n\ndata: [DONE]\n\n",
            &STREAM[..cut]
        );
        let mut observer = ResponseObserver::new(BodyKind::EventStream);
        observer.push_stream_chunk(stream.as_bytes());
        observer.finish_stream();
        assert!(observer.observed().errored);
        assert!(!observer.observed().complete);
    }

    #[test]
    fn a_json_answer_gives_usage_and_model() {
        let mut observer = ResponseObserver::new(BodyKind::of_content_type(
            b"application/json; charset=utf-8",
        ));
        observer.read_json(br#"{"id":"x","model":"claude-haiku","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#);
        let seen = observer.observed();
        assert_eq!(seen.usage.map(|u| u.output_tokens), Some(2));
        assert_eq!(seen.model.as_deref(), Some("claude-haiku"));
        assert!(seen.complete);
    }
}
