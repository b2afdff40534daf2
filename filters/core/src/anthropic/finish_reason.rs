//! Anthropic `stop_reason` -> OpenAI `finish_reason`.

/// The table, in Anthropic's order of documentation.
pub const FINISH_REASONS: &[(&str, &str)] = &[
    ("end_turn", "stop"),
    ("max_tokens", "length"),
    ("stop_sequence", "stop"),
    ("tool_use", "tool_calls"),
    ("pause_turn", "stop"),
    ("refusal", "content_filter"),
];

/// The OpenAI finish reason for an Anthropic stop reason; unknown ones read as `stop`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    FINISH_REASONS
        .iter()
        .find(|(a, _)| *a == stop_reason)
        .map_or("stop", |(_, o)| o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn every_stop_reason_maps_and_unknown_ones_stop() {
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        assert_eq!(finish_reason("refusal"), "content_filter");
        assert_eq!(finish_reason("something_new"), "stop");
    }
}
