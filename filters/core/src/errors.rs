//! Errors in the OpenAI format: the gateway's own (400, 404, 413, 503) and providers' error
//! bodies translated so a client sees one format whichever provider failed.

use crate::config::ProviderKind;
use serde::{Deserialize, Serialize};

/// OpenAI's error envelope `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiErrorBody {
    /// The error itself.
    pub error: OpenAiError,
}

/// OpenAI's error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAiError {
    /// Human-readable explanation.
    pub message: String,
    /// Category: `invalid_request_error`, `authentication_error`, `rate_limit_error`, `server_error`...
    #[serde(rename = "type")]
    pub kind: String,
    /// The request parameter at fault, if any.
    pub param: Option<String>,
    /// Machine-readable code, e.g. `model_not_found`.
    pub code: Option<String>,
}

impl OpenAiErrorBody {
    /// The serialized body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"error":{"message":"error","type":"server_error","param":null,"code":null}}"#
                .to_vec()
        })
    }
}

/// An error the gateway answers in the OpenAI format: a request it refuses before any provider
/// sees it, or a provider answer it cannot pass on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Not JSON, or JSON of the wrong shape: 400.
    #[error("{message}")]
    InvalidRequest {
        /// What was wrong, naming the parameter.
        message: String,
        /// The parameter at fault.
        param: Option<String>,
    },
    /// The model is not served by this gateway: 404 `model_not_found`.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// The body exceeds the router's limit: 413.
    #[error("Request body of at least {size} bytes exceeds the gateway's limit of {limit} bytes.")]
    BodyTooLarge {
        /// Bytes received so far.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The gateway cannot tell which provider serves the attempt: 503.
    #[error("{0}")]
    Unavailable(String),
    /// No operation of this gateway has that path: 404 (OpenAI's "Invalid URL").
    #[error("Invalid URL ({method} {path}): this gateway does not serve it.")]
    UnknownOperation {
        /// The request method.
        method: String,
        /// The request path, without its query string.
        path: String,
    },
    /// The path is served, but not with this method: 405.
    #[error("Method {method} is not allowed on {path}; use {allow}.")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path, without its query string.
        path: String,
        /// The method the path is served with (the `allow` header's value).
        allow: &'static str,
    },
    /// A provider refused the gateway's own credentials (its 401/403): 502. The provider's
    /// text is not relayed (it quotes the masked key); the log gets the detail.
    #[error("The provider {provider} refused the gateway's credentials (status {status}); the gateway's operator must fix its key for that provider.")]
    ProviderCredentialsRefused {
        /// The provider's name in the Backend.
        provider: String,
        /// The provider's status (401 or 403).
        status: u16,
    },
    /// A provider's answer the gateway must read but cannot (an encoding it does not decode,
    /// a body that does not translate, a stream over the buffer caps): 502.
    #[error("{0}")]
    BadProviderAnswer(String),
}

impl GatewayError {
    /// A 400 about `param`.
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        GatewayError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::InvalidRequest { .. } => 400,
            GatewayError::ModelNotFound(_) => 404,
            GatewayError::BodyTooLarge { .. } => 413,
            GatewayError::Unavailable(_) => 503,
            GatewayError::UnknownOperation { .. } => 404,
            GatewayError::MethodNotAllowed { .. } => 405,
            GatewayError::ProviderCredentialsRefused { .. }
            | GatewayError::BadProviderAnswer(_) => 502,
        }
    }

    /// The OpenAI-format body to answer with.
    pub fn to_openai(&self) -> OpenAiErrorBody {
        let (kind, param, code) = match self {
            GatewayError::InvalidRequest { param, .. } => {
                ("invalid_request_error", param.clone(), None)
            }
            GatewayError::ModelNotFound(_) => (
                "invalid_request_error",
                Some("model".into()),
                Some("model_not_found"),
            ),
            GatewayError::BodyTooLarge { .. } => {
                ("invalid_request_error", None, Some("request_too_large"))
            }
            GatewayError::Unavailable(_) => ("server_error", None, Some("no_provider")),
            GatewayError::UnknownOperation { .. } => {
                ("invalid_request_error", None, Some("unknown_url"))
            }
            GatewayError::MethodNotAllowed { .. } => {
                ("invalid_request_error", None, Some("method_not_allowed"))
            }
            GatewayError::ProviderCredentialsRefused { .. } => {
                ("server_error", None, Some("provider_credentials_refused"))
            }
            GatewayError::BadProviderAnswer(_) => {
                ("server_error", None, Some("bad_provider_answer"))
            }
        };
        OpenAiErrorBody {
            error: OpenAiError {
                message: self.to_string(),
                kind: kind.into(),
                param,
                code: code.map(str::to_string),
            },
        }
    }
}

/// The OpenAI error type for an upstream status, when the provider's own type does not say.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Anthropic's `{"type":"error","error":{"type":..,"message":..}}`.
#[derive(Deserialize)]
struct AnthropicErrorBody {
    error: AnthropicError,
}

#[derive(Deserialize)]
struct AnthropicError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Gemini's (Google API) `{"error":{"code":..,"message":..,"status":..}}`.
#[derive(Deserialize)]
struct GeminiErrorBody {
    error: GeminiError,
}

