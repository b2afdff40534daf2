//! The canonical JSON form the cache keys hash (documented byte for byte in `KEYS.md`):
//! no whitespace, object members sorted by the UTF-8 bytes of their names, numbers written
//! as ECMAScript writes a double (so `0`, `0.0` and `0e0` are one value), strings with the
//! minimal escapes.
//!
//! Two writers of the same bytes: [`write()`] over a [`Value`], and [`write_json`] straight from
//! JSON text (the key path: no value tree, no per-string allocation, unescaped runs of string
//! bytes copied whole). `tests/canonical_raw.rs` holds them to the same output.

use serde_json::Value;
use std::borrow::Cow;

/// Appends the canonical form of `value` to `out`.
pub fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(f) = n.as_f64() {
                write_double(f, out);
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write(member, out);
            }
            out.push('}');
        }
    }
}

/// The canonical form of `value` as a string.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// A JSON string: `"` and `\` escaped, `\b \t \n \f \r`, other controls below U+0020 as
/// `\u00xx` (lower-case hex), everything else as its UTF-8 bytes.
pub fn write_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    write_string_body(s, out);
    out.push('"');
}

/// The text of a JSON string between its quotes (see [`write_string`]).
fn write_string_body(s: &str, out: &mut String) {
    // Runs of bytes that need no escape are copied whole; only ASCII bytes are escaped, so
    // every split falls on a character boundary.
    let bytes = s.as_bytes();
    let mut run = 0;
    loop {
        let i = plain_run(bytes, run);
        out.push_str(&s[run..i]);
        let Some(&b) = bytes.get(i) else {
            return;
        };
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            _ => "",
        };
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
}

/// The index of the first byte at or after `from` that ends a plain run of string text (`"`,
/// `\` or a control character below U+0020), or `bytes.len()`. Eight bytes at a time: prompts
/// are long strings, and this loop is most of what reading them costs.
#[inline(always)]
pub(crate) fn plain_run(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*chunk);
        // A byte's high bit survives in each term exactly when that byte is below 0x20, or
        // `"` (0x22) or `\` (0x5c): the classic has-zero-byte test, exact for "any byte".
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        let quote = (w ^ (ONES * 0x22)).wrapping_sub(ONES) & !(w ^ (ONES * 0x22));
        let backslash = (w ^ (ONES * 0x5c)).wrapping_sub(ONES) & !(w ^ (ONES * 0x5c));
        if (control | quote | backslash) & HIGH != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b < 0x20 || b == b'"' || b == b'\\' {
            break;
        }
        i += 1;
    }
    i
}

/// JSON text [`write_json`] does not write: exactly the text `serde_json` refuses to read into a
/// [`Value`] (syntax, a raw control character or a lone surrogate in a string, a number out of
/// a double's range, nesting deeper than serde_json's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not JSON the canonical form can be written from")]
pub struct NotJson;

/// serde_json's nesting limit (`Deserializer::remaining_depth`): the 128th nested array or
/// object is refused.
const MAX_DEPTH: u8 = 128;

/// Appends the canonical form of the JSON text `json` (one value, whitespace around it allowed)
/// to `out`: the bytes `write(&serde_json::from_str(json)?, out)` appends, refused exactly when
/// that parse fails, without building the value. On an error `out` holds a partial write.
pub fn write_json(json: &str, out: &mut String) -> Result<(), NotJson> {
    out.reserve(json.len());
    let mut writer = RawWriter {
        src: json,
        bytes: json.as_bytes(),
        pos: 0,
        span: 0,
        out,
        members: Vec::new(),
        scratch: String::new(),
    };
    writer.value(MAX_DEPTH)?;
    writer.skip_whitespace();
    writer.flush();
    if writer.pos == json.len() {
        Ok(())
    } else {
        Err(NotJson)
    }
}

/// [`write_json`] over bytes (a body): text that is not UTF-8 is not JSON.
pub fn write_json_bytes(json: &[u8], out: &mut String) -> Result<(), NotJson> {
    write_json(std::str::from_utf8(json).map_err(|_| NotJson)?, out)
}

/// One object member written so far: its decoded name and where `"name":value` sits in the
/// output (positions as if every pending span were copied).
struct Member<'a> {
    name: Cow<'a, str>,
    start: usize,
    end: usize,
}

/// A recursive-descent pass over JSON text that writes the canonical form as it reads.
///
/// Most of a compact body is its own canonical form, so the input is not copied token by
/// token: the text from `span` to `pos` is pending (canonical as it stands) and is copied in one
/// piece when something must change (whitespace dropped, an escape rewritten, a number
/// normalised, an object reordered). An object whose members came out of order is reordered by
/// moving its members' finished text (one copy, no re-reading). The module is built for size
/// (`opt-level = "z"`, which inlines almost nothing), hence the explicit `inline(always)` on the
/// per-byte helpers.
struct RawWriter<'a, 'o> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Start of the pending input: `src[span..pos]` is canonical and not yet in `out`.
    span: usize,
    out: &'o mut String,
    /// The members of every object being written, innermost last (one allocation per key).
    members: Vec<Member<'a>>,
    /// Where an out-of-order object's members wait while they are rewritten in order.
    scratch: String,
}

