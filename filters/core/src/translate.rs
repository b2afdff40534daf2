//! The adapter's decisions for one attempt, whichever provider Envoy chose: the upstream path,
//! credentials and body, and the translator that turns the answer back into OpenAI's format.

use crate::anthropic::{self, AnthropicStreamTranslator};
use crate::config::{AdapterConfig, ProviderEndpoint, ProviderKind};
use crate::errors::{translate_error_body, GatewayError};
use crate::gemini::{self, GeminiStreamTranslator};
use crate::openai::ChatRequest;
use crate::request::{openai_upstream_body, RequestSummary};
use crate::usage::TokenUsage;

/// Anthropic API version sent when the provider's configuration names none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Every credential header any provider uses; the adapter sets the chosen provider's and
/// removes the others, so a retry on another provider never carries stale credentials and the
/// client's own `authorization` (meant for the gateway) never reaches a provider.
pub const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "x-api-key",
    "anthropic-version",
    "x-goog-api-key",
];

/// What the response translators need to know about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseContext {
    /// The model asked of the provider (used when the answer does not name one).
    pub model: String,
    /// Unix seconds for `created`.
    pub created: u64,
    /// Response id when the provider gives none.
    pub fallback_id: String,
}

/// The request to send to the chosen provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Value for `:path`.
    pub path: String,
    /// The body to send; `None` when the client's body goes unchanged.
    pub body: Option<Vec<u8>>,
    /// The model asked of the provider.
    pub model: String,
    /// Whether the answer will be a stream.
    pub stream: bool,
}

/// Builds the upstream request for `provider` from the client's chat-completions body.
pub fn upstream_request(
    provider: &ProviderEndpoint,
    client_body: &[u8],
) -> Result<UpstreamRequest, GatewayError> {
    let prefix = provider.path_prefix.trim_end_matches('/');
    let override_model = provider
        .model
        .as_deref()
        .filter(|_| provider.override_model);
    if provider.kind == ProviderKind::Openai {
        let inspected = openai_upstream_body(client_body, override_model)?;
        let model = override_model
            .map(str::to_string)
            .or(inspected.model)
            .ok_or_else(missing_model)?;
        return Ok(UpstreamRequest {
            path: format!("{prefix}/v1/chat/completions"),
            body: inspected.rewritten_body,
            model,
            stream: inspected.stream,
        });
    }
    let request: ChatRequest = serde_json::from_slice(client_body).map_err(|e| {
        GatewayError::invalid(
            format!("The request does not match the chat-completions format: {e}"),
            None,
        )
    })?;
    let model = override_model
        .map(str::to_string)
        .or_else(|| request.model.clone())
        .or_else(|| provider.model.clone())
        .ok_or_else(missing_model)?;
    let stream = request.is_stream();
    let (path, body) = match provider.kind {
        ProviderKind::Anthropic => (
            format!("{prefix}/v1/messages"),
            to_json(&anthropic::to_messages_request(&request, &model)?)?,
        ),
        _ => {
            let method = if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            let path = format!(
                "{prefix}/v1beta/models/{}:{method}",
                percent_encode_segment(&model)
            );
            (
                path,
                to_json(&gemini::to_generate_content_request(&request)?)?,
            )
        }
    };
    Ok(UpstreamRequest {
        path,
        body: Some(body),
        model,
        stream,
    })
}

/// The upstream request for an OpenAI-compatible provider when the client's body can go
/// unchanged (the provider keeps the client's model, or its configured model is the one asked
/// for): then the adapter needs only the router's summary, not the body, and lets the body
/// stream through without pausing. `None` when the body must be rewritten or translated.
pub fn passthrough_request(
    provider: &ProviderEndpoint,
    summary: &RequestSummary,
) -> Option<UpstreamRequest> {
    if provider.kind != ProviderKind::Openai || summary.model.is_empty() {
        return None;
    }
    let keeps_model = match provider.model.as_deref() {
        Some(model) if provider.override_model => model == summary.model,
        _ => true,
    };
    keeps_model.then(|| UpstreamRequest {
        path: format!(
            "{}/v1/chat/completions",
            provider.path_prefix.trim_end_matches('/')
        ),
        body: None,
        model: summary.model.clone(),
        stream: summary.stream,
    })
}

