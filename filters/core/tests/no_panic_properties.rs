//! Property tests standing in for a short fuzzing run on stable: mutated fixture requests and
//! upstream streams never make the core panic, and whatever it accepts it rewrites into JSON.
//! (Longer runs: the cargo-fuzz targets in `fuzz/`.)

mod common;

use common::all_cases;
use proptest::prelude::*;
use tollgate_core::errors::translate_error_body;
use tollgate_core::request::inspect_chat_request;
use tollgate_core::translate::{translate_json_response, upstream_request, StreamTranslator};

/// Applies byte edits (position, new byte, whether to insert instead of overwrite).
fn mutate(original: &[u8], edits: &[(usize, u8, bool)]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for &(at, byte, insert) in edits {
        let at = at % (bytes.len() + 1);
        if insert || at == bytes.len() {
            bytes.insert(at, byte);
        } else {
            bytes[at] = byte;
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, bool)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            prop_oneof![
                any::<u8>(),
                Just(b'"'),
                Just(b'{'),
                Just(b'}'),
                Just(b'\n'),
                Just(b'\r')
            ],
            any::<bool>(),
        ),
        1..6,
    )
}

proptest! {
    #[test]
    fn mutated_requests_never_panic_and_rewrites_stay_json(edits in edits()) {
        for case in all_cases() {
            let request = mutate(&case.read("request.json").unwrap(), &edits);
            if let Ok(inspected) = inspect_chat_request(&request, 1 << 20) {
                if let Some(body) = inspected.rewritten_body {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok(), "{}", case.name);
                }
            }
            if let Ok(upstream) = upstream_request(&case.provider, &request) {
                if let Some(body) = upstream.body {
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok(), "{}", case.name);
                }
            }
        }
    }

    #[test]
    fn mutated_upstream_answers_never_panic(edits in edits(), status in 100u16..600) {
        for case in all_cases() {
            let context = case.context("m");
            if let Some(body) = case.read("upstream_response.json") {
                let body = mutate(&body, &edits);
                let _ = translate_json_response(case.provider.kind, &body, &context);
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&translate_error_body(case.provider.kind, status, &body)).is_ok());
            }
            if let Some(sse) = case.read("upstream_response.sse") {
                let sse = mutate(&sse, &edits);
                if let Some(mut translator) = StreamTranslator::for_provider(case.provider.kind, &context) {
                    let mut out = Vec::new();
                    for piece in sse.chunks(5) {
                        translator.push(piece, &mut out);
                    }
                    translator.finish(&mut out);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = inspect_chat_request(&bytes, 1 << 20);
        for case in all_cases().into_iter().take(1) {
            let _ = upstream_request(&case.provider, &bytes);
        }
        let context = all_cases()[0].context("m");
        for case in all_cases() {
            if let Some(mut translator) = StreamTranslator::for_provider(case.provider.kind, &context) {
                let mut out = Vec::new();
                translator.push(&bytes, &mut out);
                translator.finish(&mut out);
            }
        }
    }
}