#[derive(Deserialize)]
struct GeminiError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Translates a provider's error body (sent with `status`) into an OpenAI error body.
///
/// The status itself is kept by the caller. A body already in the OpenAI shape is returned
/// as is; an unreadable one becomes a generic message naming the status, never echoing bytes
/// that could hold anything.
pub fn translate_error_body(kind: ProviderKind, status: u16, body: &[u8]) -> Vec<u8> {
    let fallback_type = error_type_for_status(status);
    let (message, code) = match kind {
        ProviderKind::Openai => {
            // serde skips unread fields without checking their UTF-8: check it here, so the
            // body relayed as JSON is JSON.
            if std::str::from_utf8(body).is_ok()
                && serde_json::from_slice::<OpenAiErrorProbe>(body).is_ok()
            {
                return body.to_vec();
            }
            (None, None)
        }
        ProviderKind::Anthropic => match serde_json::from_slice::<AnthropicErrorBody>(body) {
            Ok(b) => (b.error.message, b.error.kind),
            Err(_) => (None, None),
        },
        ProviderKind::Gemini => match serde_json::from_slice::<GeminiErrorBody>(body) {
            Ok(b) => (b.error.message, b.error.status),
            Err(_) => (None, None),
        },
    };
    OpenAiErrorBody {
        error: OpenAiError {
            message: message
                .unwrap_or_else(|| format!("upstream provider answered with status {status}")),
            kind: fallback_type.to_string(),
            param: None,
            code,
        },
    }
    .to_bytes()
}

/// The provider's machine-readable error code (`invalid_api_key`, `authentication_error`,
/// `PERMISSION_DENIED`...) from its error body, for logs: a short token of letters, digits,
/// `_`, `-` and `.`, never the message (which may quote a masked key).
pub fn provider_error_code(kind: ProviderKind, status: u16, body: &[u8]) -> Option<String> {
    let translated: OpenAiErrorBody =
        serde_json::from_slice(&translate_error_body(kind, status, body)).ok()?;
    let code = translated.error.code?;
    let safe = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    safe.then_some(code)
}

/// Recognizes a body already in the OpenAI error shape.
#[derive(Deserialize)]
struct OpenAiErrorProbe {
    #[allow(dead_code)]
    error: OpenAiErrorMessage,
}

#[derive(Deserialize)]
struct OpenAiErrorMessage {
    #[allow(dead_code)]
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn as_json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn gateway_errors_have_openai_status_and_code() {
        let cases = [
            (
                GatewayError::invalid("'messages' is required", Some("messages")),
                400,
                None,
                Some("messages"),
            ),
            (
                GatewayError::ModelNotFound("gpt-9".into()),
                404,
                Some("model_not_found"),
                Some("model"),
            ),
            (
                GatewayError::BodyTooLarge { size: 10, limit: 5 },
                413,
                Some("request_too_large"),
                None,
            ),
        ];
        for (error, status, code, param) in cases {
            assert_eq!(error.status(), status);
            let body = as_json(&error.to_openai().to_bytes());
            assert_eq!(body["error"]["code"], json!(code), "{error}");
            assert_eq!(body["error"]["param"], json!(param), "{error}");
            assert!(body["error"]["message"].as_str().unwrap().len() > 10);
        }
    }

    #[test]
    fn a_provider_error_code_is_read_for_logs_without_its_message() {
        let openai = br#"{"error":{"message":"Incorrect API key provided: sk-****abcd","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(
            provider_error_code(ProviderKind::Openai, 401, openai).as_deref(),
            Some("invalid_api_key")
        );
        let anthropic = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        assert_eq!(
            provider_error_code(ProviderKind::Anthropic, 401, anthropic).as_deref(),
            Some("authentication_error")
        );
        let odd = br#"{"error":{"message":"m","type":"t","code":"has space sk-123"}}"#;
        assert_eq!(provider_error_code(ProviderKind::Openai, 403, odd), None);
        assert_eq!(provider_error_code(ProviderKind::Gemini, 403, b""), None);
    }

    #[test]
    fn provider_error_bodies_become_openai_errors() {
        let cases: [(ProviderKind, u16, &[u8], Value); 4] = [
            (
                ProviderKind::Anthropic,
                529,
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                json!({"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded_error"}}),
            ),
            (
                ProviderKind::Gemini,
                429,
                br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
                json!({"error":{"message":"Quota exceeded","type":"rate_limit_error","param":null,"code":"RESOURCE_EXHAUSTED"}}),
            ),
            (
                ProviderKind::Openai,
                401,
                br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                json!({"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}),
            ),
            (
                ProviderKind::Openai,
                502,
                b"<html>bad gateway</html>",
                json!({"error":{"message":"upstream provider answered with status 502","type":"server_error","param":null,"code":null}}),
            ),
        ];
        for (kind, status, body, expected) in cases {
            assert_eq!(
                as_json(&translate_error_body(kind, status, body)),
                expected,
                "{kind:?} {status}"
            );
        }
    }
}
