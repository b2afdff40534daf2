//! The downstream router role: one pass over the client's body, then routing.
//!
//! Headers are paused (the Wasm filter needs `allow_on_headers_stop_iteration: true`) until the
//! whole body is in; the routing header is set from the body callback while the headers are
//! still paused, which makes Envoy re-pick the route. Header setters are never called after a
//! Continue (Envoy answers BadArgument and the SDK panics).

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;
use tollgate_core::config::RouterConfig;
use tollgate_core::errors::{GatewayError, OpenAiError, OpenAiErrorBody};
use tollgate_core::request::{
    backend_for_model, check_size, inspect_chat_request, RequestSummary, REQUEST_SUMMARY_PROPERTY,
};

/// The router's configuration, shared by its streams.
pub struct RouterRoot {
    config: Rc<RouterConfig>,
}

impl RouterRoot {
    /// A root holding a parsed configuration.
    pub fn new(config: RouterConfig) -> Self {
        Self {
            config: Rc::new(config),
        }
    }
}

/// One client request.
pub struct RouterStream {
    config: Rc<RouterConfig>,
    /// A local reply was sent: nothing more to do for this stream.
    answered: bool,
    /// The response is an error not in the OpenAI format (e.g. Envoy's own plain-text 503
    /// when every provider is down): its status, while its body is buffered to be replaced.
    rewrite_error_status: Option<u16>,
    /// Request body bytes buffered so far (read again if the body ends with trailers).
    request_body_size: usize,
}

impl RouterStream {
    /// A stream of the router role.
    pub fn new(root: &RouterRoot) -> Self {
        Self {
            config: Rc::clone(&root.config),
            answered: false,
            rewrite_error_status: None,
            request_body_size: 0,
        }
    }

    fn reject(&mut self, error: &GatewayError) -> Action {
        self.answered = true;
        crate::send_openai_error(self, error)
    }

    /// The whole body is in (end of body or trailers): route, or answer locally.
    fn on_request_complete(&mut self) -> Action {
        let body = self
            .get_http_request_body(0, self.request_body_size)
            .unwrap_or_default();
        match self.route(&body) {
            Ok(()) => Action::Continue,
            Err(error) => self.reject(&error),
        }
    }

    fn route(&mut self, body: &[u8]) -> Result<(), GatewayError> {
        let inspected = inspect_chat_request(body, self.config.max_request_bytes)?;
        let backend = backend_for_model(&self.config, inspected.model.as_deref())?;
        if let Some(backend) = backend {
            self.set_http_request_header(&self.config.backend_header, Some(backend));
        }
        if let Some(rewritten) = &inspected.rewritten_body {
            self.set_http_request_body(0, body.len(), rewritten);
            self.set_http_request_header("content-length", Some(&rewritten.len().to_string()));
        }
        let summary = RequestSummary {
            model: inspected.model.unwrap_or_default(),
            stream: inspected.stream,
            backend: backend.map(str::to_string),
        };
        if let Ok(json) = serde_json::to_vec(&summary) {
            self.set_property(vec![REQUEST_SUMMARY_PROPERTY], Some(&json));
        }
        Ok(())
    }
}

impl Context for RouterStream {}

impl HttpContext for RouterStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // The backend is the router's choice, never the client's.
        self.set_http_request_header(&self.config.backend_header, None);
        if end_of_stream {
            return Action::Continue; // no body: nothing to route on (e.g. GET /v1/models)
        }
        let declared = self
            .get_http_request_header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(size) = declared {
            if let Err(error) = check_size(size, self.config.max_request_bytes) {
                return self.reject(&error);
            }
        }
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Pause;
        }
        if let Err(error) = check_size(body_size, self.config.max_request_bytes) {
            return self.reject(&error);
        }
        self.request_body_size = body_size;
        if !end_of_stream {
            return Action::Pause; // buffer until the whole body is in
        }
        self.on_request_complete()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.answered {
            return Action::Pause;
        }
        self.on_request_complete()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Continue;
        }
        let status = self
            .get_http_response_header(":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(200);
        let is_json = self
            .get_http_response_header("content-type")
            .is_some_and(|t| t.trim_start().starts_with("application/json"));
        if status >= 400 && !is_json {
            self.rewrite_error_status = Some(status);
            self.set_http_response_header("content-length", None);
            self.set_http_response_header("content-type", Some("application/json"));
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(status) = self.rewrite_error_status else {
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause;
        }
        let text = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        let body = envoy_error_as_openai(status, &text);
        self.set_http_response_body(0, body_size, &body);
        Action::Continue
    }
}

/// An error answered by Envoy itself (no provider reachable, timeout, body over the buffer
/// limit...) in the OpenAI format, keeping Envoy's short explanation, which holds no secrets.
pub fn envoy_error_as_openai(status: u16, text: &[u8]) -> Vec<u8> {
    const MAX_DETAIL: usize = 300;
    let detail = String::from_utf8_lossy(&text[..text.len().min(MAX_DETAIL)])
        .trim()
        .to_string();
    let summary = if status >= 500 {
        "The gateway could not get an answer from any provider"
    } else {
        "The gateway refused the request"
    };
    let message = if detail.is_empty() {
        format!("{summary} (status {status}).")
    } else {
        format!("{summary} (status {status}): {detail}")
    };
    let kind = tollgate_core::errors::error_type_for_status(status);
    OpenAiErrorBody {
        error: OpenAiError {
            message,
            kind: kind.to_string(),
            param: None,
            code: Some(format!("gateway_{status}")),
        },
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn envoy_replies_become_openai_errors_with_their_status_kind() {
        let cases: [(u16, &[u8], &str, &str); 3] = [
            (
                503,
                b"upstream connect error or disconnect/reset before headers",
                "server_error",
                "any provider (status 503): upstream connect error",
            ),
            (
                413,
                b"Payload Too Large",
                "invalid_request_error",
                "refused the request (status 413): Payload Too Large",
            ),
            (504, b"", "server_error", "any provider (status 504)."),
        ];
        for (status, text, kind, message_part) in cases {
            let body: Value = serde_json::from_slice(&envoy_error_as_openai(status, text)).unwrap();
            assert_eq!(body["error"]["type"], json!(kind));
            assert_eq!(body["error"]["code"], json!(format!("gateway_{status}")));
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(message_part),
                "{body}"
            );
        }
    }
}
