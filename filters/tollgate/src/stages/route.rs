//! The route stage: the pipeline's first, always on. In the headers phase it decides which
//! operation this is; with the whole body in, it makes the one pass over it (validation,
//! model, stream, output cap), picks the backend from the model, and forces usage on streams.
//!
//! The routing header is set from the body callback while the headers are still paused, which
//! makes Envoy re-pick the route. Header setters are never called after a Continue (Envoy
//! answers BadArgument).

use crate::host;
use tollgate_core::config::RouterConfig;
use tollgate_core::errors::{GatewayError, OpenAiError, OpenAiErrorBody};
use tollgate_core::facts::RequestFacts;
use tollgate_core::names::property;
use tollgate_core::operations;
use tollgate_core::request::{backend_for_model, parse_chat_request, RequestSummary};
use tollgate_core::stage::LocalReply;

/// What the route stage made of the request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A chat completion: read the body, route, translate.
    Chat,
    /// Not ours to look at (MCP and plain routes, opted-in operations): untouched, not
    /// buffered unless a stage asks for the body.
    PassThrough,
}

/// The headers phase: removes what only the gateway may set, and decides what the request is
/// (`tollgate_core::operations`), answering it when the gateway must: refused operations
/// (404/405), `GET …/models`. With `routing` off (a capability loaded alone) nothing is
/// refused and the body is read only for facts.
pub fn on_request_headers(
    config: &RouterConfig,
    facts: &RequestFacts,
    end_of_stream: bool,
    routing: bool,
) -> Result<Operation, LocalReply> {
    if !routing {
        return Ok(if end_of_stream {
            Operation::PassThrough
        } else {
            Operation::Chat
        });
    }
    // The backend is the router's choice, never the client's. Removed only when sent: any
    // request-header change makes Envoy clear its route cache and route again (~20 µs).
    if facts.headers.contains(&config.backend_header) {
        host::set_request_header(&config.backend_header, None);
    }
    match operations::decide(config, facts.route.as_deref(), &facts.method, &facts.path) {
        operations::Operation::Chat if end_of_stream => Err(error_reply(&GatewayError::invalid(
            "The request has no body: a chat completion needs a JSON body with 'messages'.",
            None,
        ))),
        operations::Operation::Chat => {
            // Only the operation reaches the provider, not the client's query string.
            if let Some((path, _query)) = facts.path.split_once('?') {
                host::set_request_header(":path", Some(path));
            }
            Ok(Operation::Chat)
        }
        operations::Operation::PassThrough => Ok(Operation::PassThrough),
        operations::Operation::ListModels(body) => Err(LocalReply::json(200, body)),
        operations::Operation::Refuse(error) => Err(error_reply(&error)),
    }
}

fn error_reply(error: &GatewayError) -> LocalReply {
    LocalReply::json(error.status(), error.to_openai().to_bytes())
}

/// The whole body is in: the one pass over it. Fills `facts`; replaces `body` when the
/// gateway had to change it (`*changed`).
pub fn on_request_body(
    config: &RouterConfig,
    facts: &mut RequestFacts,
    body: &mut Vec<u8>,
    changed: &mut bool,
    routing: bool,
) -> Result<(), GatewayError> {
    // The one parse: validation, the facts, and the rewrite spliced from the same slices.
    let chat = parse_chat_request(body, config.max_request_bytes)?;
    let backend = if routing {
        backend_for_model(config, chat.model.as_deref())?
    } else {
        None
    };
    if let Some(backend) = backend {
        host::set_request_header(&config.backend_header, Some(backend));
    }
    // A Backend without an adapter gets its model from here: the one splice the adapter
    // would have made (include_usage included).
    let native_model = target_backend(config, facts.route.as_deref(), backend)
        .and_then(|b| config.native_backends.get(b))
        .and_then(Option::as_deref)
        .filter(|_| routing);
    let rewritten = chat.rewritten_body(native_model)?;
    facts.model = chat.model;
    facts.stream = chat.stream;
    facts.max_output_tokens = chat.max_output_tokens;
    facts.backend = backend.map(str::to_string);
    // Alone, a capability reads the body for facts and never changes the client's bytes.
    if let Some(rewritten) = rewritten.filter(|_| routing) {
        *body = rewritten;
        *changed = true;
    }
    facts.body_bytes = body.len();
    Ok(())
}

/// The Backend the request goes to: the one its model chose, else its route's only one.
fn target_backend<'c>(
    config: &'c RouterConfig,
    route: Option<&str>,
    chosen: Option<&'c str>,
) -> Option<&'c str> {
    chosen.or_else(|| {
        route
            .and_then(|r| config.route_backends.get(r))
            .map(String::as_str)
    })
}

/// Publishes the adapter's projection of the facts (filter state crosses to the upstream
/// filter); called once the body is final. A Backend the generator gave no adapter gets
/// nothing: Envoy's first filter-state write per request costs ~12 µs.
pub fn publish_for_adapter(config: &RouterConfig, facts: &RequestFacts) {
    let target = target_backend(config, facts.route.as_deref(), facts.backend.as_deref());
    if target.is_some_and(|b| config.native_backends.contains_key(b)) {
        return;
    }
    let summary = RequestSummary {
        model: facts.model.clone().unwrap_or_default(),
        stream: facts.stream,
        backend: facts.backend.clone(),
        body_bytes: Some(facts.body_bytes),
    };
    if let Ok(json) = serde_json::to_vec(&summary) {
        host::set_property(property::REQUEST_FACTS, &json);
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
