//! The pipeline's one pass over an answer the client gets (always in the OpenAI format, the
//! adapter translated it): usage, serving model and whether it ended normally, for the budget
//! (reconcile), metrics (count) and cache (store only complete answers) stages.
//!
//! JSON answers are read once, whole. Streams are scanned event by event as they pass; an
//! event's JSON is parsed only when it can hold what we look for (the first event's `model`,
//! an event with a `usage` object), so ordinary content chunks cost a byte scan.
//!
//! When the cache may store the answer it asks for [`Finishes`] too
//! ([`ResponseObserver::with_finishes`]): then every event is parsed, once, for everything at
//! the same time, and the cache decides from these facts without reading the body again.

use crate::sse::SseParser;
use crate::usage::{OpenAiUsage, TokenUsage};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

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

/// A choice's `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `stop`: the model ended its answer.
    Stop,
    /// `length`: the output-token cap ended it.
    Length,
    /// `tool_calls` (or the legacy `function_call`): the model asks for a tool.
    ToolCalls,
    /// `content_filter`: the provider cut it.
    ContentFilter,
    /// Anything else.
    Other,
}

impl FinishReason {
    fn of(reason: &str) -> Self {
        match reason {
            "stop" => FinishReason::Stop,
            "length" => FinishReason::Length,
            "tool_calls" | "function_call" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }
}

/// How an answer's choices ended, read in the observer's pass for the cache's storability
/// (`tollgate_cache::policy::answer_storable`), so the cache never parses the body itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Finishes {
    /// Read from an event stream (else from a JSON answer).
    pub stream: bool,
    /// Each choice seen, by `index`, with its finish reason: a JSON answer's (the last of a
    /// repeated index), a stream's last non-null one; `None` when it never said.
    pub choices: Vec<(u64, Option<FinishReason>)>,
    /// An `error` object (a JSON answer's, a stream's error event) was seen.
    pub error: bool,
    /// Part of the answer could not be read: JSON that does not parse or has the wrong shape,
    /// a stream that outgrew the SSE parser's cap (what follows was never seen), a body of
    /// another kind.
    pub unreadable: bool,
}

/// By hand so that `clone_from` (the pipeline refreshes the facts every chunk) reuses the
/// choices' allocation.
impl Clone for Finishes {
    fn clone(&self) -> Self {
        Self {
            stream: self.stream,
            choices: self.choices.clone(),
            error: self.error,
            unreadable: self.unreadable,
        }
    }

    fn clone_from(&mut self, source: &Self) {
        self.stream = source.stream;
        self.choices.clone_from(&source.choices);
        self.error = source.error;
        self.unreadable = source.unreadable;
    }
}

