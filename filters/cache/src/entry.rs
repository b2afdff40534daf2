//! A stored answer: what it was, when it expires, whose key it is; and how it is replayed
//! (the stored bytes, with a fresh `id` and `created`).
//!
//! Binary layout (little-endian), so a lookup checks the key without parsing the body:
//! `"TGC2"`, key (32), stored_ms (8), expires_ms (8), kind (1: 0 JSON, 1 SSE),
//! usage flag (1) + input, output, cached input tokens (3 × 8), model length (2) + model,
//! provider length (2) + provider, body length (4) + body.

use crate::key::CacheKey;
use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_core::usage::TokenUsage;

const MAGIC: &[u8; 4] = b"TGC2";

/// How the answer was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// One JSON document.
    Json,
    /// Server-sent events, as received.
    Sse,
}

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key it answers.
    pub key: CacheKey,
    /// When it was stored (ms since the epoch).
    pub stored_ms: u64,
    /// When it stops being served.
    pub expires_ms: u64,
    /// JSON or SSE.
    pub kind: BodyKind,
    /// The usage the original answer reported.
    pub usage: Option<TokenUsage>,
    /// The model that wrote it.
    pub model: Option<String>,
    /// The provider that served it (`x-tollgate-provider`), so a hit is priced as it.
    pub provider: Option<String>,
    /// The body as the client got it.
    pub body: Vec<u8>,
}