impl<'a> RawWriter<'a, '_> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The output position `pos` stands for (pending input included).
    #[inline(always)]
    fn out_len(&self) -> usize {
        self.out.len() + (self.pos - self.span)
    }

    /// Copies the pending input up to `pos`.
    #[inline(always)]
    fn flush(&mut self) {
        if self.span < self.pos {
            self.out.push_str(&self.src[self.span..self.pos]);
        }
        self.span = self.pos;
    }

    /// JSON whitespace, as serde_json reads it: dropped.
    #[inline(always)]
    fn skip_whitespace(&mut self) {
        if let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.drop_whitespace();
        }
    }

    fn drop_whitespace(&mut self) {
        self.flush();
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
        self.span = self.pos;
    }

    fn value(&mut self, depth: u8) -> Result<(), NotJson> {
        self.skip_whitespace();
        match self.peek().ok_or(NotJson)? {
            b'{' => self.object(depth.checked_sub(1).filter(|d| *d > 0).ok_or(NotJson)?),
            b'[' => self.array(depth.checked_sub(1).filter(|d| *d > 0).ok_or(NotJson)?),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(NotJson),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), NotJson> {
        let mut i = 0;
        while i < word.len() {
            if self.bytes.get(self.pos + i) != Some(&word[i]) {
                return Err(NotJson);
            }
            i += 1;
        }
        self.pos += word.len();
        Ok(())
    }

    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number token (JSON's grammar). Integers of up to 18 digits are their own canonical
    /// form (`-0` is `0`); every other number goes through serde_json and [`write()`], so its
    /// value and its refusal (out of range) are serde_json's.
    fn number(&mut self) -> Result<(), NotJson> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_digits = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(NotJson),
        };
        let mut plain = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(NotJson);
            }
            plain = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(NotJson);
            }
            plain = false;
        }
        let negative_zero = self.pos - start == 2 && self.bytes[start] == b'-';
        if plain && int_digits <= 18 && !negative_zero {
            // Fits an i64 and a u64: serde_json reads it as one, `write` prints it back as is.
            return Ok(());
        }
        let end = self.pos;
        self.pos = start;
        self.flush();
        let value: Value = serde_json::from_str(&self.src[start..end]).map_err(|_| NotJson)?;
        write(&value, self.out);
        self.pos = end;
        self.span = end;
        Ok(())
    }

    /// A string, decoded and written with the canonical escapes; `true` when the input held an
    /// escape (its decoded text then differs from the bytes between the quotes).
    fn string(&mut self) -> Result<bool, NotJson> {
        let bytes = self.bytes;
        let mut pos = self.pos + 1; // past the opening quote
        let mut escaped = false;
        loop {
            pos = plain_run(bytes, pos);
            let b = *bytes.get(pos).ok_or(NotJson)?;
            if b == b'"' {
                self.pos = pos + 1;
                return Ok(escaped);
            }
            if b == b'\\' {
                self.pos = pos;
                self.flush();
                self.pos = pos + 1;
                let c = self.escape()?;
                let mut utf8 = [0; 4];
                write_string_body(c.encode_utf8(&mut utf8), self.out);
                self.span = self.pos;
                pos = self.pos;
                escaped = true;
            } else {
                return Err(NotJson); // serde_json refuses raw control characters
            }
        }
    }

    /// The character an escape stands for (after its `\`); a surrogate must be the first half
    /// of a `\uD8xx\uDCxx` pair, as serde_json requires of a string.
    fn escape(&mut self) -> Result<char, NotJson> {
        let c = match self.peek().ok_or(NotJson)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                self.pos += 1;
                let first = self.hex4()?;
                let code = match first {
                    0xD800..=0xDBFF => {
                        if self.peek() != Some(b'\\') || self.bytes.get(self.pos + 1) != Some(&b'u')
                        {
                            return Err(NotJson);
                        }
                        self.pos += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(NotJson);
                        }
                        0x1_0000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(NotJson),
                    _ => first,
                };
                return char::from_u32(code).ok_or(NotJson);
            }
            _ => return Err(NotJson),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, NotJson> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = match self.peek().ok_or(NotJson)? {
                b @ b'0'..=b'9' => b - b'0',
                b @ b'a'..=b'f' => b - b'a' + 10,
                b @ b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(NotJson),
            };
            n = n * 16 + u32::from(digit);
            self.pos += 1;
        }
        Ok(n)
    }

    fn array(&mut self, depth: u8) -> Result<(), NotJson> {
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(NotJson),
            }
        }
    }

    fn object(&mut self, depth: u8) -> Result<(), NotJson> {
        self.pos += 1;
        let content = self.out_len();
        let base = self.members.len();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut in_order = true;
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(NotJson);
            }
            let start = self.out_len();
            let name_start = self.pos;
            let name = if self.string()? {
                // An escaped name (rare): decoded by serde_json, for the sort.
                Cow::Owned(
                    serde_json::from_str::<String>(&self.src[name_start..self.pos])
                        .map_err(|_| NotJson)?,
                )
            } else {
                Cow::Borrowed(&self.src[name_start + 1..self.pos - 1])
            };
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(NotJson);
            }
            self.pos += 1;
            self.value(depth)?;
            if let Some(previous) = self.members[base..].last() {
                in_order &= previous.name.as_bytes() < name.as_bytes();
            }
            let end = self.out_len();
            self.members.push(Member { name, start, end });
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                _ => return Err(NotJson),
            }
        }
        if !in_order {
            self.flush();
            self.reorder(base, content);
        }
        self.members.truncate(base);
        self.pos += 1; // the `}`, pending
        Ok(())
    }

    /// Rewrites the members of the object whose text starts at `content` in name order; of
    /// members with one name the last wins (as in a serde_json map).
    fn reorder(&mut self, base: usize, content: usize) {
        let members = &mut self.members[base..];
        members.sort_unstable_by(|a, b| {
            a.name
                .as_bytes()
                .cmp(b.name.as_bytes())
                .then(a.start.cmp(&b.start))
        });
        self.scratch.clear();
        self.scratch.push_str(&self.out[content..]);
        self.out.truncate(content);
        let mut first = true;
        for (i, member) in members.iter().enumerate() {
            if members
                .get(i + 1)
                .is_some_and(|next| next.name == member.name)
            {
                continue; // a later member of the same name replaces this one
            }
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out
                .push_str(&self.scratch[member.start - content..member.end - content]);
        }
    }
}

