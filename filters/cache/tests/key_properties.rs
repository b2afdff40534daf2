//! Property tests of the cache key: it changes if and only if a keyed input changes. Keyed:
//! the configured headers and JSON paths (the guide's Authorization, `$.model`, `$.messages`,
//! `$.temperature`), route, backend, stream, caller. Not keyed: every other body member, the
//! body's formatting (whitespace, member order, `0` vs `0.0`), header name case.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tollgate_cache::key::CacheKey;
use tollgate_cache::policy::ClientDirectives;
use tollgate_cache::response::{RequestInput, ResponseCache};
use tollgate_core::config::cache::{CacheMode, KeyConfig, ResponseCachePolicy};
use tollgate_core::facts::Caller;

/// One request, as its parts.
#[derive(Debug, Clone)]
struct Request {
    model: String,
    messages: Vec<(String, String)>,
    /// `None`: absent; `Some(None)`: null.
    temperature: Option<Option<u8>>,
    unkeyed: Option<String>,
    authorization: Option<String>,
    route: Option<String>,
    backend: Option<String>,
    stream: bool,
    jwt_sub: Option<String>,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 é\"\\\\\n]{0,12}"
}

fn request() -> impl Strategy<Value = Request> {
    (
        text(),
        prop::collection::vec(
            (
                prop::sample::select(vec!["user", "system", "assistant"]),
                text(),
            ),
            1..4,
        ),
        prop::option::of(prop::option::of(0u8..3)),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of("[a-z-]{1,8}/[0-9]/[0-9]"),
        prop::option::of("[a-z-]{1,8}"),
        any::<bool>(),
        prop::option::of(text()),
    )
        .prop_map(
            |(
                model,
                messages,
                temperature,
                unkeyed,
                authorization,
                route,
                backend,
                stream,
                jwt_sub,
            )| Request {
                model,
                messages: messages
                    .into_iter()
                    .map(|(r, c)| (r.to_string(), c))
                    .collect(),
                temperature,
                unkeyed,
                authorization,
                route,
                backend,
                stream,
                jwt_sub,
            },
        )
}

/// The body's members in the given order; temperatures spelled as `spell` says.
fn body(r: &Request, reversed: bool, float_spelling: bool, pretty: bool) -> String {
    let mut members: Vec<(&str, Value)> = vec![
        ("model", Value::from(r.model.as_str())),
        (
            "messages",
            Value::Array(
                r.messages
                    .iter()
                    .map(|(role, content)| json!({"role": role, "content": content}))
                    .collect(),
            ),
        ),
        ("stream", Value::Bool(r.stream)),
    ];
    if let Some(u) = &r.unkeyed {
        members.push(("user", Value::from(u.as_str())));
    }
    if reversed {
        members.reverse();
    }
    let sep = if pretty { " ,\n  " } else { "," };
    let mut parts: Vec<String> = members
        .iter()
        .map(|(k, v)| {
            let v = if pretty {
                serde_json::to_string_pretty(v).unwrap()
            } else {
                v.to_string()
            };
            format!("\"{k}\":{v}")
        })
        .collect();
    match r.temperature {
        None => {}
        Some(None) => parts.push("\"temperature\":null".into()),
        Some(Some(t)) if float_spelling => parts.push(format!("\"temperature\":{t}.0")),
        Some(Some(t)) => parts.push(format!("\"temperature\":{t}")),
    }
    format!("{{{}}}", parts.join(sep))
}

fn cache() -> ResponseCache {
    let policy = ResponseCachePolicy {
        mode: CacheMode::Aggressive,
        key: KeyConfig {
            headers: vec!["Authorization".into()],
            json_paths: vec![
                "$.model".into(),
                "$.messages".into(),
                "$.temperature".into(),
            ],
        },
        ..Default::default()
    };
    ResponseCache::new(&policy, "p").unwrap()
}

fn key_of(r: &Request, body_text: &str, header_name: &str) -> CacheKey {
    let cache = cache();
    let mut headers = BTreeMap::new();
    if let Some(a) = &r.authorization {
        headers.insert(header_name.to_ascii_lowercase(), a.as_bytes().to_vec());
    }
    let caller = Caller {
        jwt_subject: r.jwt_sub.clone(),
        ..Default::default()
    };
    cache
        .key_inputs(&RequestInput {
            route: r.route.as_deref(),
            backend: r.backend.as_deref(),
            stream: r.stream,
            caller: &caller,
            headers: &headers,
            directives: ClientDirectives::default(),
            body: body_text.as_bytes(),
        })
        .unwrap()
        .key()
}

fn key(r: &Request) -> CacheKey {
    key_of(r, &body(r, false, false, false), "authorization")
}

/// Changes one keyed input to a value it did not have.
fn mutate_keyed(r: &Request, which: u8) -> Request {
    let mut m = r.clone();
    let other = |o: &Option<String>| match o {
        Some(s) => Some(format!("{s}~")),
        None => Some(String::new()),
    };
    match which % 9 {
        0 => m.model.push('x'),
        1 => m.messages.push(("user".into(), "more".into())),
        2 => {
            m.messages[0].1.push('!');
        }
        3 => {
            m.temperature = match r.temperature {
                None => Some(None),
                Some(None) => Some(Some(0)),
                Some(Some(t)) => Some(Some(t + 1)),
            }
        }
        4 => m.authorization = other(&r.authorization),
        5 => m.route = other(&r.route),
        6 => {
            m.backend = if r.backend.is_some() {
                None
            } else {
                Some("b".into())
            }
        }
        7 => m.stream = !r.stream,
        _ => m.jwt_sub = other(&r.jwt_sub),
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn formatting_member_order_number_spelling_and_header_case_never_change_the_key(
        r in request(), reversed: bool, floats: bool, pretty: bool,
    ) {
        let reformatted = key_of(&r, &body(&r, reversed, floats, pretty), "AUTHORIZATION");
        prop_assert_eq!(key(&r), reformatted);
    }

    #[test]
    fn an_unkeyed_member_never_changes_the_key(r in request(), u in text()) {
        let mut other = r.clone();
        other.unkeyed = Some(format!("{}{u}#", r.unkeyed.clone().unwrap_or_default()));
        prop_assert_eq!(key(&r), key(&other));
    }

    #[test]
    fn every_keyed_input_changes_the_key(r in request(), which in 0u8..9) {
        let m = mutate_keyed(&r, which);
        prop_assert_ne!(key(&r), key(&m), "mutation {} left the key unchanged", which % 9);
    }

    #[test]
    fn two_requests_share_a_key_exactly_when_their_keyed_inputs_agree(a in request(), b in request()) {
        let keyed = |r: &Request| {
            let mut m = Map::new();
            m.insert("model".into(), Value::from(r.model.clone()));
            m.insert("messages".into(), json!(r.messages));
            m.insert("temperature".into(), json!(r.temperature));
            (m, r.authorization.clone(), r.route.clone(), r.backend.clone(), r.stream, r.jwt_sub.clone())
        };
        prop_assert_eq!(key(&a) == key(&b), keyed(&a) == keyed(&b));
    }
}
