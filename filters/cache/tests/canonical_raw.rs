//! The key path's raw JSON readers against serde_json, whose behaviour they replace:
//!
//! - the canonical writer (`canonical::write_json`, straight from JSON text) against the value
//!   writer (`canonical::to_string` over the `serde_json::Value` serde_json reads from the same
//!   text): byte for byte the same canonical text for any JSON, however it is spelled
//!   (whitespace, member order, string escapes, number notation);
//! - the top-level split (`key::top_level`) against serde_json's `BTreeMap<String, &RawValue>`:
//!   the same members and raw slices.
//!
//! Both refuse exactly what serde_json refuses: a refusal is what makes a request bypass the
//! cache, so a difference would change which requests are cached.

use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use tollgate_cache::canonical::{to_string, write_json, write_json_bytes};
use tollgate_cache::key::top_level;

/// A JSON value; numbers and strings are spelled only when rendered.
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    /// Names are distinct where a map made them (`json()`), repeated where a test wants it.
    Object(Vec<(String, Json)>),
}

/// What serde_json makes of `text`, written by the value writer; `None`: refused.
fn by_value(text: &str) -> Option<String> {
    serde_json::from_str::<Value>(text)
        .ok()
        .map(|v| to_string(&v))
}

/// The top-level members serde_json reads from `body` (what the key path read before).
fn top_by_serde(body: &str) -> Option<BTreeMap<String, String>> {
    serde_json::from_slice::<BTreeMap<String, &RawValue>>(body.as_bytes())
        .ok()
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.get().to_string()))
                .collect()
        })
}

/// The top-level members `top_level` splits `body` into, each as `get` finds it.
fn top_by_scan(body: &str) -> Option<BTreeMap<String, String>> {
    top_level(body.as_bytes()).ok().map(|top| {
        top.to_map()
            .into_keys()
            .map(|name| (name.to_string(), top.get(name).unwrap().to_string()))
            .collect()
    })
}

/// A body: a top-level object whose names may repeat.
fn body() -> impl Strategy<Value = Json> {
    prop::collection::vec((text(), json()), 0..6).prop_map(|mut members| {
        if members.len() > 2 {
            members[2].0 = members[0].0.clone(); // a repeated name: the last one counts
        }
        Json::Object(members)
    })
}

/// What the raw writer makes of `text`; `None`: refused.
fn by_raw(text: &str) -> Option<String> {
    let mut out = String::new();
    write_json(text, &mut out).ok().map(|()| out)
}

fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range(' ', '~'),
        2 => proptest::char::range('\u{0}', '\u{1f}'),
        2 => prop::sample::select(vec![
            '"', '\\', '/', 'é', '\u{7f}', '\u{80}', '\u{2028}', '\u{fffd}', '\u{ffff}',
            '\u{10000}', '😀', '\u{10ffff}',
        ]),
        1 => any::<char>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 0..8).prop_map(|c| c.into_iter().collect())
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("JSON has no NaN or infinities", |x| x.is_finite()),
        -1e6..1e6f64,
        prop::sample::select(vec![
            0.1,
            -0.0,
            0.0,
            1e300,
            -1e300,
            1e21,
            1e20,
            1e-6,
            1e-7,
            5e-324,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            0.30000000000000004,
            9007199254740993.0,
            123456789.125,
        ]),
    ]
}

