//! The translation table: every fixture case, request in -> upstream request expected ->
//! upstream answer -> client answer expected, for every provider pair.
//!
//! `BLESS=1 cargo test -p tollgate-core --test translation_fixtures` writes missing or changed
//! expected client answers (review the diff before committing).

mod common;

use common::{all_cases, Case};
use serde_json::Value;
use tollgate_core::config::ProviderKind;
use tollgate_core::errors::translate_error_body;
use tollgate_core::translate::{translate_json_response, upstream_request, StreamTranslator};

fn json(bytes: &[u8], what: &str) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn blessing() -> bool {
    std::env::var_os("BLESS").is_some()
}

/// Translates a whole SSE answer, fed in the given pieces.
fn translate_stream(case: &Case, model: &str, pieces: &[&[u8]]) -> Vec<u8> {
    let Some(mut translator) =
        StreamTranslator::for_provider(case.provider.kind, &case.context(model))
    else {
        return pieces.concat(); // OpenAI-compatible streams are relayed as they are
    };
    let mut out = Vec::new();
    for piece in pieces {
        translator.push(piece, &mut out);
    }
    translator.finish(&mut out);
    out
}

/// The upstream model and the answer the client gets for one case.
fn client_answer(case: &Case) -> (String, Vec<u8>, &'static str) {
    let request = case.read("request.json").unwrap();
    let upstream =
        upstream_request(&case.provider, &request).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    if let Some(status) = case.read_text("upstream_status.txt") {
        let status: u16 = status.trim().parse().unwrap();
        let body = case
            .read("upstream_response.json")
            .or_else(|| case.read("upstream_response.txt"))
            .unwrap();
        return (
            upstream.model,
            translate_error_body(case.provider.kind, status, &body),
            "client_response.json",
        );
    }
    if let Some(body) = case.read("upstream_response.json") {
        let answer =
            translate_json_response(case.provider.kind, &body, &case.context(&upstream.model))
                .unwrap_or_else(|e| panic!("{}: {e}", case.name))
                .unwrap_or(body);
        return (upstream.model, answer, "client_response.json");
    }
    let sse = case
        .read("upstream_response.sse")
        .unwrap_or_else(|| panic!("{}: no upstream response", case.name));
    let model = upstream.model.clone();
    (
        upstream.model,
        translate_stream(case, &model, &[&sse]),
        "client_response.sse",
    )
}

#[test]
fn requests_become_the_expected_upstream_requests() {
    for case in all_cases() {
        let request = case.read("request.json").unwrap();
        let upstream = upstream_request(&case.provider, &request)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let expected_path = case.read_text("upstream_path.txt").unwrap();
        assert_eq!(upstream.path, expected_path.trim(), "{}", case.name);
        let body = upstream.body.unwrap_or_else(|| request.clone());
        let expected = case.read("upstream_request.json").unwrap();
        if case.provider.kind == ProviderKind::Openai {
            // Relayed bodies keep the client's bytes, except the fields the gateway sets.
            assert_eq!(
                String::from_utf8_lossy(&body).trim_end(),
                String::from_utf8_lossy(&expected).trim_end(),
                "{}",
                case.name
            );
        } else {
            assert_eq!(
                json(&body, &case.name),
                json(&expected, &case.name),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn upstream_answers_become_the_expected_client_answers() {
    for case in all_cases() {
        let (_, answer, expected_file) = client_answer(&case);
        let expected = case.read(expected_file);
        let same = match (&expected, expected_file.ends_with(".json")) {
            (Some(expected), true) => {
                serde_json::from_slice::<Value>(expected).ok()
                    == serde_json::from_slice(&answer).ok()
            }
            (Some(expected), false) => expected == &answer,
            (None, _) => false,
        };
        if blessing() && !same {
            std::fs::write(case.path(expected_file), &answer).unwrap();
            continue;
        }
        let expected = expected.unwrap_or_else(|| panic!("{}: missing {expected_file}", case.name));
        if expected_file.ends_with(".json") {
            assert_eq!(
                json(&answer, &case.name),
                json(&expected, &case.name),
                "{}",
                case.name
            );
        } else {
            assert_eq!(
                String::from_utf8_lossy(&answer),
                String::from_utf8_lossy(&expected),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn streams_translate_the_same_whatever_the_split_point() {
    for case in all_cases() {
        let Some(sse) = case.read("upstream_response.sse") else {
            continue;
        };
        let (model, whole, _) = client_answer(&case);
        for split in 0..=sse.len() {
            let (a, b) = sse.split_at(split);
            assert_eq!(
                translate_stream(&case, &model, &[a, b]),
                whole,
                "{} split at {split}",
                case.name
            );
        }
        let bytes: Vec<&[u8]> = sse.chunks(1).collect();
        assert_eq!(
            translate_stream(&case, &model, &bytes),
            whole,
            "{} byte by byte",
            case.name
        );
    }
}

#[test]
fn translated_streams_are_valid_openai_event_streams() {
    for case in all_cases() {
        if case.read("upstream_response.sse").is_none()
            || case.read("upstream_status.txt").is_some()
        {
            continue;
        }
        let (_, answer, _) = client_answer(&case);
        let text = String::from_utf8(answer).unwrap();
        for event in text.split_terminator("\n\n") {
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("{}: {event:?}", case.name));
            if data != "[DONE]" {
                let chunk = json(data.as_bytes(), &case.name);
                assert!(
                    chunk.get("object") == Some(&Value::from("chat.completion.chunk"))
                        || chunk.get("error").is_some(),
                    "{}: {data}",
                    case.name
                );
            }
        }
    }
}
