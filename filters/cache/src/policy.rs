//! What the response cache may look up and store (`README.md` says why).
//!
//! - Both modes honour the client's `Cache-Control`: `no-cache` skips the lookup (the fresh
//!   answer may still be stored), `no-store` skips the store.
//! - Safe mode caches only what should repeat: the client asked for a deterministic answer
//!   (`temperature` 0), one choice, no log probabilities; and the answer is a 200 whose every
//!   choice finished with `stop` or `length` (no tool calls, no content filter).
//! - Aggressive mode caches any complete 200 of the same request.

use crate::key::TopLevel;
use tollgate_core::config::cache::CacheMode;
use tollgate_core::observe::{FinishReason, Finishes};

/// The client's `Cache-Control` directives the cache honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientDirectives {
    /// `no-cache`: do not answer from the cache.
    pub no_cache: bool,
    /// `no-store`: do not store the answer.
    pub no_store: bool,
}

impl ClientDirectives {
    /// Reads a `Cache-Control` value (directives are case-insensitive, comma-separated).
    pub fn parse(value: Option<&[u8]>) -> Self {
        let mut directives = Self::default();
        let Some(value) = value else {
            return directives;
        };
        for part in value.split(|b| *b == b',') {
            let name = part
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if name.eq_ignore_ascii_case(b"no-cache") {
                directives.no_cache = true;
            } else if name.eq_ignore_ascii_case(b"no-store") {
                directives.no_store = true;
            }
        }
        directives
    }
}

/// Why a request is not cached at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCacheable {
    /// Safe mode: `temperature` absent (the provider's default samples) or above 0.
    Sampled,
    /// `n` above 1: several answers asked for.
    SeveralChoices,
    /// Log probabilities asked for.
    Logprobs,
    /// The body could not be read.
    Malformed,
}

impl NotCacheable {
    /// Short label (logs).
    pub fn as_str(self) -> &'static str {
        match self {
            NotCacheable::Sampled => "sampled",
            NotCacheable::SeveralChoices => "n>1",
            NotCacheable::Logprobs => "logprobs",
            NotCacheable::Malformed => "malformed",
        }
    }
}

/// Whether a chat request may be cached under `mode`, from its top-level members.
pub fn request_cacheable(mode: CacheMode, top: &TopLevel<'_>) -> Result<(), NotCacheable> {
    if mode == CacheMode::Aggressive {
        return Ok(());
    }
    let number = |name: &str| -> Result<Option<f64>, NotCacheable> {
        match top.get(name).filter(|r| *r != "null") {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<f64>(raw)
                .map(Some)
                .map_err(|_| NotCacheable::Malformed),
        }
    };
    if number("temperature")? != Some(0.0) {
        return Err(NotCacheable::Sampled);
    }
    if number("n")?.is_some_and(|n| n > 1.0) {
        return Err(NotCacheable::SeveralChoices);
    }
    let asks_logprobs = match top.get("logprobs") {
        None | Some("null") | Some("false") => false,
        Some(_) => true,
    };
    if asks_logprobs || number("top_logprobs")?.is_some_and(|n| n > 0.0) {
        return Err(NotCacheable::Logprobs);
    }
    Ok(())
}

/// Whether an answer may be stored under `mode`: a complete 200 (a stream that reached its
/// terminal event with no error event) whose every part was read, of the kind asked for (a
/// stream for a stream request), without an error object; in safe mode every choice finished
/// with `stop` or `length`. `finishes` are what the pipeline's observer read in its one pass
/// over the answer (`None`: it did not read them): the body itself is not parsed again.
pub fn answer_storable(
    mode: CacheMode,
    status: u16,
    complete: bool,
    stream: bool,
    finishes: Option<&Finishes>,
) -> bool {
    let Some(finishes) = finishes else {
        return false;
    };
    if status != 200
        || !complete
        || finishes.stream != stream
        || finishes.error
        || finishes.unreadable
    {
        return false;
    }
    match mode {
        CacheMode::Aggressive => true,
        CacheMode::Safe => {
            !finishes.choices.is_empty()
                && finishes.choices.iter().all(|(_, reason)| {
                    matches!(reason, Some(FinishReason::Stop | FinishReason::Length))
                })
        }
    }
}

