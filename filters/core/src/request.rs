//! The router's one pass over a client's chat-completions body: what it asks for (model,
//! stream), whether it is well-formed, and the one edit the gateway makes to it.
//!
//! The body is parsed once into borrowed raw slices, so the edits (forcing
//! `stream_options.include_usage`, replacing `model`) are splices into the original bytes:
//! key order, number spelling and whitespace of everything else stay exactly as the client
//! sent them.

use crate::config::RouterConfig;
use crate::errors::GatewayError;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// Name of the filter-state property the router publishes its [`RequestSummary`] under.
pub const REQUEST_SUMMARY_PROPERTY: &str = "tollgate_request";

/// What the router learned about a request, published for the other filters (cache, budget,
/// metrics, adapter) so none of them re-parses the body to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The model the client asked for (empty when it named none).
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The backend the router chose from the model, if the model decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Size of the body as the pipeline forwards it (after its own edits): the adapter's
    /// `content-length` for a passthrough attempt, since an earlier attempt may have left
    /// another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<usize>,
}

/// The result of inspecting a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectedRequest {
    /// The model the client asked for.
    pub model: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The client's cap on output tokens: `max_completion_tokens`, else `max_tokens`.
    pub max_output_tokens: Option<u64>,
    /// The body to send on, when the gateway had to change it (`None`: send it unchanged).
    pub rewritten_body: Option<Vec<u8>>,
}

/// The top-level fields the gateway looks at, as raw slices of the client's bytes.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    model: Option<&'a RawValue>,
    #[serde(default)]
    messages: Messages,
    #[serde(borrow, default, deserialize_with = "present")]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    max_completion_tokens: Option<&'a RawValue>,
}

/// Keeps a present field even when it is `null`, so its position is known.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// What `messages` is, judged during the body's one parse: every message must be an object
/// with a string `role`. A wrong shape is recorded, not an error, so the body's syntax errors
/// and the other fields' checks keep their order; nothing of the messages is allocated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Messages {
    /// Absent or `null`.
    #[default]
    Missing,
    /// `[]`.
    Empty,
    /// A non-empty array of messages of the right shape.
    Valid,
    /// Any other JSON value.
    Invalid,
}

/// Numbers and booleans, which a visitor only classifies (`deserialize_any` offers serde_json's
/// value kinds; null and strings are each visitor's own).
macro_rules! scalars_are {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// Skips the rest of an array; its syntax errors stay errors.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Skips the rest of an object; its syntax errors stay errors.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Array;
        impl<'de> Visitor<'de> for Array {
            type Value = Messages;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of messages")
            }
            scalars_are!(Messages::Invalid);
            fn visit_unit<E: de::Error>(self) -> Result<Messages, E> {
                Ok(Messages::Missing)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Messages, E> {
                Ok(Messages::Invalid)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Messages, A::Error> {
                skip_map(map).map(|()| Messages::Invalid)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
                let mut shape = Messages::Empty;
                while let Some(valid) = seq.next_element::<ValidMessage>()? {
                    if !valid.0 {
                        skip_seq(seq)?;
                        return Ok(Messages::Invalid);
                    }
                    shape = Messages::Valid;
                }
                Ok(shape)
            }
        }
        d.deserialize_any(Array)
    }
}

/// Whether one message is an object with exactly one `role`, a string.
struct ValidMessage(bool);