impl Finishes {
    /// A choice seen: a JSON answer's reason replaces the slot's, a stream's updates it
    /// only when it says one.
    fn record(&mut self, index: u64, reason: Option<FinishReason>, replace: bool) {
        match self.choices.iter_mut().find(|(i, _)| *i == index) {
            Some((_, slot)) => {
                if replace || reason.is_some() {
                    *slot = reason;
                }
            }
            None => self.choices.push((index, reason)),
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
    /// How the choices ended, when asked for ([`ResponseObserver::with_finishes`]).
    pub finishes: Option<Finishes>,
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

    /// Also reads how the choices ended ([`Observed::finishes`]), when `wanted` (the cache
    /// may store the answer). A stream's every event is then parsed instead of scanned.
    pub fn with_finishes(mut self, wanted: bool) -> Self {
        if wanted {
            self.observed.finishes = Some(Finishes {
                stream: self.kind == BodyKind::EventStream,
                // Not looked at: nothing to say how it ended.
                unreadable: self.kind == BodyKind::Other,
                ..Finishes::default()
            });
        }
        self
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
        self.note_overflow();
    }

    /// The stream ended (end of stream seen): an unterminated last event is read too.
    pub fn finish_stream(&mut self) {
        let observed = &mut self.observed;
        self.sse
            .finish(|event| observe_event(observed, event.data.as_bytes()));
        self.note_overflow();
    }

    fn note_overflow(&mut self) {
        if let Some(finishes) = self.observed.finishes.as_mut() {
            finishes.unreadable |= self.sse.overflowed();
        }
    }

    /// A whole JSON answer.
    pub fn read_json(&mut self, body: &[u8]) {
        if self.kind != BodyKind::Json {
            return;
        }
        self.observed.complete = true;
        if let Some(finishes) = self.observed.finishes.as_mut() {
            if let Ok(read) = read_all(body, Fields::All, finishes, true) {
                finishes.error |= read.error;
                self.observed.usage = read.usage.map(TokenUsage::from);
                self.observed.model = read.model;
                return;
            }
            // Not every part parses: the finishes and the two fields below are read apart,
            // each as well as it can be (a rare answer: two more parses).
            finishes.read_apart(body, true);
        }
        let read = carrier(body);
        self.observed.usage = read.as_ref().and_then(|c| c.usage).map(TokenUsage::from);
        self.observed.model = read.and_then(|c| c.model);
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
    if let Some(finishes) = observed.finishes.as_mut() {
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        let fields = if observed.model.is_none() {
            Fields::All
        } else {
            Fields::AllButModel
        };
        match read_all(data, fields, finishes, false) {
            Ok(read) if read.error => {
                finishes.error = true;
                // As the scan below tells an error event (a literal `"error"` member).
                if contains(data, b"\"error\"") {
                    observed.errored = true;
                    return;
                }
            }
            // The same fields, under the same conditions, as the scan below takes them.
            Ok(read) => {
                if read.model.is_some() && contains(data, b"\"model\"") {
                    observed.model = read.model;
                }
                if read.usage.is_some() && wants_usage(data) {
                    observed.usage = read.usage.map(TokenUsage::from);
                }
                return;
            }
            // Read apart, as below for the two fields.
            Err(_) => finishes.read_apart(data, false),
        }
    }
    if crate::openai::response::is_sse_error_event(data) {
        observed.errored = true;
        return;
    }
    let wants_model = observed.model.is_none() && contains(data, b"\"model\"");
    let wants_usage = wants_usage(data);
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

/// Only the final chunk carries a usage object (`"usage":null` elsewhere).
fn wants_usage(data: &[u8]) -> bool {
    contains(data, b"\"usage\"") && !contains(data, b"\"usage\":null")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What one full parse of an answer or event gives besides its choices.
#[derive(Default)]
struct Read {
    model: Option<String>,
    usage: Option<OpenAiUsage>,
    error: bool,
}

/// What [`read_all`] reads besides the finishes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fields {
    /// `usage` and `model` (type-checked as [`Carrier`] does, the model copied).
    All,
    /// `usage`, and `model` only type-checked: already known, not copied again.
    AllButModel,
    /// Neither: skipped whatever they hold.
    FinishesOnly,
}

/// One parse of a JSON object for `error` and the choices' finish reasons, written into
/// `finishes` as they are read (no allocation but a new choice's slot), and the `fields`
/// asked for. Types are as strict as [`Carrier`]'s for `usage` and `model`, as the cache's
/// former reader's for the rest: a wrong shape is an error.
fn read_all(
    json: &[u8],
    fields: Fields,
    finishes: &mut Finishes,
    replace: bool,
) -> serde_json::Result<Read> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let read = AnswerSeed {
        fields,
        finishes,
        replace,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(read)
}

impl Finishes {
    /// After a full read failed: the finishes alone, so that a part only [`Carrier`] cares
    /// about (a `model` that is not a string) does not make the answer unreadable. A partial
    /// update by the failed read is overwritten: the same choices are recorded again in order.
    fn read_apart(&mut self, json: &[u8], replace: bool) {
        match read_all(json, Fields::FinishesOnly, self, replace) {
            Ok(read) => self.error |= read.error,
            Err(_) => self.unreadable = true,
        }
    }
}

struct AnswerSeed<'a> {
    fields: Fields,
    finishes: &'a mut Finishes,
    replace: bool,
}

/// The members [`AnswerSeed`] reads.
enum Member {
    Model,
    Usage,
    Error,
    Choices,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl Visitor<'_> for Names {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
                Ok(match name {
                    "model" => Member::Model,
                    "usage" => Member::Usage,
                    "error" => Member::Error,
                    "choices" => Member::Choices,
                    _ => Member::Other,
                })
            }
        }
        d.deserialize_identifier(Names)
    }
}