impl Entry {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let model = self.model.as_deref().unwrap_or("").as_bytes();
        let model = &model[..model.len().min(usize::from(u16::MAX))];
        let provider = self.provider.as_deref().unwrap_or("").as_bytes();
        let provider = &provider[..provider.len().min(usize::from(u16::MAX))];
        let mut out = Vec::with_capacity(96 + model.len() + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.key.0);
        out.extend_from_slice(&self.stored_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out.push(match self.kind {
            BodyKind::Json => 0,
            BodyKind::Sse => 1,
        });
        let usage = self.usage.unwrap_or_default();
        out.push(u8::from(self.usage.is_some()));
        for n in [
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&u16::try_from(model.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(model);
        out.extend_from_slice(&u16::try_from(provider.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(provider);
        out.extend_from_slice(&u32::try_from(self.body.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// The key and expiry of stored bytes, without copying the body (`None`: not an entry).
    pub fn peek(bytes: &[u8]) -> Option<(CacheKey, u64)> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return None;
        }
        let key = CacheKey(r.take(32)?.try_into().ok()?);
        let _stored = r.u64()?;
        Some((key, r.u64()?))
    }

    /// Decodes stored bytes (`None`: empty or corrupt).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return None;
        }
        let key = CacheKey(r.take(32)?.try_into().ok()?);
        let stored_ms = r.u64()?;
        let expires_ms = r.u64()?;
        let kind = match r.take(1)?[0] {
            0 => BodyKind::Json,
            1 => BodyKind::Sse,
            _ => return None,
        };
        let has_usage = r.take(1)?[0] == 1;
        let usage = TokenUsage {
            input_tokens: r.u64()?,
            output_tokens: r.u64()?,
            cached_input_tokens: r.u64()?,
            // Not stored (TGC2 layout): what a hit saved prices the writes as input.
            cache_write_tokens: 0,
        };
        let model_len = usize::from(u16::from_le_bytes(r.take(2)?.try_into().ok()?));
        let model = String::from_utf8(r.take(model_len)?.to_vec()).ok();
        let provider_len = usize::from(u16::from_le_bytes(r.take(2)?.try_into().ok()?));
        let provider = String::from_utf8(r.take(provider_len)?.to_vec()).ok();
        let body_len = usize::try_from(u32::from_le_bytes(r.take(4)?.try_into().ok()?)).ok()?;
        let body = r.take(body_len)?.to_vec();
        Some(Self {
            key,
            stored_ms,
            expires_ms,
            kind,
            usage: has_usage.then_some(usage),
            model: model.filter(|m| !m.is_empty()),
            provider: provider.filter(|p| !p.is_empty()),
            body,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
}

/// One JSON document with its top-level `id` and `created` replaced (other bytes kept).
pub fn restamp_document(doc: &[u8], id: &str, created: u64) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(doc) else {
        return doc.to_vec();
    };
    let Ok(stamp) = serde_json::from_str::<Stamp<'_>>(text) else {
        return doc.to_vec();
    };
    let mut splices: Vec<(usize, usize, String)> = Vec::new();
    let base = text.as_ptr() as usize;
    if let Some(raw) = stamp.id {
        let start = raw.get().as_ptr() as usize - base;
        splices.push((
            start,
            start + raw.get().len(),
            serde_json::Value::from(id).to_string(),
        ));
    }
    if let Some(raw) = stamp.created {
        let start = raw.get().as_ptr() as usize - base;
        splices.push((start, start + raw.get().len(), created.to_string()));
    }
    splices.sort_by_key(|s| s.0);
    let mut out = Vec::with_capacity(doc.len() + 16);
    let mut at = 0;
    for (start, end, replacement) in splices {
        if start < at || end > doc.len() {
            return doc.to_vec();
        }
        out.extend_from_slice(&doc[at..start]);
        out.extend_from_slice(replacement.as_bytes());
        at = end;
    }
    out.extend_from_slice(&doc[at..]);
    out
}

/// The body a hit replays: a JSON answer restamped, or the SSE frames as they came, each
/// `data:` line's JSON restamped (every frame gets the same new id, as one answer's chunks do).
pub fn replay_body(entry: &Entry, id: &str, created: u64) -> Vec<u8> {
    match entry.kind {
        BodyKind::Json => restamp_document(&entry.body, id, created),
        BodyKind::Sse => {
            let mut out = Vec::with_capacity(entry.body.len() + 64);
            for line in entry.body.split_inclusive(|b| *b == b'\n') {
                let (prefix_len, payload) = match line.strip_prefix(b"data: ") {
                    Some(p) => (6, p),
                    None => match line.strip_prefix(b"data:") {
                        Some(p) => (5, p),
                        None => {
                            out.extend_from_slice(line);
                            continue;
                        }
                    },
                };
                let content_len = payload
                    .iter()
                    .rposition(|b| *b != b'\n' && *b != b'\r')
                    .map_or(0, |p| p + 1);
                let (json, ending) = payload.split_at(content_len);
                out.extend_from_slice(&line[..prefix_len]);
                if json.first() == Some(&b'{') {
                    out.extend_from_slice(&restamp_document(json, id, created));
                } else {
                    out.extend_from_slice(json);
                }
                out.extend_from_slice(ending);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: BodyKind, body: &[u8]) -> Entry {
        Entry {
            key: CacheKey([7; 32]),
            stored_ms: 1_000,
            expires_ms: 61_000,
            kind,
            usage: Some(TokenUsage {
                input_tokens: 12,
                output_tokens: 5,
                cached_input_tokens: 0,
                cache_write_tokens: 0,
            }),
            model: Some("gpt-4o-mini".into()),
            provider: Some("gpt-4o-mini".into()),
            body: body.to_vec(),
        }
    }

    #[test]
    fn an_entry_decodes_to_what_was_encoded_and_corrupt_bytes_to_nothing() {
        let e = entry(BodyKind::Sse, b"data: [DONE]\n\n");
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes), Some(e.clone()));
        assert_eq!(Entry::peek(&bytes), Some((e.key, 61_000)));
        assert_eq!(Entry::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Entry::decode(b""), None);
        assert_eq!(
            Entry::decode(b"TGC1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            None
        );
    }

    #[test]
    fn a_json_answer_is_replayed_with_a_fresh_id_and_created_and_nothing_else_changed() {
        let body = br#"{"id":"chatcmpl-old", "object":"chat.completion","created":1,"model":"m","choices":[{"message":{"content":"id"}}]}"#;
        let out = replay_body(&entry(BodyKind::Json, body), "chatcmpl-new", 99);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"chatcmpl-new", "object":"chat.completion","created":99,"model":"m","choices":[{"message":{"content":"id"}}]}"#
        );
    }

    #[test]
    fn sse_frames_are_replayed_as_they_came_with_fresh_stamps() {
        let body = b"data: {\"id\":\"a\",\"created\":1,\"x\":1}\n\n: comment\n\ndata:{\"id\":\"a\",\"created\":1}\r\n\r\ndata: [DONE]\n\n";
        let out = replay_body(&entry(BodyKind::Sse, body), "b", 2);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "data: {\"id\":\"b\",\"created\":2,\"x\":1}\n\n: comment\n\ndata:{\"id\":\"b\",\"created\":2}\r\n\r\ndata: [DONE]\n\n"
        );
    }
}