impl<'de> Deserialize<'de> for ValidMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Message;
        impl<'de> Visitor<'de> for Message {
            type Value = ValidMessage;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message object")
            }
            scalars_are!(ValidMessage(false));
            fn visit_unit<E: de::Error>(self) -> Result<ValidMessage, E> {
                Ok(ValidMessage(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ValidMessage, E> {
                Ok(ValidMessage(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ValidMessage, A::Error> {
                skip_seq(seq).map(|()| ValidMessage(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ValidMessage, A::Error> {
                // `None`: no role yet. A second `role` is as invalid as a missing one.
                let mut role: Option<bool> = None;
                while let Some(IsRole(is_role)) = map.next_key()? {
                    if !is_role {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        let IsString(string) = map.next_value()?;
                        role = Some(role.is_none() && string);
                    }
                }
                Ok(ValidMessage(role == Some(true)))
            }
        }
        d.deserialize_any(Message)
    }
}

/// Whether an object key is `role` (escapes decoded, as serde's derive compares it).
struct IsRole(bool);

impl<'de> Deserialize<'de> for IsRole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = IsRole;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<IsRole, E> {
                Ok(IsRole(key == "role"))
            }
        }
        d.deserialize_identifier(Key)
    }
}

/// Whether a value is a string; any other value is skipped.
struct IsString(bool);

impl<'de> Deserialize<'de> for IsString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Role;
        impl<'de> Visitor<'de> for Role {
            type Value = IsString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            scalars_are!(IsString(false));
            fn visit_unit<E: de::Error>(self) -> Result<IsString, E> {
                Ok(IsString(false))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IsString, E> {
                Ok(IsString(true))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IsString, A::Error> {
                skip_seq(seq).map(|()| IsString(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IsString, A::Error> {
                skip_map(map).map(|()| IsString(false))
            }
        }
        d.deserialize_any(Role)
    }
}

/// Rejects a body over the limit before it is parsed.
pub fn check_size(size: usize, limit: usize) -> Result<(), GatewayError> {
    if size > limit {
        Err(GatewayError::BodyTooLarge { size, limit })
    } else {
        Ok(())
    }
}

/// A validated chat-completions body, its fields as slices of the client's bytes: the one
/// parse the router makes, from which any rewrite is spliced.
pub struct ChatRequest<'a> {
    body: &'a [u8],
    fields: Probe<'a>,
    /// The model the client asked for.
    pub model: Option<String>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The client's cap on output tokens: `max_completion_tokens`, else `max_tokens`.
    pub max_output_tokens: Option<u64>,
}

/// Validates a client's body (size, `model`, `messages`, `stream`, the token caps).
pub fn parse_chat_request(body: &[u8], limit: usize) -> Result<ChatRequest<'_>, GatewayError> {
    check_size(body.len(), limit)?;
    let fields = parse_probe(body)?;
    let model = read_model(&fields)?;
    match fields.messages {
        Messages::Valid => {}
        Messages::Missing => return Err(GatewayError::invalid("Missing required parameter: 'messages'.", Some("messages"))),
        Messages::Empty => return Err(GatewayError::invalid("'messages' must not be empty.", Some("messages"))),
        Messages::Invalid => {
            return Err(GatewayError::invalid(
                "Invalid type for 'messages': expected an array of message objects, each with a string 'role'.",
                Some("messages"),
            ))
        }
    }
    let stream = read_stream(&fields)?;
    let max_output_tokens = match read_count(fields.max_completion_tokens, "max_completion_tokens")?
    {
        Some(n) => Some(n),
        None => read_count(fields.max_tokens, "max_tokens")?,
    };
    Ok(ChatRequest {
        body,
        fields,
        model,
        stream,
        max_output_tokens,
    })
}

impl ChatRequest<'_> {
    /// The body to send on (`None`: unchanged): `stream_options.include_usage: true` forced on
    /// streams, and `model` replaced by `model_override` when it differs (a Backend served
    /// without an adapter names its provider's model here).
    pub fn rewritten_body(
        &self,
        model_override: Option<&str>,
    ) -> Result<Option<Vec<u8>>, GatewayError> {
        let mut splices = Vec::new();
        if let Some(new_model) = model_override.filter(|m| Some(*m) != self.model.as_deref()) {
            let json = Value::String(new_model.to_string()).to_string();
            match self.fields.model {
                Some(raw) => splices.push(replace_raw(self.body, raw, json)?),
                None => splices.push(insert_first_field(self.body, format!("\"model\":{json},"))?),
            }
        }
        if self.stream {
            splices.extend(include_usage_splice(self.body, &self.fields)?);
        }
        Ok((!splices.is_empty()).then(|| apply_splices(self.body, splices)))
    }
}

/// Validates a client's body and forces `stream_options.include_usage: true` on streams.
pub fn inspect_chat_request(body: &[u8], limit: usize) -> Result<InspectedRequest, GatewayError> {
    let chat = parse_chat_request(body, limit)?;
    let rewritten_body = chat.rewritten_body(None)?;
    Ok(InspectedRequest {
        model: chat.model,
        stream: chat.stream,
        max_output_tokens: chat.max_output_tokens,
        rewritten_body,
    })
}

/// Reads a body bound for an OpenAI-compatible provider: `model` replaced when
/// `model_override` is given, `include_usage` forced on streams. `model` in the result is the
/// client's; `rewritten_body` is `None` when nothing needed to change.
pub fn openai_upstream_body(
    body: &[u8],
    model_override: Option<&str>,
) -> Result<InspectedRequest, GatewayError> {
    let fields = parse_probe(body)?;
    let model = read_model(&fields)?;
    let stream = read_stream(&fields)?;
    let mut splices = Vec::new();
    if let Some(new_model) = model_override.filter(|m| Some(*m) != model.as_deref()) {
        let json = Value::String(new_model.to_string()).to_string();
        match fields.model {
            Some(raw) => splices.push(replace_raw(body, raw, json)?),
            None => splices.push(insert_first_field(body, format!("\"model\":{json},"))?),
        }
    }
    if stream {
        splices.extend(include_usage_splice(body, &fields)?);
    }
    let rewritten_body = if splices.is_empty() {
        None
    } else {
        Some(apply_splices(body, splices))
    };
    Ok(InspectedRequest {
        model,
        stream,
        max_output_tokens: None,
        rewritten_body,
    })
}

/// Picks the backend for a model from the router's model map (aliases are just more keys).
///
/// `Ok(None)`: the route alone decides. An unknown or missing model is a 404 only when the
/// configuration requires a known model.
pub fn backend_for_model<'c>(
    config: &'c RouterConfig,
    model: Option<&str>,
) -> Result<Option<&'c str>, GatewayError> {
    if config.models.is_empty() {
        return Ok(None);
    }
    match model.and_then(|m| config.models.get(m)) {
        Some(backend) => Ok(Some(backend.as_str())),
        None if config.require_known_model => {
            Err(GatewayError::ModelNotFound(model.unwrap_or("").to_string()))
        }
        None => Ok(None),
    }
}

fn parse_probe(body: &[u8]) -> Result<Probe<'_>, GatewayError> {
    // serde_json skips the strings of ignored fields without checking their UTF-8.
    if std::str::from_utf8(body).is_err() {
        return Err(GatewayError::invalid(
            "The request body is not valid UTF-8.",
            None,
        ));
    }
    // A serde struct also accepts a JSON array (as a tuple); the body must be an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(GatewayError::invalid(
            "The request body must be a JSON object.",
            None,
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        GatewayError::invalid(
            format!("We could not parse the JSON body of your request: {e}. (HINT: the body must be valid JSON.)"),
            None,
        )
    })
}

