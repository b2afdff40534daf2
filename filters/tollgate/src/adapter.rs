//! The upstream adapter role: runs once per attempt, after Envoy picked the endpoint.
//!
//! It finds which provider the endpoint is (the generator writes the provider's name into the
//! endpoint metadata `filter_metadata.tollgate.provider`), then rewrites `:path`,
//! `:authority`, credentials and body for it, and translates the answer back to OpenAI's
//! format: buffered for JSON and errors, chunk by chunk for streams.
//!
//! Header mutations persist across retries in Envoy, so every header is set or removed
//! outright (never appended), and the credential headers of every other provider are removed.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;
use std::time::UNIX_EPOCH;
use tollgate_core::config::{AdapterConfig, ProviderEndpoint, ProviderKind};
use tollgate_core::errors::{translate_error_body, GatewayError};
use tollgate_core::request::{RequestSummary, REQUEST_SUMMARY_PROPERTY};
use tollgate_core::translate::{
    credential_headers, passthrough_request, translate_json_response, upstream_request,
    ResponseContext, StreamTranslator, UpstreamRequest,
};

/// Response header naming the provider that served the answer.
pub const PROVIDER_HEADER: &str = "x-tollgate-provider";
/// Response header naming the model asked of that provider.
pub const MODEL_HEADER: &str = "x-tollgate-model";

/// Property paths where the chosen endpoint's provider name may be found, tried in order.
/// `xds.upstream_host_metadata` is Envoy's attribute for the upstream host's metadata;
/// the bare `upstream_host_metadata` is the older Wasm-only spelling.
pub const PROVIDER_PROPERTY_PATHS: [&[&str]; 2] = [
    &[
        "xds",
        "upstream_host_metadata",
        "filter_metadata",
        "tollgate",
        "provider",
    ],
    &[
        "upstream_host_metadata",
        "filter_metadata",
        "tollgate",
        "provider",
    ],
];

/// The adapter's configuration, shared by its streams.
pub struct AdapterRoot {
    config: Rc<AdapterConfig>,
}

impl AdapterRoot {
    /// A root holding a parsed configuration.
    pub fn new(config: AdapterConfig) -> Self {
        Self {
            config: Rc::new(config),
        }
    }
}

/// How the answer's body is handled.
enum ResponseMode {
    /// Relayed as is (an OpenAI-compatible provider's success).
    Relay,
    /// Buffered, then translated from the provider's JSON.
    TranslateJson,
    /// Buffered, then translated from the provider's error format (status kept).
    TranslateError(u16),
    /// Translated chunk by chunk.
    Stream(Box<StreamTranslator>),
}

/// One attempt.
pub struct AdapterStream {
    config: Rc<AdapterConfig>,
    provider: Option<usize>,
    upstream: Option<UpstreamRequest>,
    response: ResponseMode,
    answered: bool,
    /// Request body bytes buffered so far (read again if the body ends with trailers).
    request_body_size: usize,
    /// Reused output buffer for stream translation.
    out: Vec<u8>,
    /// The body goes to the provider unchanged: request callbacks only continue.
    passthrough: bool,
}

impl AdapterStream {
    /// A stream of the adapter role.
    pub fn new(root: &AdapterRoot) -> Self {
        Self {
            config: Rc::clone(&root.config),
            provider: None,
            upstream: None,
            response: ResponseMode::Relay,
            answered: false,
            request_body_size: 0,
            out: Vec::new(),
            passthrough: false,
        }
    }

    fn provider(&self) -> Option<&ProviderEndpoint> {
        self.provider.and_then(|i| self.config.providers.get(i))
    }

    /// The chosen endpoint's provider: from its metadata, or the only provider there is.
    fn find_provider(&self) -> Option<usize> {
        if self.config.providers.len() == 1 {
            // Nothing to choose: skip the metadata lookup (a CEL evaluation in Envoy).
            return Some(0);
        }
        let name = PROVIDER_PROPERTY_PATHS
            .iter()
            .find_map(|path| self.get_property(path.to_vec()))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        match name {
            Some(name) => self.config.providers.iter().position(|p| p.name == name),
            None if self.config.providers.len() == 1 => Some(0),
            None => None,
        }
    }

    fn reject(&mut self, error: &GatewayError) -> Action {
        self.answered = true;
        crate::send_openai_error(self, error)
    }

    /// The upstream request when the body can pass unchanged, decided from the router's
    /// summary alone (no body read, no pause): OpenAI-compatible providers that keep the model.
    fn passthrough(&self) -> Option<UpstreamRequest> {
        let provider = self.provider()?;
        if provider.kind != ProviderKind::Openai {
            return None;
        }
        let summary = self.get_property(vec![REQUEST_SUMMARY_PROPERTY])?;
        let summary: RequestSummary = serde_json::from_slice(&summary).ok()?;
        passthrough_request(provider, &summary)
    }

    /// Points the (still paused) request headers at the chosen provider.
    fn set_upstream_headers(&self, provider: &ProviderEndpoint, path: &str) {
        self.set_http_request_header(":authority", Some(&provider.authority));
        self.set_http_request_header(":path", Some(path));
        for (name, value) in credential_headers(provider) {
            self.set_http_request_header(name, value.as_deref());
        }
    }