/// Refuses a member seen twice, as the derived readers do.
fn once<E: de::Error>(seen: &mut bool, name: &'static str) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}

impl<'de> DeserializeSeed<'de> for AnswerSeed<'_> {
    type Value = Read;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Read, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AnswerSeed<'_> {
    type Value = Read;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an answer object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        let mut read = Read::default();
        let mut seen = [false; 4];
        while let Some(member) = map.next_key::<Member>()? {
            match member {
                Member::Model if self.fields != Fields::FinishesOnly => {
                    once(&mut seen[0], "model")?;
                    let copy = self.fields == Fields::All;
                    read.model = map.next_value_seed(ModelSeed(copy))?;
                }
                Member::Usage if self.fields != Fields::FinishesOnly => {
                    once(&mut seen[1], "usage")?;
                    read.usage = map.next_value()?;
                }
                Member::Error => {
                    once(&mut seen[2], "error")?;
                    read.error = map.next_value::<Option<IgnoredAny>>()?.is_some();
                }
                Member::Choices => {
                    once(&mut seen[3], "choices")?;
                    map.next_value_seed(ChoicesSeed {
                        finishes: &mut *self.finishes,
                        replace: self.replace,
                    })?;
                }
                Member::Model | Member::Usage | Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(read)
    }
}

/// `model`: a string or null, copied only when wanted.
struct ModelSeed(bool);

impl<'de> DeserializeSeed<'de> for ModelSeed {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ModelSeed {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a model name or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
    fn visit_str<E: de::Error>(self, model: &str) -> Result<Self::Value, E> {
        Ok(self.0.then(|| model.to_string()))
    }
}

/// `choices`: an array (not null) of choice objects.
struct ChoicesSeed<'a> {
    finishes: &'a mut Finishes,
    replace: bool,
}

impl<'de> DeserializeSeed<'de> for ChoicesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChoicesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of choices")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(ChoiceEnd(index, reason)) = seq.next_element()? {
            self.finishes.record(index, reason, self.replace);
        }
        Ok(())
    }
}

/// A choice's `index` (0 when absent) and `finish_reason`; the rest (its content) skipped.
struct ChoiceEnd(u64, Option<FinishReason>);

impl<'de> Deserialize<'de> for ChoiceEnd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = ChoiceEnd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a choice object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChoiceEnd, A::Error> {
                let (mut index, mut reason) = (None, None);
                while let Some(name) = map.next_key::<ChoiceMember>()? {
                    match name {
                        ChoiceMember::Index => {
                            if index.replace(map.next_value::<u64>()?).is_some() {
                                return Err(de::Error::duplicate_field("index"));
                            }
                        }
                        ChoiceMember::FinishReason => {
                            let read = map.next_value::<Option<Reason>>()?.map(|r| r.0);
                            if reason.replace(read).is_some() {
                                return Err(de::Error::duplicate_field("finish_reason"));
                            }
                        }
                        ChoiceMember::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(ChoiceEnd(index.unwrap_or(0), reason.flatten()))
            }
        }
        d.deserialize_map(Members)
    }
}

enum ChoiceMember {
    Index,
    FinishReason,
    Other,
}

impl<'de> Deserialize<'de> for ChoiceMember {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl Visitor<'_> for Names {
            type Value = ChoiceMember;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<ChoiceMember, E> {
                Ok(match name {
                    "index" => ChoiceMember::Index,
                    "finish_reason" => ChoiceMember::FinishReason,
                    _ => ChoiceMember::Other,
                })
            }
        }
        d.deserialize_identifier(Names)
    }
}

