//! A small blocking HTTP client for the tests: one fresh connection per request, HTTP/1.1 or
//! HTTP/2 prior knowledge, recording each body frame with its arrival time so tests can see
//! streaming, delays and resets as a real client would.

#![allow(dead_code)] // each test binary uses a different part of it

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

/// Which protocol to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c, no upgrade).
    Http2,
}

/// A request to send.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub protocol: Protocol,
}

impl Call {
    pub fn post(path: impl Into<String>, body: impl Into<String>) -> Call {
        Call {
            method: "POST",
            path: path.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            protocol: Protocol::Http1,
        }
    }

    pub fn get(path: impl Into<String>) -> Call {
        Call {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body: String::new(),
            protocol: Protocol::Http1,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn headers(mut self, headers: &[(&str, &str)]) -> Call {
        for (name, value) in headers {
            self.headers.push((name.to_string(), value.to_string()));
        }
        self
    }

    pub fn http2(mut self) -> Call {
        self.protocol = Protocol::Http2;
        self
    }

    /// Sends the request on a new connection and reads the whole response.
    pub fn send(&self, addr: SocketAddr) -> Result<Reply, String> {
        runtime().block_on(self.send_async(addr))
    }

    async fn send_async(&self, addr: SocketAddr) -> Result<Reply, String> {
        let started = Instant::now();
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let io = TokioIo::new(stream);
        let request = self.build_request(addr)?;
        let response = match self.protocol {
            Protocol::Http1 => {
                let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(connection);
                sender.send_request(request).await
            }
            Protocol::Http2 => {
                let (mut sender, connection) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                        .await
                        .map_err(|e| format!("handshake: {e}"))?;
                tokio::spawn(connection);
                sender.send_request(request).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        read_reply(response, started).await
    }

    fn build_request(&self, addr: SocketAddr) -> Result<hyper::Request<Full<Bytes>>, String> {
        let uri = match self.protocol {
            Protocol::Http1 => self.path.clone(),
            Protocol::Http2 => format!("http://{addr}{}", self.path),
        };
        let mut builder = hyper::Request::builder().method(self.method).uri(uri);
        if self.protocol == Protocol::Http1 {
            builder = builder.header("host", addr.to_string());
        }
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(self.body.clone())))
            .map_err(|e| format!("build: {e}"))
    }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub version: Version,
    pub headers: HeaderMap,
    /// Non-empty body frames in arrival order, with the time since the request started.
    pub frames: Vec<(Duration, Bytes)>,
    /// Set when the body ended with an error (reset, truncated) instead of cleanly.
    pub body_error: Option<String>,
    /// Time from sending the request to receiving the headers.
    pub headers_after: Duration,
}

impl Reply {
    pub fn body(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|(_, b)| b.to_vec()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body()).expect("body is UTF-8")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body())
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data:` payloads of a server-sent event stream, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|event| {
                event
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .map(String::from)
            })
            .collect()
    }

    /// The `data:` payloads parsed as JSON (skipping OpenAI's `[DONE]`).
    pub fn sse_json(&self) -> Vec<Value> {
        self.sse_data()
            .iter()
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).expect("SSE data is JSON"))
            .collect()
    }
}

async fn read_reply(
    response: hyper::Response<hyper::body::Incoming>,
    started: Instant,
) -> Result<Reply, String> {
    let headers_after = started.elapsed();
    let (parts, mut body) = response.into_parts();
    let mut frames = Vec::new();
    let mut body_error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                // HTTP/2 may end a stream with an empty DATA frame: it carries nothing.
                if let Some(data) = frame.into_data().ok().filter(|d| !d.is_empty()) {
                    frames.push((started.elapsed(), data));
                }
            }
            Err(error) => {
                body_error = Some(error.to_string());
                break;
            }
        }
    }
    Ok(Reply {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        frames,
        body_error,
        headers_after,
    })
}

/// A runtime for one blocking call.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
}

/// Path of a fixture file under `tests/fixtures/`.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The text of a fixture file.
pub fn fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture file parsed as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Number of whitespace-separated words: the unit of the mock's token counts.
pub fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}
