//! The adapter's decisions for one attempt, whichever provider Envoy chose: the upstream path,
//! credentials and body, and the translator that turns the answer back into OpenAI's format.

use crate::anthropic::{self, AnthropicStreamTranslator};
use crate::config::{ProviderEndpoint, ProviderKind};
use crate::errors::GatewayError;
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

/// The credential headers for `provider`: each of [`CREDENTIAL_HEADERS`] with its value, or
/// `None` to remove it.
pub fn credential_headers(provider: &ProviderEndpoint) -> [(&'static str, Option<String>); 4] {
    let key = provider.api_key.clone();
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
            let headers = credential_headers(&provider(kind, key));
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
}
