//! A small blocking HTTP client for tests: every status is a response, not an error.

use std::io::Read;
use std::time::{Duration, Instant};

/// What came back from one request.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The whole body as text (lossy UTF-8).
    pub body: String,
    /// Time from sending the request to the first body byte.
    pub first_byte: Duration,
}

impl Response {
    /// First value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POSTs a body with the given headers.
pub fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Result<Response, ureq::Error> {
    let mut request = agent().post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let started = Instant::now();
    let response = request.send(body)?;
    collect(response, started)
}

/// GETs a URL.
pub fn get(url: &str) -> Result<Response, ureq::Error> {
    let started = Instant::now();
    let response = agent().get(url).call()?;
    collect(response, started)
}

/// The response's headers, names lower-cased, values as (lossy) text.
fn headers_of(response: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn collect(
    response: ureq::http::Response<ureq::Body>,
    started: Instant,
) -> Result<Response, ureq::Error> {
    let status = response.status().as_u16();
    let headers = headers_of(&response);
    let mut reader = response.into_body().into_reader();
    let mut bytes = Vec::new();
    let mut first = [0u8; 1];
    let mut first_byte = started.elapsed();
    if reader.read(&mut first)? == 1 {
        first_byte = started.elapsed();
        bytes.push(first[0]);
    }
    reader.read_to_end(&mut bytes)?;
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        first_byte,
    })
}

/// A response read as it arrives: each read's bytes with the time since the request was sent.
#[derive(Debug, Clone)]
pub struct TimedResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body pieces in arrival order, with their arrival time.
    pub pieces: Vec<(Duration, Vec<u8>)>,
}

impl TimedResponse {
    /// The whole body as text.
    pub fn body(&self) -> String {
        let bytes: Vec<u8> = self.pieces.iter().flat_map(|(_, b)| b.clone()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Arrival time of the first body byte.
    pub fn first_byte(&self) -> Option<Duration> {
        self.pieces.first().map(|(t, _)| *t)
    }

    /// Arrival time of the last body byte.
    pub fn last_byte(&self) -> Option<Duration> {
        self.pieces.last().map(|(t, _)| *t)
    }
}

/// POSTs and reads the body piece by piece as the server sends it (for streaming tests).
pub fn post_timed(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<TimedResponse, ureq::Error> {
    let mut request = agent().post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let started = Instant::now();
    let response = request.send(body)?;
    let status = response.status().as_u16();
    let headers = headers_of(&response);
    let mut reader = response.into_body().into_reader();
    let mut pieces = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        pieces.push((started.elapsed(), buf[..n].to_vec()));
    }
    Ok(TimedResponse {
        status,
        headers,
        pieces,
    })
}
