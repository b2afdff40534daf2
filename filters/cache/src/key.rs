//! Cache keys: SHA-256 over one canonical JSON document of everything that makes two requests
//! the same (`KEYS.md` documents it byte for byte, `tests/vectors/` holds worked examples).
//!
//! Only the configured JSON paths of the body are read, from the body the pipeline holds, and
//! their canonical text is written straight from the body's bytes ([`canonical::write_json`]).

use crate::canonical;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Version of the canonical form; part of every key, so a change of form changes every key.
pub const KEY_FORM_VERSION: u64 = 1;

/// A parsed JSON path: `$` then `.name`, `['name']` or `[index]` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Member(String),
    Index(usize),
}

/// A JSON path the cache cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path {path:?}: {reason}")]
pub struct PathError {
    /// The path as written.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl JsonPath {
    /// Parses `$.a.b`, `$['a.b']`, `$.a[0]`; no wildcards, filters or recursive descent.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let fail = |reason| PathError {
            path: text.to_string(),
            reason,
        };
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| fail("must start with `$`"))?;
        let mut steps = Vec::new();
        let bytes = rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < bytes.len() && bytes[end] != b'.' && bytes[end] != b'[' {
                        end += 1;
                    }
                    let name = &rest[start..end];
                    if name.is_empty() {
                        return Err(fail("empty member name after `.`"));
                    }
                    if name == "*" {
                        return Err(fail("wildcards are not supported"));
                    }
                    steps.push(PathStep::Member(name.to_string()));
                    i = end;
                }
                b'[' => {
                    let close = rest[i..]
                        .find(']')
                        .map(|p| i + p)
                        .ok_or_else(|| fail("`[` without `]`"))?;
                    let inner = &rest[i + 1..close];
                    let quoted = inner.len() >= 2
                        && ((inner.starts_with('\'') && inner.ends_with('\''))
                            || (inner.starts_with('"') && inner.ends_with('"')));
                    if quoted {
                        steps.push(PathStep::Member(inner[1..inner.len() - 1].to_string()));
                    } else {
                        let index = inner
                            .parse::<usize>()
                            .map_err(|_| fail("a bracket holds a quoted name or an index"))?;
                        steps.push(PathStep::Index(index));
                    }
                    i = close + 1;
                }
                _ => return Err(fail("expected `.` or `[`")),
            }
        }
        if !matches!(steps.first(), Some(PathStep::Member(_))) {
            return Err(fail("must name a top-level member of the body"));
        }
        Ok(Self {
            text: text.to_string(),
            steps,
        })
    }

    /// The path as configured (its name in the key).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The raw slice the path selects in `top` (the body's top-level members), `None` when
    /// absent (a present `null` is `Some("null")`). An error: a step met malformed JSON.
    pub fn select<'a>(
        &self,
        top: &BTreeMap<String, &'a RawValue>,
    ) -> Result<Option<&'a RawValue>, serde_json::Error> {
        let mut steps = self.steps.iter();
        let mut current = match steps.next() {
            Some(PathStep::Member(name)) => match top.get(name) {
                Some(raw) => *raw,
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        for step in steps {
            let trimmed = current.get().trim_start();
            let next = match step {
                PathStep::Member(name) if trimmed.starts_with('{') => {
                    let members: BTreeMap<String, &'a RawValue> =
                        serde_json::from_str(current.get())?;
                    members.get(name).copied()
                }
                PathStep::Index(index) if trimmed.starts_with('[') => {
                    let items: Vec<&'a RawValue> = serde_json::from_str(current.get())?;
                    items.get(*index).copied()
                }
                _ => None, // a member of a non-object, an index of a non-array: absent
            };
            match next {
                Some(raw) => current = raw,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }
}

/// The body's top-level members as raw slices (one pass, values not built).
pub fn top_level(body: &[u8]) -> Result<BTreeMap<String, &RawValue>, serde_json::Error> {
    serde_json::from_slice(body)
}

/// Everything a key is made of, as the glue read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyInputs {
    /// What kind of request: `openai.chat` or `mcp.tools/call`.
    pub protocol: &'static str,
    /// Envoy's route name.
    pub route: Option<String>,
    /// The backend the router chose.
    pub backend: Option<String>,
    /// Whether the answer is streamed.
    pub stream: bool,
    /// Caller identity the gateway verified: `jwt_sub`, `client`.
    pub caller: BTreeMap<&'static str, String>,
    /// Configured headers that were present: lower-cased name → value.
    pub headers: BTreeMap<String, String>,
    /// Configured body paths that were present: path as configured → value; `None`: the key
    /// takes the whole body (no path configured).
    pub body: BodyPart,
}

/// The body's part of a key, as the canonical text of the document's `body` member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BodyPart {
    /// The whole body, canonical.
    Whole(String),
    /// The configured paths that were present, as the canonical object
    /// `{"<path as configured>":<value>,…}` (see [`body_part_of`]).
    Paths(String),
    /// Nothing from the body.
    #[default]
    Nothing,
}