/// The credential headers for `provider` with its resolved `api_key` ([`resolve_api_keys`]):
/// each of [`CREDENTIAL_HEADERS`] with its value, or `None` to remove it.
pub fn credential_headers(
    provider: &ProviderEndpoint,
    api_key: Option<&str>,
) -> [(&'static str, Option<String>); 4] {
    let key = api_key.map(str::to_string);
    let [authorization, x_api_key, anthropic_version, x_goog_api_key] = CREDENTIAL_HEADERS;
    match provider.kind {
        ProviderKind::Openai => [
            (authorization, key.map(|k| format!("Bearer {k}"))),
            (x_api_key, None),
            (anthropic_version, None),
            (x_goog_api_key, None),
        ],
        ProviderKind::Anthropic => [
            (authorization, None),
            (x_api_key, key),
            (
                anthropic_version,
                Some(
                    provider
                        .api_version
                        .clone()
                        .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_string()),
                ),
            ),
            (x_goog_api_key, None),
        ],
        ProviderKind::Gemini => [
            (authorization, None),
            (x_api_key, None),
            (anthropic_version, None),
            (x_goog_api_key, key),
        ],
    }
}

/// Translates a complete (non-stream) successful answer into an OpenAI chat completion;
/// `None` when the provider already speaks OpenAI and the body goes unchanged.
pub fn translate_json_response(
    kind: ProviderKind,
    body: &[u8],
    context: &ResponseContext,
) -> Result<Option<Vec<u8>>, GatewayError> {
    let completion = match kind {
        ProviderKind::Openai => return Ok(None),
        ProviderKind::Anthropic => anthropic::to_chat_completion(body, context)?,
        ProviderKind::Gemini => gemini::to_chat_completion(body, context)?,
    };
    to_json(&completion).map(Some)
}

/// A streamed answer's translator, for providers that do not speak OpenAI.
#[derive(Debug)]
pub enum StreamTranslator {
    /// Anthropic Messages events.
    Anthropic(AnthropicStreamTranslator),
    /// Gemini `alt=sse` events.
    Gemini(GeminiStreamTranslator),
}

impl StreamTranslator {
    /// The translator for `kind`; `None` for OpenAI-compatible providers, whose stream is relayed.
    pub fn for_provider(kind: ProviderKind, context: &ResponseContext) -> Option<Self> {
        match kind {
            ProviderKind::Openai => None,
            ProviderKind::Anthropic => {
                Some(Self::Anthropic(AnthropicStreamTranslator::new(context)))
            }
            ProviderKind::Gemini => Some(Self::Gemini(GeminiStreamTranslator::new(context))),
        }
    }

    /// Translates one chunk of upstream bytes, appending OpenAI SSE bytes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        match self {
            Self::Anthropic(t) => t.push(chunk, out),
            Self::Gemini(t) => t.push(chunk, out),
        }
    }

    /// Ends the stream, appending the final usage chunk and `data: [DONE]` when it completed.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Self::Anthropic(t) => t.finish(out),
            Self::Gemini(t) => t.finish(out),
        }
    }

    /// Token usage seen so far.
    pub fn usage(&self) -> TokenUsage {
        match self {
            Self::Anthropic(t) => t.usage(),
            Self::Gemini(t) => t.usage(),
        }
    }

    /// Why the translated stream ended with an error event, if it did: the flag a metric
    /// counts ([`StreamFault::is_cap`] tells the buffer caps apart).
    pub fn fault(&self) -> Option<StreamFault> {
        match self {
            Self::Anthropic(t) => t.fault(),
            Self::Gemini(t) => t.fault(),
        }
    }
}

/// Most tool calls one streamed answer may carry; each costs the translator a little state.
pub const MAX_STREAM_TOOL_CALLS: usize = 128;

/// Why a translated stream ended with an error event and `[DONE]` instead of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// One event outgrew the carry-over cap, [`crate::sse::MAX_EVENT_BYTES`].
    EventTooLarge,
    /// More tool calls than [`MAX_STREAM_TOOL_CALLS`].
    TooManyToolCalls,
    /// An event that is not in the provider's format.
    Unreadable,
    /// The provider's stream ended before the answer finished.
    Cut,
}

impl StreamFault {
    /// Whether a buffer cap ended the stream (rather than the provider).
    pub fn is_cap(self) -> bool {
        matches!(self, Self::EventTooLarge | Self::TooManyToolCalls)
    }

