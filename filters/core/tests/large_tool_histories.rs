//! Long agent histories (thousands of tool calls and results) translate in linear work and
//! correctly: every Gemini `functionResponse` is named after the call it answers, and every
//! Anthropic `tool_result` keeps its call id. (The speed is in `benches/translation.rs`.)

use proptest::prelude::*;
use serde_json::{json, Value};
use tollgate_core::config::{ProviderEndpoint, ProviderKind};
use tollgate_core::translate::upstream_request;

fn provider(kind: ProviderKind) -> ProviderEndpoint {
    serde_json::from_value(json!({"name": "p", "kind": kind, "model": "m", "authority": "a"}))
        .unwrap()
}

/// A history of `turns` rounds: an assistant message calling `calls_per_turn` tools (names
/// from `names`), then one tool message per call.
fn history(turns: usize, calls_per_turn: usize, names: &[String]) -> Vec<u8> {
    let mut messages = vec![json!({"role": "user", "content": "go"})];
    for turn in 0..turns {
        let calls: Vec<Value> = (0..calls_per_turn)
            .map(|c| {
                let name = &names[(turn * calls_per_turn + c) % names.len()];
                json!({"id": format!("call_{turn}_{c}"), "type": "function",
                       "function": {"name": name, "arguments": format!("{{\"n\":{turn}}}")}})
            })
            .collect();
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": calls}));
        for c in 0..calls_per_turn {
            messages.push(
                json!({"role": "tool", "tool_call_id": format!("call_{turn}_{c}"),
                                 "content": format!("result {turn} {c}")}),
            );
        }
    }
    serde_json::to_vec(&json!({"model": "m", "messages": messages})).unwrap()
}

fn expected_name(turn: usize, call: usize, calls_per_turn: usize, names: &[String]) -> &str {
    &names[(turn * calls_per_turn + call) % names.len()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn gemini_names_every_tool_result_after_its_call(
        turns in 1usize..1000,
        calls_per_turn in 1usize..3,
        names in prop::collection::vec("[a-z_]{1,12}", 1..20),
    ) {
        let body = history(turns, calls_per_turn, &names);
        let upstream = upstream_request(&provider(ProviderKind::Gemini), &body).unwrap();
        let request: Value = serde_json::from_slice(&upstream.body.unwrap()).unwrap();
        let contents = request["contents"].as_array().unwrap();
        // user, then (model, user with the results) per turn.
        prop_assert_eq!(contents.len(), 1 + 2 * turns);
        for turn in 0..turns {
            let calls = contents[1 + 2 * turn]["parts"].as_array().unwrap();
            let results = contents[2 + 2 * turn]["parts"].as_array().unwrap();
            prop_assert_eq!(calls.len(), calls_per_turn);
            prop_assert_eq!(results.len(), calls_per_turn);
            for (c, result) in results.iter().enumerate() {
                let name = expected_name(turn, c, calls_per_turn, &names);
                prop_assert_eq!(&result["functionResponse"]["name"], name);
                prop_assert_eq!(&calls[c]["functionCall"]["name"], name);
                prop_assert_eq!(
                    &result["functionResponse"]["response"]["content"],
                    &format!("result {turn} {c}")
                );
            }
        }
    }
}

#[test]
fn two_thousand_tool_messages_translate_for_gemini_and_anthropic() {
    let names: Vec<String> = ["read_file", "write_file", "search"]
        .map(String::from)
        .to_vec();
    let body = history(2000, 1, &names);
    let gemini = upstream_request(&provider(ProviderKind::Gemini), &body).unwrap();
    let request: Value = serde_json::from_slice(&gemini.body.unwrap()).unwrap();
    let contents = request["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 4001);
    assert_eq!(
        contents[4000]["parts"][0]["functionResponse"]["name"],
        expected_name(1999, 0, 1, &names)
    );

    let anthropic = upstream_request(&provider(ProviderKind::Anthropic), &body).unwrap();
    let request: Value = serde_json::from_slice(&anthropic.body.unwrap()).unwrap();
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4001);
    assert_eq!(messages[4000]["content"][0]["tool_use_id"], "call_1999_0");
}

#[test]
fn a_tool_result_answering_no_call_is_refused() {
    let body = serde_json::to_vec(&json!({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "tool", "tool_call_id": "nope", "content": "x"}]}))
    .unwrap();
    let error = upstream_request(&provider(ProviderKind::Gemini), &body).unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
}