/// Whether a stream read so far ends with its terminal event (`data: [DONE]` and the blank
/// line that closes it): the answer is then complete, even before the stream's end arrives.
pub fn stream_terminated(body: &[u8]) -> bool {
    let closed = body.ends_with(b"\n\n") || body.ends_with(b"\r\n\r\n") || body.ends_with(b"\r\r");
    let last = body.trim_ascii_end();
    closed
        && (last.ends_with(b"\ndata: [DONE]")
            || last.ends_with(b"\ndata:[DONE]")
            || last == b"data: [DONE]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::top_level;
    use tollgate_core::observe::{BodyKind, ResponseObserver};

    #[test]
    fn safe_mode_caches_only_deterministic_single_answer_requests() {
        let cases: [(&str, Result<(), NotCacheable>); 9] = [
            (r#"{"temperature":0}"#, Ok(())),
            (r#"{"temperature":0.0,"n":1,"logprobs":false}"#, Ok(())),
            (r#"{}"#, Err(NotCacheable::Sampled)),
            (r#"{"temperature":null}"#, Err(NotCacheable::Sampled)),
            (r#"{"temperature":0.7}"#, Err(NotCacheable::Sampled)),
            (
                r#"{"temperature":0,"n":2}"#,
                Err(NotCacheable::SeveralChoices),
            ),
            (
                r#"{"temperature":0,"logprobs":true}"#,
                Err(NotCacheable::Logprobs),
            ),
            (
                r#"{"temperature":0,"top_logprobs":3}"#,
                Err(NotCacheable::Logprobs),
            ),
            (r#"{"temperature":"hot"}"#, Err(NotCacheable::Malformed)),
        ];
        for (body, expected) in cases {
            let top = top_level(body.as_bytes()).unwrap();
            assert_eq!(request_cacheable(CacheMode::Safe, &top), expected, "{body}");
            assert_eq!(
                request_cacheable(CacheMode::Aggressive, &top),
                Ok(()),
                "{body}"
            );
        }
    }

    #[test]
    fn a_stream_is_terminated_by_a_closed_done_event_only() {
        assert!(stream_terminated(b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(stream_terminated(b"data: {}\r\n\r\ndata: [DONE]\r\n\r\n"));
        assert!(!stream_terminated(b"data: {}\n\ndata: [DONE]\n"));
        assert!(!stream_terminated(b"data: {}\n\n"));
        assert!(!stream_terminated(b"data: {\"x\":\"data: [DONE]\"}\n\n"));
    }

    #[test]
    fn cache_control_no_cache_and_no_store_are_read_case_insensitively() {
        let read = |v: &str| ClientDirectives::parse(Some(v.as_bytes()));
        assert!(read("No-Cache").no_cache);
        assert!(read("max-age=0, no-store").no_store);
        assert_eq!(read("max-age=0"), ClientDirectives::default());
        assert_eq!(ClientDirectives::parse(None), ClientDirectives::default());
    }

    /// What the cache decides of an answer, from what the pipeline's observer read of it fed
    /// in two chunks split at `split`; complete as the cache stage says (the observer saw
    /// `[DONE]`, or the collected stream ends with its terminal event).
    fn decide(mode: CacheMode, stream: bool, answer: Kind, body: &[u8], split: usize) -> bool {
        let kind = match answer {
            Kind::Json => BodyKind::Json,
            Kind::Sse => BodyKind::EventStream,
        };
        let mut observer = ResponseObserver::new(kind).with_finishes(true);
        match answer {
            Kind::Json => observer.read_json(body),
            Kind::Sse => {
                observer.push_stream_chunk(&body[..split]);
                observer.push_stream_chunk(&body[split..]);
                observer.finish_stream();
            }
        }
        let seen = observer.observed();
        let complete = seen.complete || (stream && stream_terminated(body));
        answer_storable(mode, 200, complete, stream, seen.finishes.as_ref())
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Json,
        Sse,
    }

    const STOP: &str = r#"{"choices":[{"index":0,"finish_reason":"stop","message":{}}]}"#;

    /// (what, request streams, answer kind, body, stored in safe mode, stored in aggressive).
    fn cases() -> Vec<(&'static str, bool, Kind, String, bool, bool)> {
        use Kind::{Json, Sse};
        let chunk = |choice: u64, reason: &str| {
            format!(
                "data: {{\"choices\":[{{\"index\":{choice},\"delta\":{{\"content\":\"a\"}},\"finish_reason\":{reason}}}],\"usage\":null}}\n\n"
            )
        };
        let done = "data: [DONE]\n\n";
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        let json = |s: &str| s.to_string();
        vec![
            ("stop", false, Json, json(STOP), true, true),
            (
                "length",
                false,
                Json,
                STOP.replace("stop", "length"),
                true,
                true,
            ),
            (
                "tool calls",
                false,
                Json,
                STOP.replace("stop", "tool_calls"),
                false,
                true,
            ),
            (
                "content filter",
                false,
                Json,
                STOP.replace("stop", "content_filter"),
                false,
                true,
            ),
            (
                "no finish reason",
                false,
                Json,
                json(r#"{"choices":[{"index":0,"finish_reason":null,"message":{}}]}"#),
                false,
                true,
            ),
            (
                "no choices",
                false,
                Json,
                json(r#"{"choices":[]}"#),
                false,
                true,
            ),
            ("no choices member", false, Json, json("{}"), false, true),
            (
                "n>1, every choice final",
                false,
                Json,
                json(
                    r#"{"choices":[{"index":0,"finish_reason":"stop"},{"index":1,"finish_reason":"length"}]}"#,
                ),
                true,
                true,
            ),
            (
                "n>1, one tool call",
                false,
                Json,
                json(
                    r#"{"choices":[{"index":0,"finish_reason":"stop"},{"index":1,"finish_reason":"tool_calls"}]}"#,
                ),
                false,
                true,
            ),
            (
                "a repeated index: the last one says",
                false,
                Json,
                json(
                    r#"{"choices":[{"index":0,"finish_reason":"tool_calls"},{"finish_reason":"stop"}]}"#,
                ),
                true,
                true,
            ),
            (
                "an error object",
                false,
                Json,
                json(r#"{"error":{"message":"x","type":"server_error"}}"#),
                false,
                false,
            ),
            (
                "a null error member",
                false,
                Json,
                json(r#"{"error":null,"choices":[{"index":0,"finish_reason":"stop"}]}"#),
                true,
                true,
            ),
            (
                "truncated JSON",
                false,
                Json,
                json(r#"{"choices":[{"index":0,"finish_reason":"stop"}]"#),
                false,
                false,
            ),
            (
                "choices not an array",
                false,
                Json,
                json(r#"{"choices":{"index":0,"finish_reason":"stop"}}"#),
                false,
                false,
            ),
            (
                "an index that is not a number",
                false,
                Json,
                json(r#"{"choices":[{"index":"0","finish_reason":"stop"}]}"#),
                false,
                false,
            ),
            (
                "a model that is not a string (only the usage reader minds)",
                false,
                Json,
                json(r#"{"model":7,"choices":[{"index":0,"finish_reason":"stop"}]}"#),
                true,
                true,
            ),
            ("an empty body", false, Json, String::new(), false, false),
            (
                "a stream answering a JSON request",
                false,
                Sse,
                format!("{}{done}", chunk(0, "\"stop\"")),
                false,
                false,
            ),
            (
                "a JSON answer to a stream request",
                true,
                Json,
                json(STOP),
                false,
                false,
            ),
            (
                "stream: content, length, usage",
                true,
                Sse,
                format!(
                    "{}{}{usage}{done}",
                    chunk(0, "null"),
                    chunk(0, "\"length\"")
                ),
                true,
                true,
            ),
            (
                "stream: a choice that never finished",
                true,
                Sse,
                format!("{}{done}", chunk(0, "null")),
                false,
                true,
            ),
            (
                "stream: a later null reason keeps the final one",
                true,
                Sse,
                format!("{}{}{done}", chunk(0, "\"stop\""), chunk(0, "null")),
                true,
                true,
            ),
            (
                "stream: tool calls",
                true,
                Sse,
                format!("{}{done}", chunk(0, "\"tool_calls\"")),
                false,
                true,
            ),
            (
                "stream: n>1, every choice final",
                true,
                Sse,
                format!(
                    "{}{}{}{done}",
                    chunk(1, "null"),
                    chunk(0, "\"stop\""),
                    chunk(1, "\"length\"")
                ),
                true,
                true,
            ),
            (
                "stream: n>1, one choice unfinished",
                true,
                Sse,
                format!("{}{}{done}", chunk(0, "\"stop\""), chunk(1, "null")),
                false,
                true,
            ),
            (
                "stream: an error event after a final choice",
                true,
                Sse,
                format!(
                    "{}data: {{\"error\":{{\"message\":\"x\"}}}}\n\n{done}",
                    chunk(0, "\"stop\"")
                ),
                false,
                false,
            ),
            (
                "stream: an event that is not JSON",
                true,
                Sse,
                format!("{}data: not json\n\n{done}", chunk(0, "\"stop\"")),
                false,
                false,
            ),
            (
                "stream: truncated before [DONE]",
                true,
                Sse,
                chunk(0, "\"stop\""),
                false,
                false,
            ),
            (
                "stream: [DONE] without its blank line at the end",
                true,
                Sse,
                format!("{}data: [DONE]", chunk(0, "\"stop\"")),
                true,
                true,
            ),
        ]
    }

    #[test]
    fn only_complete_200s_with_final_finish_reasons_are_stored_in_safe_mode() {
        for (what, stream, kind, body, safe, aggressive) in cases() {
            // Every chunking of a stream gives the same decision.
            let splits = match kind {
                Kind::Json => 0..=0,
                Kind::Sse => 0..=body.len(),
            };
            for split in splits {
                let body = body.as_bytes();
                assert_eq!(
                    decide(CacheMode::Safe, stream, kind, body, split),
                    safe,
                    "safe: {what} (split at {split})"
                );
                assert_eq!(
                    decide(CacheMode::Aggressive, stream, kind, body, split),
                    aggressive,
                    "aggressive: {what} (split at {split})"
                );
            }
        }
    }

    #[test]
    fn a_non_200_an_incomplete_answer_or_one_not_read_is_never_stored() {
        let mut observer = ResponseObserver::new(BodyKind::Json).with_finishes(true);
        observer.read_json(STOP.as_bytes());
        let finishes = observer.observed().finishes.as_ref();
        for mode in [CacheMode::Safe, CacheMode::Aggressive] {
            assert!(answer_storable(mode, 200, true, false, finishes));
            assert!(!answer_storable(mode, 500, true, false, finishes));
            assert!(!answer_storable(mode, 200, false, false, finishes));
            assert!(!answer_storable(mode, 200, true, false, None));
        }
        // A body the observer does not read (another content type) says nothing of its end.
        let mut other = ResponseObserver::new(BodyKind::Other).with_finishes(true);
        other.read_json(STOP.as_bytes());
        let unread = other.observed().finishes.as_ref();
        assert!(!answer_storable(
            CacheMode::Aggressive,
            200,
            true,
            false,
            unread
        ));
    }

    #[test]
    fn a_stream_that_outgrew_the_parsers_cap_is_never_stored_even_when_it_ends_with_done() {
        let body = format!(
            "data: {STOP}\n\ndata: \"{}\"\n\ndata: [DONE]\n\n",
            "x".repeat(tollgate_core::sse::MAX_EVENT_BYTES)
        );
        assert!(stream_terminated(body.as_bytes()), "the stage sees it end");
        for split in [0, 10, body.len() / 2, body.len() - 3] {
            for mode in [CacheMode::Safe, CacheMode::Aggressive] {
                assert!(
                    !decide(mode, true, Kind::Sse, body.as_bytes(), split),
                    "{mode:?} split at {split}"
                );
            }
        }
    }
}