    /// The error the client's stream ends with.
    pub fn error(self) -> GatewayError {
        GatewayError::BadProviderAnswer(match self {
            Self::EventTooLarge => format!(
                "The provider's stream sent an event over the gateway's limit of {} bytes; the answer was cut.",
                crate::sse::MAX_EVENT_BYTES
            ),
            Self::TooManyToolCalls => format!(
                "The provider's stream sent more than {MAX_STREAM_TOOL_CALLS} tool calls; the answer was cut."
            ),
            Self::Unreadable => "The provider's stream sent an event the gateway could not read; the answer was cut.".to_string(),
            Self::Cut => "The provider's stream ended before the answer was complete.".to_string(),
        })
    }
}

/// Request headers a client may not send to a provider (unless the provider's
/// `allow_client_headers` names them): credentials, cookies, and below
/// [`CLIENT_CONTROL_PREFIXES`] the providers' own control headers (organisation, project,
/// beta features, API version).
pub const CLIENT_CONTROL_HEADERS: [&str; 4] = [
    "authorization",
    "x-api-key",
    "cookie",
    "proxy-authorization",
];

/// Prefixes of provider control headers: `openai-organization`, `openai-project`,
/// `anthropic-beta`, `anthropic-version`, `x-goog-user-project`, `x-goog-api-key`...
pub const CLIENT_CONTROL_PREFIXES: [&str; 3] = ["openai-", "anthropic-", "x-goog-"];

/// Provider response headers that reveal the operator's account and are not relayed.
/// `x-request-id` is relayed: it names one request, not the account, and is what a
/// provider's support asks for.
pub const OPERATOR_RESPONSE_HEADERS: [&str; 4] = [
    "openai-organization",
    "openai-project",
    "anthropic-organization-id",
    "set-cookie",
];

/// Longest model name written into the `x-tollgate-model` response header.
pub const MAX_MODEL_HEADER_BYTES: usize = 128;

/// Whether `value` may be copied into a response header: 1 to [`MAX_MODEL_HEADER_BYTES`]
/// visible ASCII characters (no space, no control character, nothing a client could use to
/// split or forge headers).
pub fn is_safe_header_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_MODEL_HEADER_BYTES
        && value.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The `x-tollgate-model` value for an attempt: the configured model, or the client's model
/// the provider kept when it is a safe token; `None` omits the header.
pub fn model_header_value<'a>(
    provider: &'a ProviderEndpoint,
    upstream_model: &'a str,
) -> Option<&'a str> {
    let configured = provider
        .model
        .as_deref()
        .filter(|m| provider.override_model && *m == upstream_model);
    configured
        .or(Some(upstream_model))
        .filter(|m| is_safe_header_token(m))
}

/// What the client's path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `…/chat/completions`: routed and translated.
    Chat,
    /// Another OpenAI-format operation an operator opted in (e.g. `/embeddings`): forwarded
    /// untranslated to OpenAI-compatible providers. The suffix after `/v1`, query included.
    Other(String),
}

/// The operation of an attempt's `:path`: the client's (`/v1/chat/completions`,
/// `/openai/v1/embeddings?x=1`...) on a first attempt, and on a retry the path the previous
/// attempt wrote (Envoy keeps header mutations across attempts), so the chat paths the
/// adapter writes for Anthropic (`…/v1/messages`) and Gemini (`…/v1beta/models/M:…`) are
/// chat too.
pub fn operation_of(path: &str) -> Operation {
    let bare = path.split(['?', '#']).next().unwrap_or_default();
    let bare = bare.trim_end_matches('/');
    let gemini = bare.contains("/v1beta/models/")
        && (bare.ends_with(":generateContent") || bare.ends_with(":streamGenerateContent"));
    if bare.ends_with("/chat/completions") || bare.ends_with("/v1/messages") || gemini {
        return Operation::Chat;
    }
    let suffix = match path.rfind("/v1/") {
        Some(at) => &path[at + 3..],
        None => path.rfind('/').map_or(path, |at| &path[at..]),
    };
    Operation::Other(suffix.to_string())
}

/// The upstream `:path` of a non-chat operation for an OpenAI-compatible provider.
pub fn other_operation_path(provider: &ProviderEndpoint, suffix: &str) -> String {
    format!("{}/v1{suffix}", provider.path_prefix.trim_end_matches('/'))
}