fn int() -> impl Strategy<Value = i128> {
    prop_oneof![
        any::<i64>().prop_map(i128::from),
        any::<u64>().prop_map(i128::from),
        -1000i128..1000,
        prop::sample::select(vec![
            0,
            -1,
            i128::from(i64::MIN),
            i128::from(u64::MAX),
            1 << 53,
            (1 << 53) + 1,
            999_999_999_999_999_999,
            -999_999_999_999_999_999,
            1_000_000_000_000_000_000,
        ]),
    ]
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        int().prop_map(Json::Int),
        float().prop_map(Json::Float),
        text().prop_map(Json::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// The choices of one spelling (SplitMix64: a seed gives the same spelling every time).
struct Spelling(u64);

impl Spelling {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len())]
    }

    fn whitespace(&mut self, out: &mut String) {
        out.push_str(self.pick(&["", "", "", " ", "\n", "\t", "\r\n", "  \n\t "]));
    }

    fn string(&mut self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            let must_escape = c == '"' || c == '\\' || c < ' ';
            if !must_escape && self.below(3) > 0 {
                out.push(c);
                continue;
            }
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            match short {
                Some(escape) if self.below(2) == 0 => out.push_str(escape),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        if self.below(2) == 0 {
                            out.push_str(&format!("\\u{unit:04x}"));
                        } else {
                            out.push_str(&format!("\\u{unit:04X}"));
                        }
                    }
                }
            }
        }
        out.push('"');
    }

    /// One of the spellings of an integer's value (the fraction and exponent forms only where a
    /// double holds it exactly, so every spelling is one value).
    fn int(&mut self, i: i128, out: &mut String) {
        let exact = i.unsigned_abs() <= 1 << 53;
        let spelled = match (exact, self.below(6)) {
            (true, 1) => format!("{i}.0"),
            (true, 2) => format!("{i}e0"),
            (true, 3) => format!("{i}.000E+0"),
            (true, 4) if i != 0 => format!("{i}0e-1"),
            (true, 5) if i == 0 => self.pick(&["-0", "-0.0", "0e5", "-0E-3"]).to_string(),
            _ => i.to_string(),
        };
        out.push_str(&spelled);
    }

    /// One of the spellings of a double that read back as it (Rust prints the shortest
    /// round-trip digits in each notation).
    fn float(&mut self, x: f64, out: &mut String) {
        let spelled = match self.below(4) {
            0 => format!("{x:e}"),
            1 => format!("{x:E}"),
            2 => format!("{x}"),
            _ => format!("{x:?}"),
        };
        // `{x}` and `{x:?}` of an integral double may lack a fraction: still one value.
        out.push_str(&spelled);
    }

    fn json(&mut self, value: &Json, out: &mut String) {
        self.whitespace(out);
        match value {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => self.int(*i, out),
            Json::Float(x) => self.float(*x, out),
            Json::Str(s) => self.string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.whitespace(out);
                        out.push(',');
                    }
                    self.json(item, out);
                    self.whitespace(out);
                }
                if items.is_empty() {
                    self.whitespace(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                let mut order: Vec<usize> = (0..members.len()).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, self.below(i + 1));
                }
                out.push('{');
                for (n, &i) in order.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    self.whitespace(out);
                    self.string(&members[i].0, out);
                    self.whitespace(out);
                    out.push(':');
                    self.json(&members[i].1, out);
                    self.whitespace(out);
                }
                if members.is_empty() {
                    self.whitespace(out);
                }
                out.push('}');
            }
        }
        self.whitespace(out);
    }
}

fn spell(value: &Json, seed: u64) -> String {
    let mut out = String::new();
    Spelling(seed).json(value, &mut out);
    out
}

/// Edits that make near-JSON: cut, doubled or foreign pieces, broken escapes and surrogates.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "\\",
    "\\u",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\x",
    "0",
    "-",
    ".",
    "e",
    "E+",
    "01",
    "1e400",
    "-0",
    "t",
    "true",
    "nul",
    "null",
    " ",
    "\u{0}",
    "\u{1f}",
    "\u{7f}",
    "é",
    "😀",
    "\u{feff}",
];

