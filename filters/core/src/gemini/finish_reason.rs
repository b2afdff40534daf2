//! Gemini `finishReason` -> OpenAI `finish_reason`.

/// The table; a candidate that called functions finishes with `tool_calls` instead of `stop`.
pub const FINISH_REASONS: &[(&str, &str)] = &[
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "stop"),
    ("LANGUAGE", "stop"),
    ("OTHER", "stop"),
];

/// The OpenAI finish reason for a Gemini one; unknown ones read as `stop`.
pub fn finish_reason(gemini: &str, called_functions: bool) -> &'static str {
    let reason = FINISH_REASONS
        .iter()
        .find(|(g, _)| *g == gemini)
        .map_or("stop", |(_, o)| o);
    if reason == "stop" && called_functions {
        "tool_calls"
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn finish_reasons_map_and_function_calls_win_over_stop() {
        assert_eq!(finish_reason("STOP", false), "stop");
        assert_eq!(finish_reason("STOP", true), "tool_calls");
        assert_eq!(finish_reason("MAX_TOKENS", true), "length");
        assert_eq!(finish_reason("SAFETY", false), "content_filter");
        assert_eq!(finish_reason("NEW_REASON", false), "stop");
    }
}
