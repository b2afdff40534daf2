//! What the response cache may look up and store (`README.md` says why).
//!
//! - Both modes honour the client's `Cache-Control`: `no-cache` skips the lookup (the fresh
//!   answer may still be stored), `no-store` skips the store.
//! - Safe mode caches only what should repeat: the client asked for a deterministic answer
//!   (`temperature` 0), one choice, no log probabilities; and the answer is a 200 whose every
//!   choice finished with `stop` or `length` (no tool calls, no content filter).
//! - Aggressive mode caches any complete 200 of the same request.

use crate::key::TopLevel;
use std::collections::BTreeMap;
use tollgate_core::config::cache::CacheMode;
use tollgate_core::sse::SseParser;

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
/// terminal event with no error event); in safe mode every choice finished with `stop` or
/// `length`.
pub fn answer_storable(
    mode: CacheMode,
    status: u16,
    complete: bool,
    stream: bool,
    body: &[u8],
) -> bool {
    if status != 200 || !complete || body.is_empty() {
        return false;
    }
    let mut finishes = Finishes::default();
    if stream {
        let mut parser = SseParser::new();
        let mut read = |data: &str| finishes.read_event(data.as_bytes());
        parser.push(body, |e| read(e.data));
        parser.finish(|e| read(e.data));
        if parser.overflowed() {
            return false;
        }
    } else {
        finishes.read_document(body);
    }
    if finishes.error {
        return false;
    }
    match mode {
        CacheMode::Aggressive => true,
        CacheMode::Safe => {
            !finishes.by_choice.is_empty()
                && finishes
                    .by_choice
                    .values()
                    .all(|f| matches!(f.as_deref(), Some("stop" | "length")))
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

/// The finish reason of each choice, and whether an error was seen.
#[derive(Default)]
struct Finishes {
    by_choice: BTreeMap<u64, Option<String>>,
    error: bool,
}

#[derive(serde::Deserialize)]
struct Doc {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct Choice {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    finish_reason: Option<String>,
}

impl Finishes {
    fn read_document(&mut self, body: &[u8]) {
        match serde_json::from_slice::<Doc>(body) {
            Ok(doc) => {
                self.error |= doc.error.is_some();
                for choice in doc.choices {
                    self.by_choice.insert(choice.index, choice.finish_reason);
                }
            }
            Err(_) => self.error = true,
        }
    }

    fn read_event(&mut self, data: &[u8]) {
        let data = data.trim_ascii();
        if data == b"[DONE]" || data.is_empty() {
            return;
        }
        match serde_json::from_slice::<Doc>(data) {
            Ok(doc) => {
                self.error |= doc.error.is_some();
                for choice in doc.choices {
                    let slot = self.by_choice.entry(choice.index).or_default();
                    if choice.finish_reason.is_some() {
                        *slot = choice.finish_reason;
                    }
                }
            }
            Err(_) => self.error = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::top_level;

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

    #[test]
    fn only_complete_200s_with_final_finish_reasons_are_stored_in_safe_mode() {
        let stop = br#"{"choices":[{"index":0,"finish_reason":"stop","message":{}}]}"#;
        let tools = br#"{"choices":[{"index":0,"finish_reason":"tool_calls"}]}"#;
        let safe = CacheMode::Safe;
        assert!(answer_storable(safe, 200, true, false, stop));
        assert!(!answer_storable(safe, 200, false, false, stop));
        assert!(!answer_storable(safe, 500, true, false, stop));
        assert!(!answer_storable(safe, 200, true, false, tools));
        assert!(answer_storable(
            CacheMode::Aggressive,
            200,
            true,
            false,
            tools
        ));
        let stream = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
        assert!(answer_storable(safe, 200, true, true, stream));
        let unfinished = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n";
        assert!(!answer_storable(safe, 200, true, true, unfinished));
        let error = b"data: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\n\ndata: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n";
        assert!(!answer_storable(
            CacheMode::Aggressive,
            200,
            true,
            true,
            error
        ));
    }
}