/// The request headers one attempt sets (`Some`) or removes (`None`): everything the attempt
/// depends on, so nothing a previous attempt to another provider wrote survives (Envoy keeps
/// header mutations across retries). `present` are the names of the request's headers as
/// they are now; `path` is `None` to leave `:path` alone; `content_length` is the body the
/// attempt sends (`None`: unknown, the header is removed and Envoy frames the body itself).
pub fn attempt_request_headers<'p>(
    provider: &ProviderEndpoint,
    api_key: Option<&str>,
    path: Option<&str>,
    content_length: Option<usize>,
    present: impl IntoIterator<Item = &'p str>,
) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = vec![
        (":authority".into(), Some(provider.authority.clone())),
        // The adapter reads translated answers and error bodies; it decodes no compression.
        ("accept-encoding".into(), Some("identity".into())),
        (
            "content-length".into(),
            content_length.map(|n| n.to_string()),
        ),
    ];
    if let Some(path) = path {
        out.push((":path".into(), Some(path.to_string())));
    }
    let present: Vec<String> = present.into_iter().map(str::to_ascii_lowercase).collect();
    let allowed = |name: &str| {
        provider
            .allow_client_headers
            .iter()
            .any(|a| a.eq_ignore_ascii_case(name))
    };
    for (name, value) in credential_headers(provider, api_key) {
        // The client's `anthropic-version` may stay when the provider names none and allows it.
        let client_version = name == "anthropic-version"
            && provider.kind == ProviderKind::Anthropic
            && provider.api_version.is_none()
            && allowed(name)
            && present.iter().any(|p| p == name);
        if !client_version {
            out.push((name.to_string(), value));
        }
    }
    for name in present {
        let control = CLIENT_CONTROL_HEADERS.contains(&name.as_str())
            || CLIENT_CONTROL_PREFIXES.iter().any(|p| name.starts_with(p));
        // Credential headers were set or removed above, whatever the allow list says: a
        // value there may be another provider's key written by a previous attempt.
        if control && !allowed(&name) && !CREDENTIAL_HEADERS.contains(&name.as_str()) {
            out.push((name, None));
        }
    }
    out
}

/// A provider API key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// `api_key_env` names a variable the VM does not see.
    #[error("providers[{index}] ({provider}).api_key_env: the environment variable {variable} is not set for the Wasm VM; set it in Envoy's environment and list it in vm_config.environment_variables.host_env_keys")]
    Missing {
        /// Position in `providers`.
        index: usize,
        /// The provider's name.
        provider: String,
        /// The variable's name (never its value).
        variable: String,
    },
    /// The key is empty or holds characters a header value cannot carry.
    #[error("providers[{index}] ({provider}): the API key {source_name} is empty or holds characters not allowed in a header value")]
    Unusable {
        /// Position in `providers`.
        index: usize,
        /// The provider's name.
        provider: String,
        /// `api_key`, or the variable's name.
        source_name: String,
    },
    /// Both ways of giving a key at once.
    #[error("providers[{index}] ({provider}): api_key and api_key_env are both set; keep one")]
    Both {
        /// Position in `providers`.
        index: usize,
        /// The provider's name.
        provider: String,
    },
}

/// Each provider's API key, in `config.providers` order: `api_key` inline, or the variable
/// `api_key_env` names, looked up with `lookup` (the VM's WASI environment), or `None`.
pub fn resolve_api_keys(
    config: &AdapterConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Option<String>>, KeyError> {
    config
        .providers
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let (key, source_name) = match (&p.api_key, &p.api_key_env) {
                (Some(_), Some(_)) => {
                    return Err(KeyError::Both {
                        index,
                        provider: p.name.clone(),
                    })
                }
                (Some(key), None) => (key.clone(), "api_key".to_string()),
                (None, Some(variable)) => match lookup(variable) {
                    Some(value) => (value, variable.clone()),
                    None => {
                        return Err(KeyError::Missing {
                            index,
                            provider: p.name.clone(),
                            variable: variable.clone(),
                        })
                    }
                },
                (None, None) => return Ok(None),
            };
            let key = key.trim().to_string();
            if key.is_empty() || !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return Err(KeyError::Unusable {
                    index,
                    provider: p.name.clone(),
                    source_name,
                });
            }
            Ok(Some(key))
        })
        .collect()
}