/// Longest model name the gateway accepts: model names are labels, header values and cache
/// key parts, so they are bounded.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

fn read_model(fields: &Probe<'_>) -> Result<Option<String>, GatewayError> {
    let model = match fields.model.filter(|m| m.get() != "null") {
        None => return Ok(None),
        Some(raw) => serde_json::from_str::<String>(raw.get()).map_err(|_| {
            GatewayError::invalid(
                "Invalid type for 'model': expected a string.",
                Some("model"),
            )
        })?,
    };
    if model.len() > MAX_MODEL_NAME_BYTES {
        return Err(GatewayError::invalid(
            format!("Invalid 'model': longer than {MAX_MODEL_NAME_BYTES} bytes."),
            Some("model"),
        ));
    }
    if model.chars().any(char::is_control) {
        return Err(GatewayError::invalid(
            "Invalid 'model': control characters are not allowed.",
            Some("model"),
        ));
    }
    Ok(Some(model))
}

/// A non-negative integer field (`max_tokens`...); `null` counts as absent.
fn read_count(raw: Option<&RawValue>, name: &str) -> Result<Option<u64>, GatewayError> {
    match raw.filter(|r| r.get() != "null") {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<u64>(raw.get())
            .map(Some)
            .map_err(|_| {
                GatewayError::invalid(
                    format!("Invalid type for '{name}': expected a non-negative integer."),
                    Some(name),
                )
            }),
    }
}

fn read_stream(fields: &Probe<'_>) -> Result<bool, GatewayError> {
    match fields.stream.filter(|s| s.get() != "null") {
        None => Ok(false),
        Some(raw) => serde_json::from_str::<bool>(raw.get()).map_err(|_| {
            GatewayError::invalid(
                "Invalid type for 'stream': expected a boolean.",
                Some("stream"),
            )
        }),
    }
}

