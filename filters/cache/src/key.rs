//! Cache keys: SHA-256 over one canonical JSON document of everything that makes two requests
//! the same (`KEYS.md` documents it byte for byte, `tests/vectors/` holds worked examples).
//!
//! Only the configured JSON paths of the body are read, from the body the pipeline holds, and
//! their canonical text is written straight from the body's bytes ([`canonical::write_json`]).

use crate::canonical;
use serde_json::value::RawValue;
use std::borrow::Cow;
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
    pub fn select<'a>(&self, top: &TopLevel<'a>) -> Result<Option<&'a str>, KeyError> {
        let mut steps = self.steps.iter();
        let mut current = match steps.next() {
            Some(PathStep::Member(name)) => match top.get(name) {
                Some(raw) => raw,
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let malformed = |_| KeyError::Malformed;
        for step in steps {
            let next = match step {
                PathStep::Member(name) if current.starts_with('{') => {
                    let members: BTreeMap<String, &'a RawValue> =
                        serde_json::from_str(current).map_err(malformed)?;
                    members.get(name).map(|raw| raw.get())
                }
                PathStep::Index(index) if current.starts_with('[') => {
                    let items: Vec<&'a RawValue> =
                        serde_json::from_str(current).map_err(malformed)?;
                    items.get(*index).map(|raw| raw.get())
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

/// The body's top-level members as raw slices of it, in body order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopLevel<'a> {
    members: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> TopLevel<'a> {
    /// The raw value of member `name`; of two members with one name the last counts (as in a
    /// map serde_json fills).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.members
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, raw)| *raw)
    }

    /// The members as a map (the last of a name), for tests and logs.
    pub fn to_map(&self) -> BTreeMap<&str, &'a str> {
        self.members
            .iter()
            .map(|(n, raw)| (n.as_ref(), *raw))
            .collect()
    }
}

/// The body's top-level members as raw slices, in one pass that builds no value.
///
/// It accepts exactly the bodies serde_json reads as `BTreeMap<String, &RawValue>` (what this
/// was before): UTF-8, one object, member names read strictly (escapes decoded, a lone
/// surrogate refused), values checked the way serde_json checks a raw value (its grammar,
/// escapes well formed, surrogates and nesting depth not checked). `tests/canonical_raw.rs`
/// holds the two to the same answers.
pub fn top_level(body: &[u8]) -> Result<TopLevel<'_>, KeyError> {
    let src = std::str::from_utf8(body).map_err(|_| KeyError::Malformed)?;
    let mut scan = Scan {
        bytes: src.as_bytes(),
        pos: 0,
        frames: Vec::new(),
    };
    let mut members = Vec::new();
    scan.whitespace();
    scan.eat(b'{')?;
    scan.whitespace();
    if scan.peek() == Some(b'}') {
        scan.pos += 1;
    } else {
        loop {
            scan.whitespace();
            let start = scan.pos;
            let name = if scan.string()? {
                // An escaped name (rare): decoded by serde_json, as strictly as before.
                Cow::Owned(
                    serde_json::from_str::<String>(&src[start..scan.pos])
                        .map_err(|_| KeyError::Malformed)?,
                )
            } else {
                Cow::Borrowed(&src[start + 1..scan.pos - 1])
            };
            scan.whitespace();
            scan.eat(b':')?;
            scan.whitespace();
            let value = scan.pos;
            scan.value()?;
            members.push((name, &src[value..scan.pos]));
            scan.whitespace();
            match scan.peek() {
                Some(b',') => scan.pos += 1,
                Some(b'}') => {
                    scan.pos += 1;
                    break;
                }
                _ => return Err(KeyError::Malformed),
            }
        }
    }
    scan.whitespace();
    if scan.pos == src.len() {
        Ok(TopLevel { members })
    } else {
        Err(KeyError::Malformed)
    }
}

/// A checking pass over JSON text as serde_json's `ignore_value` makes it (for raw values).
struct Scan<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The arrays (`false`) and objects (`true`) open around the current value.
    frames: Vec<bool>,
}

impl Scan<'_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline(always)]
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Result<(), KeyError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(KeyError::Malformed)
        }
    }

    /// A string (at its `"`), escapes checked for form only; `true` when it held one.
    fn string(&mut self) -> Result<bool, KeyError> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            self.pos = canonical::plain_run(self.bytes, self.pos);
            match self.peek().ok_or(KeyError::Malformed)? {
                b'"' => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek().ok_or(KeyError::Malformed)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 1,
                        b'u' => {
                            self.pos += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                                    return Err(KeyError::Malformed);
                                }
                                self.pos += 1;
                            }
                        }
                        _ => return Err(KeyError::Malformed),
                    }
                }
                _ => return Err(KeyError::Malformed), // a raw control character
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), KeyError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(KeyError::Malformed),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(KeyError::Malformed);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(KeyError::Malformed);
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), KeyError> {
        for &expected in word {
            self.eat(expected)?;
        }
        Ok(())
    }

    /// An object member's name and colon (after `{` or `,`).
    fn member_name(&mut self) -> Result<(), KeyError> {
        self.whitespace();
        self.string()?;
        self.whitespace();
        self.eat(b':')
    }

    /// One value, nested to any depth without recursion (as serde_json's raw values).
    fn value(&mut self) -> Result<(), KeyError> {
        self.frames.clear();
        loop {
            self.whitespace();
            match self.peek().ok_or(KeyError::Malformed)? {
                b'{' => {
                    self.pos += 1;
                    self.whitespace();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                    } else {
                        self.frames.push(true);
                        self.member_name()?;
                        continue;
                    }
                }
                b'[' => {
                    self.pos += 1;
                    self.whitespace();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                    } else {
                        self.frames.push(false);
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(KeyError::Malformed),
            }
            // A value ended: close the containers it ends, up to the next value.
            loop {
                let Some(&object) = self.frames.last() else {
                    return Ok(());
                };
                self.whitespace();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.member_name()?;
                        }
                        break;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => return Err(KeyError::Malformed),
                }
                self.pos += 1;
                self.frames.pop();
            }
        }
    }
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
        Self(crate::sha256::digest(canonical.as_bytes()))
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
    body_part_of(&top_level(body)?, paths)
}

/// [`body_part`] over already split top-level members: the object of the present paths, in
/// byte order of the paths as configured, each value's canonical text written from its raw
/// slice of the body.
pub fn body_part_of(top: &TopLevel<'_>, paths: &[JsonPath]) -> Result<BodyPart, KeyError> {
    let mut selected: Vec<(&str, &str)> = Vec::with_capacity(paths.len());
    for path in paths {
        if let Some(raw) = path.select(top)? {
            selected.push((path.as_str(), raw));
        }
    }
    // A path configured twice selects the same value once.
    selected.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    selected.dedup_by(|a, b| a.0 == b.0);
    let size: usize = selected
        .iter()
        .map(|(path, raw)| path.len() + raw.len() + 4)
        .sum();
    let mut text = String::with_capacity(size + 2);
    text.push('{');
    for (i, (path, raw)) in selected.into_iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        canonical::write_string(path, &mut text);
        text.push(':');
        canonical::write_json(raw, &mut text).map_err(|_| KeyError::Malformed)?;
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
                .map(str::to_string)
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