fn mutate(text: &str, seed: u64) -> String {
    let mut spelling = Spelling(seed);
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=spelling.below(3) {
        let at = spelling.below(chars.len() + 1);
        match spelling.below(3) {
            0 if at < chars.len() => {
                let len = 1 + spelling.below(3).min(chars.len() - at - 1);
                chars.drain(at..at + len);
            }
            1 => {
                let piece = spelling.pick(PIECES);
                chars.splice(at..at, piece.chars());
            }
            _ => {
                let end = (at + 1 + spelling.below(6)).min(chars.len());
                let copy: Vec<char> = chars[at.min(end)..end].to_vec();
                chars.splice(at..at, copy);
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_raw_writer_writes_what_the_value_writer_writes(value in json(), seed: u64) {
        let text = spell(&value, seed);
        let expected = by_value(&text);
        prop_assert!(expected.is_some(), "the generator made text serde_json refuses: {:?}", text);
        prop_assert_eq!(by_raw(&text), expected, "text: {:?}", text);
    }

    #[test]
    fn no_spelling_of_a_value_changes_its_canonical_text(value in json(), a: u64, b: u64) {
        let (first, second) = (spell(&value, a), spell(&value, b));
        prop_assert_eq!(by_raw(&first), by_raw(&second), "{:?} vs {:?}", first, second);
    }

    #[test]
    fn the_top_level_split_finds_what_serde_json_finds(value in body(), seed: u64) {
        let text = spell(&value, seed);
        let expected = top_by_serde(&text);
        prop_assert!(expected.is_some(), "the generator made text serde_json refuses: {:?}", text);
        prop_assert_eq!(top_by_scan(&text), expected, "text: {:?}", text);
    }

    #[test]
    fn a_near_json_body_is_split_exactly_when_serde_json_splits_it(
        value in body(), seed: u64, edit: u64,
    ) {
        let text = mutate(&spell(&value, seed), edit);
        prop_assert_eq!(top_by_scan(&text), top_by_serde(&text), "text: {:?}", text);
    }

    #[test]
    fn near_json_is_refused_exactly_when_serde_json_refuses_it(
        value in json(), seed: u64, edit: u64,
    ) {
        let text = mutate(&spell(&value, seed), edit);
        prop_assert_eq!(by_raw(&text), by_value(&text), "text: {:?}", text);
    }
}

#[test]
fn edge_cases_are_written_and_refused_as_serde_json_reads_them() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    let mut cases: Vec<String> = [
        // numbers
        "0",
        "-0",
        "0.0",
        "-0.0",
        "0e0",
        "-0E+0",
        "1e300",
        "0.1",
        "-1.5e-7",
        "1e21",
        "1e400",
        "-1e400",
        "1e-400",
        "0e99999999999999999999",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "999999999999999999",
        "-999999999999999999",
        "1000000000000000000",
        "01",
        "-",
        "1.",
        ".5",
        "+1",
        "1e",
        "1e+",
        "-01",
        "1.5E3",
        "9007199254740993",
        "9007199254740993.0",
        // strings
        r#""""#,
        r#""\u00e9""#,
        r#""é""#,
        r#""\/""#,
        r#""\u0000\u001F\u007f""#,
        r#""\b\f\n\r\t\"\\""#,
        r#""\ud83d\ude00""#,
        r#""\uD83D\uDE00""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud800\u0041""#,
        r#""\ud800\n""#,
        r#""\ud800\ud800\udc00""#,
        r#""\u12""#,
        r#""\u12g4""#,
        r#""\x""#,
        "\"\u{1}\"",
        "\"\u{7f}\"",
        r#""abc"#,
        // objects and arrays
        r#"{"b":1,"a":2}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"b":2,"a":3}"#,
        r#"{"\u0061":1,"a":2}"#,
        r#"{"a\"":1,"a":2,"a!":3}"#,
        r#"{"é":1,"z":2,"\u00e9":3}"#,
        r#"{"b":{"d":1,"c":[{"f":1,"e":2}]},"a":null}"#,
        "{}",
        "[]",
        "[ ]",
        "{ }",
        "[1,]",
        r#"{"a":1,}"#,
        r#"{"a"}"#,
        r#"{"a":}"#,
        r#"{a:1}"#,
        "[1 2]",
        "{\"a\":1 \"b\":2}",
        // literals and framing
        "true",
        "false",
        "null",
        "nul",
        "truex",
        "[true,false,null]",
        "",
        " ",
        " 1 ",
        "1 2",
        "\u{feff}1",
        "\t\n\r [1]\r\n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in [1, 126, 127, 128, 129, 300] {
        cases.push(deep(n));
        cases.push(deep_objects(n));
    }
    for text in &cases {
        assert_eq!(by_raw(text), by_value(text), "text: {text:?}");
    }
    assert_eq!(by_raw(&deep(127)).as_deref(), Some(deep(127).as_str()));
    assert_eq!(by_raw(&deep(128)), None, "serde_json's nesting limit");
}

#[test]
fn the_top_level_split_checks_values_as_loosely_as_serde_json_and_names_as_strictly() {
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    let cases = [
        r#"{"a":"\ud800"}"#,     // a lone surrogate in a value: read as a raw value
        r#"{"a":{"\udc00":1}}"#, // ... also in a nested name
        r#"{"\ud800":1}"#,       // in a top-level name: refused
        r#"{"\u0061":1,"a":2}"#, // one name twice, spelled two ways
        r#"{"a":1,"b":[1,{"c":[]}],"a":{"x":null}}"#,
        r#"{"a":1e400}"#, // out of range, but a raw value only checks the grammar
        r#"{"a":01}"#,
        r#"{"a":-}"#,
        r#"{"a":1.}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\u12"}"#,
        "{\"a\":\"\u{1}\"}",
        r#"{"a":tru}"#,
        r#"{"a":[1,]}"#,
        r#"{"a":{"b"}}"#,
        r#"{"a":{,}}"#,
        r#"{"a":[}"#,
        r#"{"a":{]}"#,
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{a:1}"#,
        "{}",
        " { } ",
        "[1]",
        "1",
        "\"a\"",
        "",
        "{",
        "{}x",
        "{} {}",
        "\u{feff}{}",
        r#"{"a":[[[]]]}"#,
        r#"{"a":{"b":{"c":{}}}}"#,
        r#"{"a" : [ 1 , { "b" : 2 } ] , "c" : "d" }"#,
    ];
    for text in cases.iter().copied().chain([deep.as_str()]) {
        assert_eq!(top_by_scan(text), top_by_serde(text), "text: {text:?}");
    }
    assert!(
        top_by_scan(&deep).is_some(),
        "raw values have no depth limit"
    );
    assert!(top_by_scan(r#"{"\ud800":1}"#).is_none());
}

#[test]
fn duplicate_names_keep_the_last_value_and_escaped_names_sort_by_their_text() {
    assert_eq!(
        by_raw(r#"{"a":1,"b":2,"a":3}"#).as_deref(),
        Some(r#"{"a":3,"b":2}"#)
    );
    // `"` (0x22) sorts before `a`; its escape `\"` (0x5c) would not.
    assert_eq!(
        by_raw(r#"{"a":1,"\"":2}"#).as_deref(),
        Some(r#"{"\"":2,"a":1}"#)
    );
    assert_eq!(
        by_raw(r#"{ "temperature" : 0.0, "model" : "m", "messages" : [ {"role":"user","content":"h\u00e9"} ] }"#)
            .as_deref(),
        Some(r#"{"messages":[{"content":"hé","role":"user"}],"model":"m","temperature":0}"#)
    );
}

#[test]
fn a_body_that_is_not_utf8_is_refused() {
    let mut out = String::new();
    assert!(write_json_bytes(b"{\"a\":\"\xff\"}", &mut out).is_err());
    assert!(serde_json::from_slice::<Value>(b"{\"a\":\"\xff\"}").is_err());
    out.clear();
    write_json_bytes("{\"a\":\"é\"}".as_bytes(), &mut out).unwrap();
    assert_eq!(out, "{\"a\":\"é\"}");
}
