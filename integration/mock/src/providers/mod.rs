//! The provider endpoints: each submodule reads its provider's requests and writes its answers
//! and errors; this module holds what they share and turns their replies into HTTP responses.

mod anthropic;
mod gemini;
mod ollama;
mod openai;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::body::{self, Pacing, ResponseBody};
use crate::config::Kind;
use crate::faults::Plan;

/// Fixed `created` timestamp of OpenAI-style answers, so whole answers are reproducible.
pub(crate) const CREATED: u64 = 1_700_000_000;

/// One provider request, as the provider modules see it.
pub(crate) struct Exchange<'a> {
    /// The mock's name, used in answers.
    pub name: &'a str,
    /// The key requests must carry, if any.
    pub api_key: Option<&'a str>,
    /// 1-based number of this request on this mock; makes response ids unique.
    pub seq: u64,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
}

impl Exchange<'_> {
    /// The value of header `name` if present and valid text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of query parameter `name` (not percent-decoded).
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        self.query?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// Parses the body as JSON of type `T`; a 400 in the provider's format otherwise.
    pub(crate) fn json_body<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(self.body).map_err(|error| Failure::InvalidRequest {
            message: format!("the request body is not valid JSON for this endpoint: {error}"),
            param: None,
        })
    }
}

/// Why a request gets an error instead of an answer; each provider words it in its own format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Missing or wrong key (401).
    Unauthorized,
    /// A required field or header is missing or malformed (400). `param` names the field.
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },
    /// No such endpoint on this provider (404).
    NotFound,
    /// The request body is larger than the mock accepts (413).
    TooLarge,
    /// An injected fault.
    Injected(StatusCode),
}

impl Failure {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Failure::Unauthorized => StatusCode::UNAUTHORIZED,
            Failure::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Injected(status) => *status,
        }
    }

    /// A 400 about field `param`.
    pub(crate) fn invalid(param: &'static str, message: impl Into<String>) -> Failure {
        Failure::InvalidRequest {
            message: message.into(),
            param: Some(param),
        }
    }

    /// A human-readable sentence for the error body; never includes a key.
    pub(crate) fn message(&self) -> String {
        match self {
            Failure::Unauthorized => "Missing or incorrect API key.".to_string(),
            Failure::InvalidRequest { message, .. } => message.clone(),
            Failure::NotFound => "No such endpoint on this mock provider.".to_string(),
            Failure::TooLarge => "The request body is too large.".to_string(),
            Failure::Injected(status) => format!("Injected fault: status {}.", status.as_u16()),
        }
    }
}

/// A successful answer before it becomes an HTTP response.
pub(crate) enum Reply {
    /// A serialized JSON document, sent whole.
    Json(Bytes),
    /// A stream of pre-rendered events of the given content type, sent one frame per event.
    Stream {
        content_type: &'static str,
        events: Vec<Bytes>,
    },
    /// A short plain-text body.
    Text(&'static str),
}

impl Reply {
    /// A JSON reply of `value`.
    pub(crate) fn json(value: &impl Serialize) -> Reply {
        // Serializing the mock's own answer types cannot fail (no maps with non-string keys).
        Reply::Json(serde_json::to_vec(value).map_or_else(|_| Bytes::new(), Bytes::from))
    }
}

/// Answers one provider request (faults other than pacing already handled by the caller).
pub(crate) fn respond(kind: Kind, exchange: &Exchange<'_>, plan: &Plan) -> Response<ResponseBody> {
    let reply = match kind {
        Kind::Openai => openai::route(exchange),
        Kind::Anthropic => anthropic::route(exchange),
        Kind::Gemini => gemini::route(exchange),
        Kind::Ollama => ollama::route(exchange),
    };
    match reply {
        Ok(reply) => reply_response(reply, plan),
        Err(failure) => error_response(kind, &failure, None),
    }
}

/// An error response in `kind`'s format, with `Retry-After` when given.
pub(crate) fn error_response(
    kind: Kind,
    failure: &Failure,
    retry_after_secs: Option<u64>,
) -> Response<ResponseBody> {
    let body = match kind {
        Kind::Openai | Kind::Ollama => openai::error_body(failure),
        Kind::Anthropic => anthropic::error_body(failure),
        Kind::Gemini => gemini::error_body(failure),
    };
    let mut response = json_response(failure.status(), &body);
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A JSON response sent whole.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(body::whole(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn reply_response(reply: Reply, plan: &Plan) -> Response<ResponseBody> {
    let (content_type, frames, abort_after) = match reply {
        Reply::Json(bytes) => {
            // A reset cuts a whole answer after half of its bytes.
            let abort_after = plan.reset_after_chunks.map(|_| 1);
            let frames = if abort_after.is_some() {
                let half = bytes.len() / 2;
                vec![bytes.slice(..half), bytes.slice(half..)]
            } else {
                vec![bytes]
            };
            ("application/json", frames, abort_after)
        }
        Reply::Text(text) => ("text/plain; charset=utf-8", vec![Bytes::from(text)], None),
        Reply::Stream {
            content_type,
            events,
        } => {
            let abort_after = plan
                .reset_after_chunks
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            (content_type, events, abort_after)
        }
    };
    let is_stream = content_type == SSE;
    let length: usize = frames.iter().map(Bytes::len).sum();
    let body = match (abort_after, <[Bytes; 1]>::try_from(frames)) {
        // The common case needs no task: one frame, nothing to pace.
        (None, Ok([only])) => body::whole(only),
        (_, Ok(single)) => body::paced(single.into(), pacing(plan, is_stream, abort_after)),
        (_, Err(frames)) => body::paced(frames, pacing(plan, is_stream, abort_after)),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if is_stream {
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    } else {
        // Announce the full length so a cut body is visibly incomplete.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

fn pacing(plan: &Plan, is_stream: bool, abort_after: Option<usize>) -> Pacing {
    Pacing {
        delay_between: if is_stream {
            plan.chunk_delay
        } else {
            Default::default()
        },
        abort_after,
    }
}

/// Content type of server-sent event streams.
pub(crate) const SSE: &str = "text/event-stream";

/// One `data: <json>` server-sent event.
pub(crate) fn sse_data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// One `event: <name>` + `data: <json>` server-sent event.
pub(crate) fn sse_event(name: &str, value: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

/// Checks a `Bearer` token against the expected key (no key expected: anything goes).
pub(crate) fn check_bearer(exchange: &Exchange<'_>) -> Result<(), Failure> {
    let Some(expected) = exchange.api_key else {
        return Ok(());
    };
    let token = exchange
        .header("authorization")
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if token == Some(expected) {
        Ok(())
    } else {
        Err(Failure::Unauthorized)
    }
}
