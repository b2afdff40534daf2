//! Ollama: its OpenAI-compatible `/v1/chat/completions` (no authentication, like the real
//! server), `GET /v1/models`, `GET /api/tags`, and the `GET /` banner scripts probe for.

use hyper::Method;
use serde_json::{json, Value};

use super::{openai, Exchange, Failure, Reply, CREATED};
use crate::LISTED_MODELS;

pub(super) fn route(exchange: &Exchange<'_>) -> Result<Reply, Failure> {
    match (exchange.method, exchange.path) {
        (&Method::POST, openai::CHAT_PATH) => openai::chat(exchange, "fp_ollama"),
        (&Method::GET, "/api/tags") => Ok(Reply::json(&tags())),
        (&Method::GET, "/v1/models") => Ok(Reply::json(&models())),
        (&Method::GET | &Method::HEAD, "/") => Ok(Reply::Text("Ollama is running")),
        _ => Err(Failure::NotFound),
    }
}

fn tags() -> Value {
    let models: Vec<Value> = LISTED_MODELS
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "model": name,
                "modified_at": "2024-01-01T00:00:00Z",
                "size": 0,
                "digest": "0000000000000000000000000000000000000000000000000000000000000000",
                "details": {"format": "gguf", "family": "mock"},
            })
        })
        .collect();
    json!({ "models": models })
}

fn models() -> Value {
    let data: Vec<Value> = LISTED_MODELS
        .iter()
        .map(|name| json!({"id": name, "object": "model", "created": CREATED, "owned_by": "library"}))
        .collect();
    json!({"object": "list", "data": data})
}