/// The splice that makes `stream_options.include_usage` true, if it is not already.
fn include_usage_splice(body: &[u8], fields: &Probe<'_>) -> Result<Option<Splice>, GatewayError> {
    let Some(raw) = fields.stream_options else {
        return insert_first_field(
            body,
            r#""stream_options":{"include_usage":true},"#.to_string(),
        )
        .map(Some);
    };
    let mut options = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        _ => {
            return Err(GatewayError::invalid(
                "Invalid type for 'stream_options': expected an object.",
                Some("stream_options"),
            ))
        }
    };
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return Ok(None);
    }
    options.insert("include_usage".into(), Value::Bool(true));
    replace_raw(body, raw, Value::Object(options).to_string()).map(Some)
}

/// Replace `body[start..end]` with `text`.
struct Splice {
    start: usize,
    end: usize,
    text: String,
}

fn replace_raw(body: &[u8], raw: &RawValue, text: String) -> Result<Splice, GatewayError> {
    let start = (raw.get().as_ptr() as usize)
        .checked_sub(body.as_ptr() as usize)
        .filter(|s| s + raw.get().len() <= body.len())
        .ok_or_else(|| GatewayError::invalid("The request body could not be rewritten.", None))?;
    Ok(Splice {
        start,
        end: start + raw.get().len(),
        text,
    })
}

/// Inserts `field` (ending with a comma) right after the object's opening brace; only used on
/// bodies that have other fields (`messages` at least).
fn insert_first_field(body: &[u8], field: String) -> Result<Splice, GatewayError> {
    let brace = body
        .iter()
        .position(|&b| b == b'{')
        .ok_or_else(|| GatewayError::invalid("The request body must be a JSON object.", None))?;
    let after = body[brace + 1..].iter().find(|b| !b.is_ascii_whitespace());
    let text = if after == Some(&b'}') {
        field.trim_end_matches(',').to_string()
    } else {
        field
    };
    Ok(Splice {
        start: brace + 1,
        end: brace + 1,
        text,
    })
}

