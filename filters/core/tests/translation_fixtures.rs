//! The translation table: every fixture case, request in -> upstream request expected ->
//! upstream answer -> client answer expected, for every provider pair.
//!
//! `BLESS=1 cargo test -p tollgate-core --test translation_fixtures` writes missing or changed
//! expected client answers (review the diff before committing).

mod common;

// The same table on wasm32 (scripts/test runs it with wasm-bindgen-test under Node).
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use common::{all_cases, Case};
use serde_json::Value;
use tollgate_core::config::ProviderKind;
use tollgate_core::errors::translate_error_body;
use tollgate_core::translate::{
    plan_response, translated_json_or_502, upstream_request, ResponsePlan, StreamTranslator,
};

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

/// The provider's answer of a case: status, content type, body.
pub fn upstream_answer(case: &Case) -> (u16, &'static str, Vec<u8>) {
    let status = case
        .read_text("upstream_status.txt")
        .map_or(200, |s| s.trim().parse().unwrap());
    match (
        case.read("upstream_response.json"),
        case.read("upstream_response.sse"),
    ) {
        (Some(body), _) => (status, "application/json", body),
        (None, Some(sse)) => (status, "text/event-stream", sse),
        (None, None) => (
            status,
            "text/html",
            case.read("upstream_response.txt")
                .unwrap_or_else(|| panic!("{}: no upstream response", case.name)),
        ),
    }
}

/// The upstream model and the answer the client gets for one case (status, body, the file
/// holding the expected body), decided as the adapter decides it ([`plan_response`]).
fn client_answer(case: &Case) -> (String, u16, Vec<u8>, &'static str) {
    let request = case.read("request.json").unwrap();
    let upstream =
        upstream_request(&case.provider, &request).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let (status, content_type, body) = upstream_answer(case);
    let model = upstream.model.clone();
    let context = case.context(&model);
    let json_file = "client_response.json";
    let (status, answer, file) =
        match plan_response(&case.provider, status, Some(content_type.as_bytes()), None) {
            ResponsePlan::Relay if content_type == "text/event-stream" => {
                (status, body, "client_response.sse")
            }
            ResponsePlan::Relay => (status, body, json_file),
            ResponsePlan::TranslateError => (
                status,
                translate_error_body(case.provider.kind, status, &body),
                json_file,
            ),
            ResponsePlan::TranslateJson => {
                let (status, answer) = translated_json_or_502(case.provider.kind, &body, &context);
                (status, answer, json_file)
            }
            ResponsePlan::Stream => (
                status,
                translate_stream(case, &model, &[&body]),
                "client_response.sse",
            ),
            ResponsePlan::Replace { status, error } => (status, error, json_file),
        };
    (upstream.model, status, answer, file)
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
        let (_, status, answer, expected_file) = client_answer(&case);
        let expected_status = case
            .read_text("client_status.txt")
            .map_or_else(|| upstream_answer(&case).0, |s| s.trim().parse().unwrap());
        assert_eq!(status, expected_status, "{}: client status", case.name);
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
        let (model, _, whole, _) = client_answer(&case);
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
        let (_, _, answer, _) = client_answer(&case);
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
