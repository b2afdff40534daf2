//! What a mock received: a bounded log of the last requests, for tests to inspect.

use std::collections::VecDeque;

use serde_json::{json, Value};

/// How many requests a mock remembers; older ones are forgotten (the count keeps going).
pub(crate) const KEPT_REQUESTS: usize = 64;

/// Headers whose values are credentials: `/__mock/received` shows them as `[redacted]`.
const SECRET_HEADERS: [&str; 4] = ["authorization", "x-api-key", "x-goog-api-key", "api-key"];

/// One request as the mock received it (provider endpoints only, not `/__mock/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path with the query string, e.g. `/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse`.
    pub path: String,
    /// Header names (lower case) and values, in arrival order; non-UTF-8 bytes replaced.
    pub headers: Vec<(String, String)>,
    /// The raw request body.
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The JSON shown by `GET /__mock/received`: credentials redacted, including a `key=`
    /// query parameter; the body as JSON when it parses, as text otherwise.
    pub(crate) fn to_public_json(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if SECRET_HEADERS.contains(&name.as_str()) {
                    "[redacted]"
                } else {
                    value.as_str()
                };
                (name.clone(), Value::String(shown.to_string()))
            })
            .collect();
        let body = self
            .body_json()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&self.body).into_owned()));
        json!({
            "method": self.method,
            "path": redact_key_param(&self.path),
            "headers": headers,
            "body": body,
        })
    }
}

fn redact_key_param(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("key", _)) => "key=[redacted]".to_string(),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// The last [`KEPT_REQUESTS`] requests.
#[derive(Debug, Default)]
pub(crate) struct ReceivedLog {
    requests: VecDeque<ReceivedRequest>,
}

impl ReceivedLog {
    pub(crate) fn push(&mut self, request: ReceivedRequest) {
        if self.requests.len() == KEPT_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<ReceivedRequest> {
        self.requests.iter().cloned().collect()
    }

    pub(crate) fn clear(&mut self) {
        self.requests.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize) -> ReceivedRequest {
        ReceivedRequest {
            method: "POST".into(),
            path: format!("/v1beta/models/m:generateContent?key=secret{n}&alt=sse"),
            headers: vec![
                ("x-goog-api-key".into(), "secret".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: format!("{{\"n\":{n}}}").into_bytes(),
        }
    }

    #[test]
    fn log_keeps_only_the_most_recent_requests() {
        let mut log = ReceivedLog::default();
        for n in 0..KEPT_REQUESTS + 3 {
            log.push(request(n));
        }
        let kept = log.snapshot();
        assert_eq!(kept.len(), KEPT_REQUESTS);
        assert_eq!(kept[0].body_json().unwrap()["n"], 3);
    }

    #[test]
    fn public_json_shows_a_body_that_is_not_json_as_text() {
        let mut received = request(1);
        received.body = b"not json".to_vec();
        assert_eq!(received.to_public_json()["body"], "not json");
    }

    #[test]
    fn public_json_redacts_keys_in_headers_and_query() {
        let shown = request(7).to_public_json();
        assert_eq!(
            shown["path"],
            "/v1beta/models/m:generateContent?key=[redacted]&alt=sse"
        );
        assert_eq!(shown["headers"]["x-goog-api-key"], "[redacted]");
        assert_eq!(shown["headers"]["content-type"], "application/json");
        assert_eq!(shown["body"]["n"], 7);
        assert!(!shown.to_string().contains("secret"));
    }
}