impl KeyInputs {
    /// The canonical document (`KEYS.md`), written member by member in sorted order into one
    /// buffer sized for it (no intermediate document: the body's text is already canonical).
    pub fn canonical(&self) -> String {
        use canonical::write_string;
        let optional = |value: &Option<String>, out: &mut String| match value {
            Some(v) => write_string(v, out),
            None => out.push_str("null"),
        };
        let body = match &self.body {
            BodyPart::Whole(text) | BodyPart::Paths(text) => Some(text.as_str()),
            BodyPart::Nothing => None,
        };
        // The fixed member names and literals take ~110 bytes, each map entry its text and 6
        // (quotes, colon, comma); only escapes can make it grow past this.
        let size = 128
            + body.map_or(0, str::len)
            + self.route.as_deref().map_or(0, str::len)
            + self.backend.as_deref().map_or(0, str::len)
            + self
                .caller
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>();
        let mut out = String::with_capacity(size);
        out.push_str("{\"backend\":");
        optional(&self.backend, &mut out);
        if let Some(text) = body {
            out.push_str(",\"body\":");
            out.push_str(text);
        }
        out.push_str(",\"caller\":{");
        for (i, (name, value)) in self.caller.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(name, &mut out);
            out.push(':');
            write_string(value, &mut out);
        }
        out.push_str("},\"headers\":{");
        for (i, (name, value)) in self.headers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(name, &mut out);
            out.push(':');
            write_string(value, &mut out);
        }
        out.push_str("},\"protocol\":");
        write_string(self.protocol, &mut out);
        out.push_str(",\"route\":");
        optional(&self.route, &mut out);
        out.push_str(",\"stream\":");
        out.push_str(if self.stream { "true" } else { "false" });
        // Writing to a String cannot fail.
        let _ = write!(out, ",\"v\":{KEY_FORM_VERSION}}}");
        out
    }

    /// The key: lower-case hex SHA-256 of the canonical document.
    pub fn key(&self) -> CacheKey {
        CacheKey::of_canonical(&self.canonical())
    }
}

/// A cache key: the SHA-256 of a canonical document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key of a canonical document.
    pub fn of_canonical(canonical: &str) -> Self {
        Self(Sha256::digest(canonical.as_bytes()).into())
    }

    /// Lower-case hex.
    pub fn hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }
}

/// Why a body could not be keyed (the request then bypasses the cache).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The body is not a JSON object, or a selected value is malformed.
    #[error("the body is not JSON the key can read")]
    Malformed,
}

/// The body's part of a key: each configured path that is present, canonical; the whole
/// body when no path is configured.
pub fn body_part(body: &[u8], paths: &[JsonPath]) -> Result<BodyPart, KeyError> {
    if paths.is_empty() {
        let mut text = String::new();
        canonical::write_json_bytes(body, &mut text).map_err(|_| KeyError::Malformed)?;
        return Ok(BodyPart::Whole(text));
    }
    let top = top_level(body).map_err(|_| KeyError::Malformed)?;
    body_part_of(&top, paths)
}

/// [`body_part`] over already split top-level members: the object of the present paths, in
/// byte order of the paths as configured, each value's canonical text written from its raw
/// slice of the body.
pub fn body_part_of(
    top: &BTreeMap<String, &RawValue>,
    paths: &[JsonPath],
) -> Result<BodyPart, KeyError> {
    let mut selected: Vec<(&str, &RawValue)> = Vec::with_capacity(paths.len());
    for path in paths {
        if let Some(raw) = path.select(top).map_err(|_| KeyError::Malformed)? {
            selected.push((path.as_str(), raw));
        }
    }
    // A path configured twice selects the same value once.
    selected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    selected.dedup_by(|a, b| a.0 == b.0);
    let size: usize = selected
        .iter()
        .map(|(path, raw)| path.len() + raw.get().len() + 4)
        .sum();
    let mut text = String::with_capacity(size + 2);
    text.push('{');
    for (i, (path, raw)) in selected.into_iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        canonical::write_string(path, &mut text);
        text.push(':');
        canonical::write_json(raw.get(), &mut text).map_err(|_| KeyError::Malformed)?;
    }
    text.push('}');
    Ok(BodyPart::Paths(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<JsonPath> {
        list.iter().map(|p| JsonPath::parse(p).unwrap()).collect()
    }

    #[test]
    fn paths_select_members_indexes_and_quoted_names() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"a.b":{"c":null}}"#;
        let top = top_level(body).unwrap();
        let get = |p: &str| {
            JsonPath::parse(p)
                .unwrap()
                .select(&top)
                .unwrap()
                .map(|r| r.get().to_string())
        };
        assert_eq!(get("$.model").as_deref(), Some(r#""m""#));
        assert_eq!(get("$.messages[0].content").as_deref(), Some(r#""hi""#));
        assert_eq!(get("$['a.b'].c").as_deref(), Some("null"));
        assert_eq!(get("$.messages[1]"), None);
        assert_eq!(get("$.model.x"), None);
        assert_eq!(get("$.temperature"), None);
    }

    #[test]
    fn unusable_paths_are_refused_with_a_reason() {
        for bad in ["model", "$", "$.", "$[0]", "$.a[", "$.a[x]", "$.*", "$..a"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn absent_and_null_paths_make_different_keys() {
        let p = paths(&["$.model", "$.temperature"]);
        let key = |body: &[u8]| {
            KeyInputs {
                protocol: "openai.chat",
                body: body_part(body, &p).unwrap(),
                ..Default::default()
            }
            .key()
        };
        assert_ne!(
            key(br#"{"model":"m"}"#),
            key(br#"{"model":"m","temperature":null}"#)
        );
        assert_eq!(
            key(br#"{"model":"m","temperature":0}"#),
            key(br#"{ "temperature" : 0.0, "model" : "m", "stream": true }"#)
        );
    }
}