/// The value of `name` in a WASI environment block (`k=v\0k=v\0...`, as `environ_get` fills it).
pub fn environ_value(block: &[u8], name: &str) -> Option<String> {
    block.split(|&b| b == 0).find_map(|entry| {
        let eq = entry.iter().position(|&b| b == b'=')?;
        (&entry[..eq] == name.as_bytes())
            .then(|| String::from_utf8(entry[eq + 1..].to_vec()).ok())
            .flatten()
    })
}

/// How the adapter handles one attempt's answer, decided from its status and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponsePlan {
    /// Relayed untouched (an OpenAI-compatible provider's success, compressed or not).
    Relay,
    /// Buffered and translated from the provider's JSON; a body that does not translate
    /// becomes a 502.
    TranslateJson,
    /// Buffered and translated from the provider's error format; the status is kept.
    TranslateError,
    /// Translated event by event.
    Stream,
    /// The provider's body is dropped and the client gets `status` with `error`.
    Replace {
        /// The status the client gets.
        status: u16,
        /// The OpenAI-format body.
        error: Vec<u8>,
    },
}

/// Decides how an answer is handled. `content_encoding` is the provider's
/// `content-encoding`; the adapter decodes none, so a body it must read that is compressed is
/// never relabelled: a success becomes a 502, an error keeps its status with a generic body.
pub fn plan_response(
    provider: &ProviderEndpoint,
    status: u16,
    content_type: Option<&[u8]>,
    content_encoding: Option<&[u8]>,
) -> ResponsePlan {
    if status == 401 || status == 403 {
        let error = GatewayError::ProviderCredentialsRefused {
            provider: provider.name.clone(),
            status,
        };
        return ResponsePlan::Replace {
            status: error.status(),
            error: error.to_openai().to_bytes(),
        };
    }
    let encoded = content_encoding.is_some_and(|e| {
        let e = e.trim_ascii();
        !e.is_empty() && !e.eq_ignore_ascii_case(b"identity")
    });
    let encoding_name = || {
        String::from_utf8_lossy(content_encoding.unwrap_or_default())
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect::<String>()
    };
    if status >= 400 {
        return if encoded {
            ResponsePlan::Replace {
                status,
                error: translate_error_body(provider.kind, status, b""),
            }
        } else {
            ResponsePlan::TranslateError
        };
    }
    if provider.kind == ProviderKind::Openai {
        return ResponsePlan::Relay;
    }
    if encoded {
        let error = GatewayError::BadProviderAnswer(format!(
            "The provider {} answered with content-encoding {}, which the gateway does not decode.",
            provider.name,
            encoding_name()
        ));
        return ResponsePlan::Replace {
            status: error.status(),
            error: error.to_openai().to_bytes(),
        };
    }
    let is_event_stream =
        content_type.is_some_and(|t| t.trim_ascii_start().starts_with(b"text/event-stream"));
    if is_event_stream {
        ResponsePlan::Stream
    } else {
        ResponsePlan::TranslateJson
    }
}

/// The answer to a buffered JSON success: the translated completion, or the 502 the client
/// gets when the provider's body does not translate (status, body).
pub fn translated_json_or_502(
    kind: ProviderKind,
    body: &[u8],
    context: &ResponseContext,
) -> (u16, Vec<u8>) {
    match translate_json_response(kind, body, context) {
        Ok(Some(translated)) => (200, translated),
        Ok(None) => (200, body.to_vec()),
        Err(error) => {
            let error = match error {
                GatewayError::BadProviderAnswer(_) => error,
                other => GatewayError::BadProviderAnswer(other.to_string()),
            };
            (error.status(), error.to_openai().to_bytes())
        }
    }
}