/// A `finish_reason` string, classified without copying it.
struct Reason(FinishReason);

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Reason;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a finish reason")
            }
            fn visit_str<E: de::Error>(self, reason: &str) -> Result<Reason, E> {
                Ok(Reason(FinishReason::of(reason)))
            }
        }
        d.deserialize_str(Text)
    }
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
    fn a_stream_split_anywhere_gives_the_same_finishes_when_asked() {
        for split in 0..STREAM.len() {
            let mut observer = ResponseObserver::new(BodyKind::EventStream).with_finishes(true);
            observer.push_stream_chunk(&STREAM.as_bytes()[..split]);
            observer.push_stream_chunk(&STREAM.as_bytes()[split..]);
            observer.finish_stream();
            assert_eq!(
                observer.observed().finishes,
                Some(Finishes {
                    stream: true,
                    choices: vec![(0, Some(FinishReason::Stop))],
                    error: false,
                    unreadable: false,
                }),
                "split at {split}"
            );
        }
    }

    #[test]
    fn finishes_are_read_only_when_asked() {
        let mut observer = ResponseObserver::new(BodyKind::EventStream).with_finishes(false);
        observer.push_stream_chunk(STREAM.as_bytes());
        assert_eq!(observer.observed().finishes, None);
    }

    /// Answers whose odd parts one reader minds and the other does not.
    const ODD_STREAMS: [&str; 6] = [
        STREAM,
        "data: not json\n\ndata: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n",
        "data: {\"model\":7,\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\n\ndata: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n",
        "data: {\"model\":\"m\",\"choices\":{},\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n",
        "data: {\"error\":{\"message\":\"x\"},\"choices\":7}\n\ndata: [DONE]\n\n",
        "data: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1},\"x\":{\"usage\":null}}\n\ndata: [DONE]\n\n",
    ];

    #[test]
    fn reading_finishes_changes_nothing_else_the_observer_reports() {
        let read = |kind: BodyKind, body: &str, finishes: bool| {
            let mut observer = ResponseObserver::new(kind).with_finishes(finishes);
            observer.read_json(body.as_bytes());
            observer.push_stream_chunk(body.as_bytes());
            observer.finish_stream();
            Observed {
                finishes: None,
                ..observer.observed().clone()
            }
        };
        let documents = [
            r#"{"model":"m","choices":[{"index":0,"finish_reason":"stop"}],"usage":{"prompt_tokens":2}}"#,
            r#"{"model":"m","choices":{},"usage":{"prompt_tokens":2}}"#,
            r#"{"model":7,"choices":[],"usage":{"prompt_tokens":2}}"#,
            r#"{"model":"m","error":{"message":"x"}}"#,
            r#"{"model":"m""#,
        ];
        let bodies = ODD_STREAMS
            .iter()
            .map(|b| (BodyKind::EventStream, *b))
            .chain(documents.iter().map(|b| (BodyKind::Json, *b)));
        for (kind, body) in bodies {
            assert_eq!(read(kind, body, true), read(kind, body, false), "{body}");
        }
    }

    #[test]
    fn an_unreadable_event_or_document_is_said_and_a_later_usage_is_still_read() {
        let mut observer = ResponseObserver::new(BodyKind::EventStream).with_finishes(true);
        observer.push_stream_chunk(ODD_STREAMS[1].as_bytes());
        let seen = observer.observed();
        assert!(seen.finishes.as_ref().is_some_and(|f| f.unreadable));
        assert_eq!(seen.usage.map(|u| u.input_tokens), Some(3));
        assert!(seen.complete);
        let mut observer = ResponseObserver::new(BodyKind::Json).with_finishes(true);
        observer.read_json(br#"{"choices":[{"index":0,"finish_reason":"stop"}"#);
        assert!(observer
            .observed()
            .finishes
            .as_ref()
            .is_some_and(|f| f.unreadable));
    }

    #[test]
    fn a_stream_that_outgrows_the_parsers_cap_is_unreadable() {
        let mut observer = ResponseObserver::new(BodyKind::EventStream).with_finishes(true);
        observer.push_stream_chunk(
            b"data: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\"}]}\n\ndata: ",
        );
        observer.push_stream_chunk(&vec![b'x'; crate::sse::MAX_EVENT_BYTES]);
        observer.push_stream_chunk(b"\n\ndata: [DONE]\n\n");
        let finishes = observer.observed().finishes.as_ref();
        assert!(finishes.is_some_and(|f| f.unreadable));
    }

    #[test]
    fn a_json_answer_gives_each_choices_finish_reason_and_its_error() {
        let mut observer = ResponseObserver::new(BodyKind::Json).with_finishes(true);
        observer.read_json(br#"{"model":"m","choices":[{"index":1,"finish_reason":"function_call","message":{"content":"{\"index\":9}"}},{"finish_reason":"length"},{"index":2}],"error":{"message":"x"}}"#);
        let seen = observer.observed();
        assert_eq!(seen.model.as_deref(), Some("m"));
        assert_eq!(
            seen.finishes,
            Some(Finishes {
                stream: false,
                choices: vec![
                    (1, Some(FinishReason::ToolCalls)),
                    (0, Some(FinishReason::Length)),
                    (2, None)
                ],
                error: true,
                unreadable: false,
            })
        );
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