    /// Rewrites headers (still paused) and body for the chosen provider.
    fn prepare_request(&mut self, body: &[u8]) -> Result<(), GatewayError> {
        let provider = self.provider().ok_or_else(|| {
            GatewayError::Unavailable(format!(
                "backend {}: no provider matches the chosen endpoint",
                self.config.backend
            ))
        })?;
        let upstream = upstream_request(provider, body)?;
        self.set_upstream_headers(provider, &upstream.path);
        if let Some(new_body) = &upstream.body {
            self.set_http_request_body(0, body.len(), new_body);
            self.set_http_request_header("content-length", Some(&new_body.len().to_string()));
        }
        self.upstream = Some(upstream);
        Ok(())
    }

    /// The whole request body is in (end of body or trailers): prepare it, or answer locally.
    fn on_request_complete(&mut self) -> Action {
        let body = self
            .get_http_request_body(0, self.request_body_size)
            .unwrap_or_default();
        match self.prepare_request(&body) {
            Ok(()) => Action::Continue,
            Err(error) => self.reject(&error),
        }
    }

    fn response_context(&self) -> ResponseContext {
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        ResponseContext {
            model: self
                .upstream
                .as_ref()
                .map(|u| u.model.clone())
                .unwrap_or_default(),
            created: now.as_secs(),
            fallback_id: format!("chatcmpl-{:x}", now.as_nanos()),
        }
    }
}

impl Context for AdapterStream {}

impl HttpContext for AdapterStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.provider = self.find_provider();
        if end_of_stream {
            // No body to translate: only point the request at the provider.
            if let Some(provider) = self.provider() {
                let authority = provider.authority.clone();
                let credentials = credential_headers(provider);
                self.set_http_request_header(":authority", Some(&authority));
                for (name, value) in credentials {
                    self.set_http_request_header(name, value.as_deref());
                }
            }
            return Action::Continue;
        }
        if let Some(upstream) = self.passthrough() {
            if let Some(provider) = self.provider() {
                self.set_upstream_headers(provider, &upstream.path);
            }
            self.upstream = Some(upstream);
            self.passthrough = true;
            return Action::Continue;
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.passthrough {
            return Action::Continue;
        }
        self.request_body_size = body_size;
        if self.answered || !end_of_stream {
            return Action::Pause;
        }
        self.on_request_complete()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.passthrough {
            return Action::Continue;
        }
        if self.answered {
            return Action::Pause;
        }
        self.on_request_complete()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Continue;
        }
        let Some(provider) = self.provider() else {
            return Action::Continue;
        };
        let name = provider.name.clone();
        let Some(upstream) = self.upstream.as_ref() else {
            // A request without body (e.g. GET /v1/models) was relayed untranslated.
            self.set_http_response_header(PROVIDER_HEADER, Some(&name));
            return Action::Continue;
        };
        let kind = provider.kind;
        let model = upstream.model.clone();
        let status = self
            .get_http_response_header(":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(200);
        let is_event_stream = self
            .get_http_response_header("content-type")
            .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
        self.response = if status >= 400 {
            ResponseMode::TranslateError(status)
        } else if kind == ProviderKind::Openai {
            ResponseMode::Relay
        } else if is_event_stream {
            match StreamTranslator::for_provider(kind, &self.response_context()) {
                Some(translator) => ResponseMode::Stream(Box::new(translator)),
                None => ResponseMode::Relay,
            }
        } else {
            ResponseMode::TranslateJson
        };
        match self.response {
            ResponseMode::Relay => {}
            ResponseMode::Stream(_) => {
                self.set_http_response_header("content-length", None);
                self.set_http_response_header("content-type", Some("text/event-stream"));
            }
            ResponseMode::TranslateJson | ResponseMode::TranslateError(_) => {
                self.set_http_response_header("content-length", None);
                self.set_http_response_header("content-type", Some("application/json"));
            }
        }
        self.set_http_response_header(PROVIDER_HEADER, Some(&name));
        self.set_http_response_header(MODEL_HEADER, Some(&model));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let streaming = match self.response {
            ResponseMode::Relay => return Action::Continue,
            ResponseMode::Stream(_) => true,
            ResponseMode::TranslateJson | ResponseMode::TranslateError(_) => false,
        };
        if !streaming && !end_of_stream {
            return Action::Pause; // buffer the whole (small) JSON answer
        }
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        let kind = self.provider().map_or(ProviderKind::Openai, |p| p.kind);
        let json_context = (!streaming).then(|| self.response_context());
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        match (&mut self.response, json_context) {
            (ResponseMode::Stream(translator), _) => {
                translator.push(&body, &mut out);
                if end_of_stream {
                    translator.finish(&mut out);
                }
            }
            (ResponseMode::TranslateError(status), _) => {
                out = translate_error_body(kind, *status, &body)
            }
            (ResponseMode::TranslateJson, Some(context)) => {
                out = match translate_json_response(kind, &body, &context) {
                    Ok(Some(translated)) => translated,
                    Ok(None) => body,
                    Err(error) => error.to_openai().to_bytes(),
                };
            }
            (ResponseMode::Relay | ResponseMode::TranslateJson, _) => out = body,
        }
        self.set_http_response_body(0, body_size, &out);
        self.out = out;
        Action::Continue
    }
}