fn apply_splices(body: &[u8], mut splices: Vec<Splice>) -> Vec<u8> {
    splices.sort_by_key(|s| s.start);
    let extra: usize = splices.iter().map(|s| s.text.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut at = 0;
    for splice in splices {
        out.extend_from_slice(&body[at..splice.start]);
        out.extend_from_slice(splice.text.as_bytes());
        at = splice.end;
    }
    out.extend_from_slice(&body[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const LIMIT: usize = 1 << 20;

    fn rewritten(body: &str) -> String {
        let inspected = inspect_chat_request(body.as_bytes(), LIMIT).unwrap();
        String::from_utf8(
            inspected
                .rewritten_body
                .unwrap_or_else(|| body.as_bytes().to_vec()),
        )
        .unwrap()
    }

    #[test]
    fn streams_get_include_usage_and_nothing_else_changes() {
        let cases = [
            (
                r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"temperature":0.70}"#,
                r#"{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"temperature":0.70}"#,
            ),
            (
                r#"{"stream":true, "stream_options": {"include_usage": false}, "messages":[{"role":"user"}]}"#,
                r#"{"stream":true, "stream_options": {"include_usage":true}, "messages":[{"role":"user"}]}"#,
            ),
            (
                r#"{"stream":true,"stream_options":null,"messages":[{"role":"user"}]}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user"}]}"#,
            ),
            (
                r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user"}]}"#,
                r#"{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user"}]}"#,
            ),
            (
                r#"{"stream":false,"messages":[{"role":"user"}],"n":1.0e0}"#,
                r#"{"stream":false,"messages":[{"role":"user"}],"n":1.0e0}"#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(rewritten(input), expected, "{input}");
        }
    }

    #[test]
    fn model_and_stream_flag_are_read() {
        let inspected = inspect_chat_request(
            br#"{"model":"gpt-4o-mini","messages":[{"role":"user"}]}"#,
            LIMIT,
        )
        .unwrap();
        assert_eq!(inspected.model.as_deref(), Some("gpt-4o-mini"));
        assert!(!inspected.stream);
        assert_eq!(inspected.rewritten_body, None);
    }

    #[test]
    fn malformed_bodies_are_400_naming_the_parameter() {
        // `messages` has a table of its own below.
        let cases: [(&str, Option<&str>); 5] = [
            ("not json", None),
            ("[1,2]", None),
            (r#"{"model":7,"messages":[{"role":"user"}]}"#, Some("model")),
            (
                r#"{"stream":"yes","messages":[{"role":"user"}]}"#,
                Some("stream"),
            ),
            (
                r#"{"stream":true,"stream_options":3,"messages":[{"role":"user"}]}"#,
                Some("stream_options"),
            ),
        ];
        for (body, param) in cases {
            let err = inspect_chat_request(body.as_bytes(), LIMIT).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert_eq!(err.to_openai().error.param.as_deref(), param, "{body}");
        }
    }

    /// Every shape `messages` can have: the error the client gets, or `None` when accepted.
    #[test]
    fn messages_must_be_a_non_empty_array_of_objects_each_with_one_string_role() {
        const MISSING: &str = "Missing required parameter: 'messages'.";
        const EMPTY: &str = "'messages' must not be empty.";
        const SHAPE: &str = "Invalid type for 'messages': expected an array of message objects, each with a string 'role'.";
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"model":"m"}"#, Some(MISSING)),
            (r#"{"messages":null}"#, Some(MISSING)),
            (r#"{"messages":[]}"#, Some(EMPTY)),
            (r#"{"messages":[ ]}"#, Some(EMPTY)),
            (r#"{"messages":"hi"}"#, Some(SHAPE)),
            (r#"{"messages":7}"#, Some(SHAPE)),
            (r#"{"messages":true}"#, Some(SHAPE)),
            (r#"{"messages":{"role":"user"}}"#, Some(SHAPE)),
            (r#"{"messages":[{"content":"no role"}]}"#, Some(SHAPE)),
            (r#"{"messages":[{}]}"#, Some(SHAPE)),
            (r#"{"messages":[{"role":null}]}"#, Some(SHAPE)),
            (r#"{"messages":[{"role":7}]}"#, Some(SHAPE)),
            (r#"{"messages":[{"role":false}]}"#, Some(SHAPE)),
            (r#"{"messages":[{"role":["user"]}]}"#, Some(SHAPE)),
            (r#"{"messages":[{"role":{"name":"user"}}]}"#, Some(SHAPE)),
            (
                r#"{"messages":[{"role":"user","role":"system"}]}"#,
                Some(SHAPE),
            ),
            (r#"{"messages":["user"]}"#, Some(SHAPE)),
            (r#"{"messages":[null]}"#, Some(SHAPE)),
            (r#"{"messages":[3]}"#, Some(SHAPE)),
            (r#"{"messages":[["user"]]}"#, Some(SHAPE)),
            (r#"{"messages":[[]]}"#, Some(SHAPE)),
            (
                r#"{"messages":[{"role":"user"},{"content":"x"},{"role":"user"}]}"#,
                Some(SHAPE),
            ),
            (r#"{"messages":[{"role":"user"},5]}"#, Some(SHAPE)),
            (r#"{"messages":[{"role":"user"}]}"#, None),
            (r#"{"messages":[{"role":""}]}"#, None),
            (r#"{"messages":[{"role":"us\"er\u00e9"}]}"#, None),
            (r#"{"messages":[{"r\u006fle":"user"}]}"#, None),
            (
                r#"{"messages":[{"content":[{"type":"text","role":7}],"role":"user","x":{"role":1}}]}"#,
                None,
            ),
            (
                r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":null,"tool_calls":[]}]}"#,
                None,
            ),
        ];
        for &(body, expected) in cases {
            match (inspect_chat_request(body.as_bytes(), LIMIT), expected) {
                (Ok(_), None) => {}
                (Err(err), Some(message)) => {
                    assert_eq!(err.status(), 400, "{body}");
                    let error = err.to_openai().error;
                    assert_eq!(error.message, message, "{body}");
                    assert_eq!(error.param.as_deref(), Some("messages"), "{body}");
                }
                (outcome, _) => panic!("{body}: {outcome:?}"),
            }
        }
    }

    /// The messages are judged in the body's one parse: bad JSON inside them is still bad
    /// JSON, and a bad `model` is still reported first.
    #[test]
    fn broken_json_inside_messages_is_a_parse_error_and_model_is_checked_first() {
        for body in [
            r#"{"messages":[{"role":"user",}]}"#,
            r#"{"messages":[{"role":"user"},]}"#,
            r#"{"messages":[{"role":"user","content":"x"]}"#,
            r#"{"messages":[{"role":user}]}"#,
            r#"{"messages":[1,{"role":"user"}}"#,
            r#"{"messages":[{"role":"user"}],"messages":[{"role":"user"}]}"#,
        ] {
            let err = inspect_chat_request(body.as_bytes(), LIMIT).unwrap_err();
            let error = err.to_openai().error;
            assert!(
                error
                    .message
                    .starts_with("We could not parse the JSON body"),
                "{body}: {}",
                error.message
            );
            assert_eq!(error.param, None, "{body}");
        }
        let err = inspect_chat_request(br#"{"model":7,"messages":[1]}"#, LIMIT).unwrap_err();
        assert_eq!(err.to_openai().error.param.as_deref(), Some("model"));
        let err = inspect_chat_request(br#"{"stream":"x","messages":[1]}"#, LIMIT).unwrap_err();
        assert_eq!(err.to_openai().error.param.as_deref(), Some("messages"));
    }

    #[test]
    fn model_names_with_control_characters_or_over_the_bound_are_400() {
        let long = "m".repeat(MAX_MODEL_NAME_BYTES + 1);
        for model in [
            "gpt-4o\\r\\nx-injected: 1",
            "a\\u0000b",
            "tab\\there",
            long.as_str(),
        ] {
            let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user"}}]}}"#);
            let err = inspect_chat_request(body.as_bytes(), LIMIT).unwrap_err();
            assert_eq!(err.status(), 400, "{model}");
            assert_eq!(err.to_openai().error.param.as_deref(), Some("model"));
        }
        let ok = br#"{"model":"gpt-4.1 mini/\u00e9","messages":[{"role":"user"}]}"#;
        assert!(inspect_chat_request(ok, LIMIT).is_ok());
    }

    #[test]
    fn the_output_cap_is_max_completion_tokens_else_max_tokens() {
        let cases = [
            (r#"{"messages":[{"role":"user"}]}"#, None),
            (
                r#"{"max_tokens":50,"messages":[{"role":"user"}]}"#,
                Some(50),
            ),
            (
                r#"{"max_tokens":50,"max_completion_tokens":70,"messages":[{"role":"user"}]}"#,
                Some(70),
            ),
            (r#"{"max_tokens":null,"messages":[{"role":"user"}]}"#, None),
        ];
        for (body, cap) in cases {
            let inspected = inspect_chat_request(body.as_bytes(), LIMIT).unwrap();
            assert_eq!(inspected.max_output_tokens, cap, "{body}");
        }
        let err = inspect_chat_request(br#"{"max_tokens":-1,"messages":[{"role":"user"}]}"#, LIMIT)
            .unwrap_err();
        assert_eq!(err.to_openai().error.param.as_deref(), Some("max_tokens"));
    }

    #[test]
    fn invalid_utf8_even_in_fields_the_router_skips_is_400() {
        let body = b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}";
        assert_eq!(inspect_chat_request(body, LIMIT).unwrap_err().status(), 400);
    }

    #[test]
    fn bodies_over_the_limit_are_413() {
        let err = inspect_chat_request(br#"{"messages":[{"role":"user"}]}"#, 10).unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn openai_upstream_body_replaces_only_the_model() {
        let body = br#"{ "model" : "client-model", "messages":[{"role":"user","content":"x"}] }"#;
        let out = openai_upstream_body(body, Some("llama3.2:8b")).unwrap();
        assert_eq!(out.model.as_deref(), Some("client-model"));
        assert_eq!(
            String::from_utf8(out.rewritten_body.unwrap()).unwrap(),
            r#"{ "model" : "llama3.2:8b", "messages":[{"role":"user","content":"x"}] }"#
        );
        assert_eq!(
            openai_upstream_body(body, None).unwrap().rewritten_body,
            None
        );
        assert_eq!(
            openai_upstream_body(body, Some("client-model"))
                .unwrap()
                .rewritten_body,
            None
        );
    }

    #[test]
    fn backend_comes_from_the_model_map_and_unknown_models_are_404_when_required() {
        let mut config = RouterConfig::default();
        assert_eq!(backend_for_model(&config, Some("anything")).unwrap(), None);
        config
            .models
            .insert("gpt-4o-mini".into(), "fast-llm".into());
        config
            .models
            .insert("cheap".into(), "cost-optimized-llm".into());
        assert_eq!(
            backend_for_model(&config, Some("cheap")).unwrap(),
            Some("cost-optimized-llm")
        );
        assert_eq!(backend_for_model(&config, Some("gpt-9")).unwrap(), None);
        config.require_known_model = true;
        let err = backend_for_model(&config, Some("gpt-9")).unwrap_err();
        assert_eq!(err.status(), 404);
        assert_eq!(
            err.to_openai().error.code.as_deref(),
            Some("model_not_found")
        );
        assert_eq!(backend_for_model(&config, None).unwrap_err().status(), 404);
    }
}