/// A double as ECMAScript's `Number.prototype.toString` writes it (RFC 8785 §3.2.2.3): the
/// shortest digits that round-trip, plain notation for exponents in [-6, 21), else `d.ddde±x`.
fn write_double(x: f64, out: &mut String) {
    if x == 0.0 || !x.is_finite() {
        // JSON cannot hold NaN or infinities; -0 is 0.
        out.push('0');
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    // `{:e}` prints the shortest round-trip digits: "1.2345e-7", "5e-324".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exponent + 1; // x = 0.d1d2…dk × 10^n
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n(
            '0',
            usize::try_from(n - k).unwrap_or(0),
        ));
    } else if 0 < n && n <= 21 {
        let split = usize::try_from(n).unwrap_or(0);
        out.push_str(&digits[..split]);
        out.push('.');
        out.push_str(&digits[split..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', usize::try_from(-n).unwrap_or(0)));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_written_as_ecmascript_writes_doubles() {
        let cases: [(&str, &str); 16] = [
            ("0", "0"),
            ("0.0", "0"),
            ("-0.0", "0"),
            ("1.0", "1"),
            ("1e2", "100"),
            ("0.7", "0.7"),
            ("-1.5", "-1.5"),
            ("1e21", "1e+21"),
            ("123456789012345678901234", "1.2345678901234569e+23"),
            ("1e-6", "0.000001"),
            ("1e-7", "1e-7"),
            ("1.5e-7", "1.5e-7"),
            ("5e-324", "5e-324"),
            ("18446744073709551615", "18446744073709551615"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("0.30000000000000004", "0.30000000000000004"),
        ];
        for (input, canonical) in cases {
            let value: Value = serde_json::from_str(input).unwrap();
            assert_eq!(to_string(&value), canonical, "{input}");
        }
    }

    #[test]
    fn a_plain_run_ends_at_the_first_quote_backslash_or_control_byte() {
        let naive = |bytes: &[u8], from: usize| {
            (from..bytes.len())
                .find(|&i| bytes[i] < 0x20 || bytes[i] == b'"' || bytes[i] == b'\\')
                .unwrap_or(bytes.len())
        };
        // Every byte value at every position of a run, around the 8-byte steps; and after
        // bytes whose subtraction borrows (0x00, 0x80, 0xff) so a false hit would show.
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    for filler in [b'a', 0x80, 0xff, 0x21, 0x23, 0x5b, 0x5d] {
                        let mut bytes = vec![filler; len];
                        bytes[at] = b;
                        for from in [0, 1.min(len), at] {
                            assert_eq!(
                                plain_run(&bytes, from),
                                naive(&bytes, from),
                                "{bytes:?} from {from}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn objects_are_sorted_and_strings_minimally_escaped() {
        let value = json!({"b": [1, "x\"\\\n\u{1}é/"], "a": {"z": null, "y": true}});
        assert_eq!(
            to_string(&value),
            r#"{"a":{"y":true,"z":null},"b":[1,"x\"\\\n\u0001é/"]}"#
        );
    }
}
