//! Writing the output cap into the OpenAI-format request: a splice of the number, so the rest
//! of the body stays byte for byte as the client sent it. The adapter then carries the cap to
//! each provider's own field (Anthropic `max_tokens`, Gemini
//! `generationConfig.maxOutputTokens`); Ollama's OpenAI-compatible API reads `max_tokens`.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Caps<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    max_completion_tokens: Option<&'a RawValue>,
}

/// Keeps a present field even when it is `null`, so its position is known.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The body with every output-cap field the client set (`max_completion_tokens`,
/// `max_tokens`, even `null`) replaced by `cap` when it is absent, null or larger; with
/// `max_tokens: cap` added when it set neither (the field every OpenAI-compatible server and
/// the adapter's translations read). `None`: nothing to change, or not a JSON object.
pub fn cap_output(body: &[u8], cap: u64) -> Option<Vec<u8>> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let caps: Caps<'_> = serde_json::from_slice(body).ok()?;
    let base = body.as_ptr() as usize;
    let mut splices: Vec<(usize, usize)> = Vec::new();
    for raw in [caps.max_tokens, caps.max_completion_tokens]
        .into_iter()
        .flatten()
    {
        let current = serde_json::from_str::<u64>(raw.get()).ok();
        if current.is_some_and(|c| c <= cap) {
            continue;
        }
        let start = (raw.get().as_ptr() as usize).checked_sub(base)?;
        let end = start + raw.get().len();
        if end > body.len() {
            return None;
        }
        splices.push((start, end));
    }
    let value = cap.to_string();
    if caps.max_tokens.is_none() && caps.max_completion_tokens.is_none() {
        let brace = body.iter().position(|&b| b == b'{')?;
        let empty = body[brace + 1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'}');
        let field = if empty {
            format!("\"max_tokens\":{value}")
        } else {
            format!("\"max_tokens\":{value},")
        };
        let mut out = Vec::with_capacity(body.len() + field.len());
        out.extend_from_slice(&body[..=brace]);
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(&body[brace + 1..]);
        return Some(out);
    }
    if splices.is_empty() {
        return None;
    }
    splices.sort_unstable();
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut at = 0;
    for (start, end) in splices {
        out.extend_from_slice(&body[at..start]);
        out.extend_from_slice(value.as_bytes());
        at = end;
    }
    out.extend_from_slice(&body[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(body: &str, cap: u64) -> Option<String> {
        cap_output(body.as_bytes(), cap).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn a_larger_client_cap_is_lowered_in_place() {
        assert_eq!(
            capped(r#"{"model":"m", "max_tokens" : 5000,"messages":[]}"#, 700).as_deref(),
            Some(r#"{"model":"m", "max_tokens" : 700,"messages":[]}"#)
        );
    }

    #[test]
    fn both_cap_fields_are_lowered() {
        assert_eq!(
            capped(
                r#"{"max_tokens":900,"max_completion_tokens":800,"messages":[]}"#,
                10
            )
            .as_deref(),
            Some(r#"{"max_tokens":10,"max_completion_tokens":10,"messages":[]}"#)
        );
    }

    #[test]
    fn a_smaller_client_cap_is_kept() {
        assert_eq!(
            capped(r#"{"max_completion_tokens":50,"messages":[]}"#, 700),
            None
        );
    }

    #[test]
    fn a_missing_cap_is_added_and_a_null_one_replaced() {
        assert_eq!(
            capped(r#"{"model":"m","messages":[]}"#, 64).as_deref(),
            Some(r#"{"max_tokens":64,"model":"m","messages":[]}"#)
        );
        assert_eq!(
            capped(r#"{"max_tokens":null,"messages":[]}"#, 64).as_deref(),
            Some(r#"{"max_tokens":64,"messages":[]}"#)
        );
        assert_eq!(capped("{}", 1).as_deref(), Some(r#"{"max_tokens":1}"#));
    }

    #[test]
    fn what_is_not_a_json_object_is_left_alone() {
        assert_eq!(capped("[1]", 1), None);
        assert_eq!(capped("{not json", 1), None);
    }
}
