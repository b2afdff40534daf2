//! The mock's own endpoints under `/__mock/`, for clients that are not Rust tests (scripts,
//! curl, Envoy health checks):
//!
//! - `GET /__mock/health`: 200 `ok`.
//! - `GET /__mock/received`: `{"name","kind","count","requests":[{method,path,headers,body}]}`,
//!   `count` being every provider request so far and `requests` the last 64 (credentials
//!   redacted).
//! - `GET /__mock/faults`: the instance faults as JSON.
//! - `POST /__mock/faults` with an [`InstanceFaults`] JSON body: replaces them (`fail_first`
//!   counts from now) and answers with the faults now in effect.
//! - `POST /__mock/reset`: forgets received requests and sets the count back to 0.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::{self, ResponseBody};
use crate::faults::InstanceFaults;
use crate::providers::json_response;
use crate::server::MockState;

/// Largest faults document accepted.
const MAX_CONTROL_BODY_BYTES: usize = 64 * 1024;

pub(crate) async fn handle(
    state: &MockState,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let method = request.method().clone();
    match (method, request.uri().path()) {
        (Method::GET | Method::HEAD, "/__mock/health") => {
            let mut response = Response::new(body::whole("ok"));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        (Method::GET, "/__mock/received") => json_response(StatusCode::OK, &received(state)),
        (Method::GET, "/__mock/faults") => faults_response(state),
        (Method::POST, "/__mock/faults") => set_faults(state, request).await,
        (Method::POST, "/__mock/reset") => {
            state.reset_received();
            json_response(StatusCode::OK, &received(state))
        }
        _ => control_error(
            StatusCode::NOT_FOUND,
            "no such mock control endpoint".into(),
        ),
    }
}

fn received(state: &MockState) -> Value {
    let requests: Vec<Value> = state
        .received()
        .snapshot()
        .iter()
        .map(|request| request.to_public_json())
        .collect();
    json!({
        "name": state.name,
        "kind": state.kind.as_str(),
        "count": state.request_count(),
        "requests": requests,
    })
}

fn faults_response(state: &MockState) -> Response<ResponseBody> {
    let faults = state.faults().instance.clone();
    match serde_json::to_value(faults) {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(error) => control_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn set_faults(state: &MockState, request: Request<Incoming>) -> Response<ResponseBody> {
    let body = match Limited::new(request.into_body(), MAX_CONTROL_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return control_error(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let faults: InstanceFaults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(error) => {
            return control_error(StatusCode::BAD_REQUEST, format!("invalid faults: {error}"))
        }
    };
    match state.set_faults(faults) {
        Ok(()) => faults_response(state),
        Err(error) => control_error(StatusCode::BAD_REQUEST, error.to_string()),
    }
}

fn control_error(status: StatusCode, message: String) -> Response<ResponseBody> {
    json_response(status, &json!({ "error": message }))
}