fn missing_model() -> GatewayError {
    GatewayError::invalid("Missing required parameter: 'model'.", Some("model"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(value)
        .map_err(|e| GatewayError::Unavailable(format!("translation failed: {e}")))
}

/// Percent-encodes a model name for use as one path segment.
fn percent_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn provider(kind: ProviderKind, key: Option<&str>) -> ProviderEndpoint {
        ProviderEndpoint {
            name: "p".into(),
            kind,
            model: Some("configured-model".into()),
            override_model: true,
            authority: "api.example.com".into(),
            path_prefix: String::new(),
            api_key: key.map(str::to_string),
            api_key_env: None,
            api_version: None,
            allow_client_headers: Vec::new(),
        }
    }

    #[test]
    fn every_provider_gets_its_credentials_and_loses_the_others() {
        let cases = [
            (
                ProviderKind::Openai,
                Some("k"),
                [Some("Bearer k"), None, None, None],
            ),
            (ProviderKind::Openai, None, [None, None, None, None]),
            (
                ProviderKind::Anthropic,
                Some("k"),
                [None, Some("k"), Some("2023-06-01"), None],
            ),
            (
                ProviderKind::Gemini,
                Some("k"),
                [None, None, None, Some("k")],
            ),
        ];
        for (kind, key, expected) in cases {
            let headers = credential_headers(&provider(kind, key), key);
            let values: Vec<Option<&str>> = headers.iter().map(|(_, v)| v.as_deref()).collect();
            assert_eq!(values, expected, "{kind:?}");
            let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, CREDENTIAL_HEADERS);
        }
    }

    #[test]
    fn paths_follow_the_provider_and_stream_flag() {
        let body =
            br#"{"model":"client","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let cases = [
            (ProviderKind::Openai, "/v1/chat/completions"),
            (ProviderKind::Anthropic, "/v1/messages"),
            (
                ProviderKind::Gemini,
                "/v1beta/models/configured-model:streamGenerateContent?alt=sse",
            ),
        ];
        for (kind, path) in cases {
            let upstream = upstream_request(&provider(kind, None), body).unwrap();
            assert_eq!(upstream.path, path);
            assert_eq!(upstream.model, "configured-model");
            assert!(upstream.stream);
        }
        let mut ollama = provider(ProviderKind::Openai, None);
        ollama.path_prefix = "/ollama/".into();
        ollama.override_model = false;
        let upstream = upstream_request(&ollama, body).unwrap();
        assert_eq!(upstream.path, "/ollama/v1/chat/completions");
        assert_eq!(upstream.model, "client");
    }

    #[test]
    fn gemini_model_names_are_encoded_into_one_path_segment() {
        let mut gemini = provider(ProviderKind::Gemini, None);
        gemini.model = Some("tuned/model 1".into());
        let upstream =
            upstream_request(&gemini, br#"{"messages":[{"role":"user","content":"x"}]}"#).unwrap();
        assert_eq!(
            upstream.path,
            "/v1beta/models/tuned%2Fmodel%201:generateContent"
        );
    }

    #[test]
    fn passthrough_needs_no_body_only_when_the_openai_body_would_go_unchanged() {
        let summary = |model: &str| RequestSummary {
            model: model.into(),
            stream: true,
            backend: None,
            body_bytes: None,
        };
        let same = provider(ProviderKind::Openai, None);
        let request = passthrough_request(&same, &summary("configured-model")).unwrap();
        assert_eq!(request.path, "/v1/chat/completions");
        assert!(request.stream && request.body.is_none());
        // A different model must be written into the body: no passthrough.
        assert!(passthrough_request(&same, &summary("gpt-4o")).is_none());
        let mut keep = same.clone();
        keep.override_model = false;
        assert_eq!(
            passthrough_request(&keep, &summary("gpt-4o"))
                .unwrap()
                .model,
            "gpt-4o"
        );
        // Other wire formats are always translated; no model known: the body decides.
        assert!(passthrough_request(
            &provider(ProviderKind::Anthropic, None),
            &summary("configured-model")
        )
        .is_none());
        assert!(passthrough_request(&keep, &summary("")).is_none());
    }

    fn header_map(
        plan: &[(String, Option<String>)],
    ) -> std::collections::BTreeMap<&str, Option<&str>> {
        plan.iter()
            .map(|(n, v)| (n.as_str(), v.as_deref()))
            .collect()
    }

    #[test]
    fn every_attempt_sets_or_removes_each_header_it_depends_on() {
        let anthropic = provider(ProviderKind::Anthropic, None);
        let client = [
            ":method",
            "authorization",
            "x-api-key",
            "x-goog-api-key",
            "OpenAI-Organization",
            "openai-project",
            "anthropic-beta",
            "x-goog-user-project",
            "cookie",
            "user-agent",
            "content-type",
        ];
        let plan = attempt_request_headers(
            &anthropic,
            Some("k"),
            Some("/v1/messages"),
            Some(42),
            client,
        );
        let map = header_map(&plan);
        assert_eq!(map[":authority"], Some("api.example.com"));
        assert_eq!(map[":path"], Some("/v1/messages"));
        assert_eq!(map["content-length"], Some("42"));
        assert_eq!(map["accept-encoding"], Some("identity"));
        assert_eq!(map["x-api-key"], Some("k"));
        assert_eq!(map["anthropic-version"], Some(DEFAULT_ANTHROPIC_VERSION));
        for removed in [
            "authorization",
            "x-goog-api-key",
            "openai-organization",
            "openai-project",
            "anthropic-beta",
            "x-goog-user-project",
            "cookie",
        ] {
            assert_eq!(map.get(removed), Some(&None), "{removed}");
        }
        for kept in ["user-agent", "content-type", ":method"] {
            assert!(!map.contains_key(kept), "{kept}");
        }
        // Unknown body length: content-length is removed, never left from an earlier attempt.
        let plan = attempt_request_headers(&anthropic, None, None, None, []);
        let map = header_map(&plan);
        assert_eq!(map["content-length"], None);
        assert!(!map.contains_key(":path"));
        assert_eq!(map["x-api-key"], None);
    }

    #[test]
    fn allowed_client_headers_stay_but_credentials_are_always_the_gateways() {
        let mut anthropic = provider(ProviderKind::Anthropic, None);
        anthropic.allow_client_headers = vec![
            "anthropic-beta".into(),
            "anthropic-version".into(),
            "authorization".into(),
        ];
        let client = [
            "anthropic-beta",
            "anthropic-version",
            "authorization",
            "openai-organization",
        ];
        let map_owned = attempt_request_headers(&anthropic, Some("k"), None, Some(1), client);
        let map = header_map(&map_owned);
        assert!(!map.contains_key("anthropic-beta"));
        assert!(
            !map.contains_key("anthropic-version"),
            "the client's version stays"
        );
        assert_eq!(
            map["authorization"], None,
            "a credential header is never the client's"
        );
        assert_eq!(map["openai-organization"], None);
        // With a configured version, the gateway's wins.
        anthropic.api_version = Some("2024-01-01".into());
        let map_owned = attempt_request_headers(&anthropic, Some("k"), None, Some(1), client);
        assert_eq!(
            header_map(&map_owned)["anthropic-version"],
            Some("2024-01-01")
        );
    }

    #[test]
    fn keys_come_inline_or_from_the_named_variable_and_a_missing_one_is_named() {
        let mut config = AdapterConfig {
            backend: "b".into(),
            providers: vec![
                provider(ProviderKind::Openai, None),
                provider(ProviderKind::Gemini, None),
            ],
        };
        config.providers[0].api_key = Some("inline".into());
        config.providers[1].api_key_env = Some("GEMINI_KEY".into());
        let env = |name: &str| (name == "GEMINI_KEY").then(|| "from-env\n".to_string());
        assert_eq!(
            resolve_api_keys(&config, env).unwrap(),
            vec![Some("inline".to_string()), Some("from-env".to_string())]
        );
        let error = resolve_api_keys(&config, |_| None).unwrap_err();
        assert!(matches!(error, KeyError::Missing { index: 1, .. }));
        let text = error.to_string();
        assert!(
            text.contains("GEMINI_KEY") && text.contains("host_env_keys"),
            "{text}"
        );
        let error = resolve_api_keys(&config, |_| Some("sk-se\u{1}cret".into())).unwrap_err();
        assert!(!error.to_string().contains("sk-se"), "{error}");
        config.providers[1].api_key = Some("x".into());
        assert!(matches!(
            resolve_api_keys(&config, env),
            Err(KeyError::Both { index: 1, .. })
        ));
    }

    #[test]
    fn environ_values_are_found_by_exact_name() {
        let block = b"A=1\0GEMINI_KEY=abc=def\0GEMINI=no\0EMPTY=\0";
        assert_eq!(
            environ_value(block, "GEMINI_KEY").as_deref(),
            Some("abc=def")
        );
        assert_eq!(environ_value(block, "EMPTY").as_deref(), Some(""));
        assert_eq!(environ_value(block, "GEMINI_K"), None);
        assert_eq!(environ_value(b"", "A"), None);
    }

    #[test]
    fn the_model_header_carries_only_configured_or_safe_names() {
        let configured = provider(ProviderKind::Openai, None);
        assert_eq!(
            model_header_value(&configured, "configured-model"),
            Some("configured-model")
        );
        let mut keep = configured.clone();
        keep.override_model = false;
        assert_eq!(
            model_header_value(&keep, "llama3.2:8b"),
            Some("llama3.2:8b")
        );
        for unsafe_name in [
            "a\r\nset-cookie: x",
            "with space",
            "",
            "é",
            &"m".repeat(129),
        ] {
            assert_eq!(
                model_header_value(&keep, unsafe_name),
                None,
                "{unsafe_name:?}"
            );
        }
    }

    #[test]
    fn operations_are_read_from_the_client_path() {
        assert_eq!(operation_of("/v1/chat/completions"), Operation::Chat);
        assert_eq!(
            operation_of("/openai/v1/chat/completions?x=1"),
            Operation::Chat
        );
        assert_eq!(
            operation_of("/openai/v1/embeddings?x=1"),
            Operation::Other("/embeddings?x=1".into())
        );
        assert_eq!(
            operation_of("/embeddings"),
            Operation::Other("/embeddings".into())
        );
        let mut ollama = provider(ProviderKind::Openai, None);
        ollama.path_prefix = "/ollama/".into();
        assert_eq!(
            other_operation_path(&ollama, "/embeddings"),
            "/ollama/v1/embeddings"
        );
    }

    #[test]
    fn answers_are_planned_from_status_and_headers() {
        let anthropic = provider(ProviderKind::Anthropic, None);
        let openai = provider(ProviderKind::Openai, None);
        let json = Some(&b"application/json"[..]);
        let sse = Some(&b"text/event-stream; charset=utf-8"[..]);
        let gzip = Some(&b"gzip"[..]);
        assert_eq!(
            plan_response(&anthropic, 200, json, None),
            ResponsePlan::TranslateJson
        );
        assert_eq!(
            plan_response(&anthropic, 200, sse, Some(b"identity")),
            ResponsePlan::Stream
        );
        assert_eq!(plan_response(&openai, 200, json, gzip), ResponsePlan::Relay);
        assert_eq!(
            plan_response(&openai, 429, json, None),
            ResponsePlan::TranslateError
        );
        for (p, status, encoding, expected_status, code) in [
            (&anthropic, 200, gzip, 502, "bad_provider_answer"),
            (
                &anthropic,
                200,
                Some(&b"br"[..]),
                502,
                "bad_provider_answer",
            ),
            (&openai, 401, None, 502, "provider_credentials_refused"),
            (&anthropic, 403, gzip, 502, "provider_credentials_refused"),
        ] {
            let ResponsePlan::Replace { status: s, error } =
                plan_response(p, status, json, encoding)
            else {
                panic!("{status} {encoding:?}")
            };
            assert_eq!(s, expected_status);
            let body: serde_json::Value = serde_json::from_slice(&error).unwrap();
            assert_eq!(body["error"]["code"], code);
        }
        // A compressed error keeps its status with a generic body (never the compressed bytes).
        let ResponsePlan::Replace { status, error } = plan_response(&openai, 429, json, gzip)
        else {
            panic!()
        };
        assert_eq!(status, 429);
        let body: serde_json::Value = serde_json::from_slice(&error).unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }

    #[test]
    fn a_credential_refusal_names_the_provider_but_not_its_text() {
        let openai = provider(ProviderKind::Openai, None);
        let ResponsePlan::Replace { error, .. } = plan_response(&openai, 401, None, None) else {
            panic!()
        };
        let text = String::from_utf8(error).unwrap();
        assert!(
            text.contains("The provider p refused the gateway's credentials (status 401)"),
            "{text}"
        );
    }

    #[test]
    fn an_untranslatable_success_becomes_a_502() {
        let context = ResponseContext {
            model: "m".into(),
            created: 1,
            fallback_id: "id".into(),
        };
        let (status, body) = translated_json_or_502(ProviderKind::Anthropic, b"<html>", &context);
        assert_eq!(status, 502);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "bad_provider_answer");
        let (status, _) = translated_json_or_502(ProviderKind::Openai, b"<html>", &context);
        assert_eq!(status, 200, "OpenAI-compatible bodies are relayed");
    }
}
