//! The built `tollgate.wasm`, run in the wasmtime proxy-wasm host (`tollgate-host`):
//! the core's translation fixture table driven through the router and adapter roles exactly as
//! Envoy drives them, plus the router's rejections.
//!
//! Needs `scripts/build-wasm` first (it writes `build/wasm/tollgate.wasm`).

use serde_json::Value as Json;
use std::fs;
use std::path::{Path, PathBuf};
use tollgate_core::config::{ProviderEndpoint, ProviderKind};
use tollgate_host::{Host, Outcome, Value};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The module, rebuilt first when it is older than its sources.
fn module() -> PathBuf {
    tollgate_e2e::wasm_path("tollgate").unwrap_or_else(|e| panic!("{e}"))
}

fn host(root_id: &str, configuration: &str) -> Host {
    Host::builder()
        .module(module())
        .vm_id("tollgate")
        .root_id(root_id)
        .configuration(configuration.as_bytes())
        .allow_on_headers_stop_iteration(true)
        .build()
        .unwrap()
}

fn request_headers(len: usize) -> Vec<(String, String)> {
    [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("content-length", &len.to_string()),
        ("authorization", "Bearer client-token-for-the-gateway"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn json(bytes: &[u8], what: &str) -> Json {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{what}: {e}: {}", String::from_utf8_lossy(bytes)))
}

/// One case of `filters/core/tests/fixtures/<pair>/<case>`.
struct Case {
    name: String,
    dir: PathBuf,
    provider: ProviderEndpoint,
}

impl Case {
    fn read(&self, file: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join(file)).ok()
    }
}

fn cases() -> Vec<Case> {
    let root = workspace_root().join("filters/core/tests/fixtures");
    let mut cases = Vec::new();
    let mut pairs: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pairs.sort();
    // A pair is a folder with a provider.json (other folders hold other tables).
    pairs.retain(|p| p.join("provider.json").exists());
    for pair in pairs {
        let provider: ProviderEndpoint =
            serde_json::from_slice(&fs::read(pair.join("provider.json")).unwrap()).unwrap();
        let mut dirs: Vec<PathBuf> = fs::read_dir(&pair)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let name = format!(
                "{}/{}",
                pair.file_name().unwrap().to_string_lossy(),
                dir.file_name().unwrap().to_string_lossy()
            );
            cases.push(Case {
                name,
                dir,
                provider: provider.clone(),
            });
        }
    }
    assert!(cases.len() >= 15);
    cases
}

/// The fixtures fix `created` and the fallback id; the filter takes them from the host clock.
fn normalize(mut answer: Json, expected: &Json) -> Json {
    if let (Some(created), Some(obj)) = (expected.get("created"), answer.as_object_mut()) {
        obj.insert("created".into(), created.clone());
        if expected.get("id") == Some(&Json::from("chatcmpl-fixture")) {
            obj.insert("id".into(), expected["id"].clone());
        }
    }
    answer
}

fn sse_events(bytes: &[u8]) -> Vec<Json> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split_terminator("\n\n")
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                Json::from("[DONE]")
            } else {
                json(data.as_bytes(), "sse event")
            }
        })
        .collect()
}

#[test]
fn router_forces_usage_on_streams_and_publishes_the_request_summary() {
    let host = host("router", r#"{"models":{"gpt-4o-mini":"fast-llm"}}"#);
    for case in cases() {
        let request = case.read("request.json").unwrap();
        let inspected = tollgate_core::request::inspect_chat_request(&request, 1 << 20).unwrap();
        let mut stream = host.stream();
        assert_eq!(
            stream.send_request_headers(&request_headers(request.len()), false),
            Outcome::Pause,
            "{}",
            case.name
        );
        assert_eq!(
            stream.send_request_body(&request, true),
            Outcome::Continue,
            "{}",
            case.name
        );
        let upstream = stream.upstream();
        let expected_body = inspected
            .rewritten_body
            .clone()
            .unwrap_or_else(|| request.clone());
        assert_eq!(upstream.body, expected_body, "{}", case.name);
        let headers = upstream.headers.unwrap();
        assert_eq!(
            headers.get("content-length"),
            Some(expected_body.len().to_string()),
            "{}",
            case.name
        );
        let backend =
            (inspected.model.as_deref() == Some("gpt-4o-mini")).then(|| "fast-llm".to_string());
        assert_eq!(headers.get("x-tollgate-backend"), backend, "{}", case.name);
        let summary = json(
            &stream.filter_state("wasm.tollgate_request").unwrap(),
            "summary",
        );
        assert_eq!(
            summary["stream"],
            Json::from(inspected.stream),
            "{}",
            case.name
        );
        stream.finish();
    }
}

#[test]
fn router_answers_bad_requests_in_the_openai_format() {
    let host = host(
        "router",
        r#"{"max_request_bytes":200,"models":{"gpt-4o-mini":"fast-llm"},"require_known_model":true}"#,
    );
    let big = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(300)
    );
    let cases: [(&str, u16, Option<&str>); 4] = [
        ("{not json", 400, None),
        (r#"{"model":"gpt-4o-mini"}"#, 400, None),
        (
            r#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#,
            404,
            Some("model_not_found"),
        ),
        (&big, 413, Some("request_too_large")),
    ];
    for (body, status, code) in cases {
        let mut stream = host.stream();
        let headers = request_headers(body.len());
        let outcome = match stream.send_request_headers(&headers, false) {
            Outcome::Pause => stream.send_request_body(body.as_bytes(), true),
            other => other,
        };
        let Outcome::LocalReply(reply) = outcome else {
            panic!("{body}: {outcome:?}")
        };
        assert_eq!(reply.status, status, "{body}");
        let error = json(&reply.body, body);
        assert_eq!(error["error"]["code"].as_str(), code, "{body}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert_eq!(
            reply.headers.get("content-type").as_deref(),
            Some("application/json")
        );
        assert!(
            stream.upstream().headers.is_none(),
            "{body}: reached the upstream"
        );
    }
}

#[test]
fn adapter_translates_every_fixture_case_through_the_wasm() {
    for case in cases() {
        let config =
            serde_json::json!({"backend": "llm", "providers": [case.provider]}).to_string();
        let host = host("adapter", &config);
        let mut stream = host.stream();
        stream.set_property(
            &[
                "xds",
                "upstream_host_metadata",
                "filter_metadata",
                "tollgate",
                "provider",
            ],
            Value::String(case.provider.name.clone()),
        );
        let request = case.read("request.json").unwrap();
        assert_eq!(
            stream.send_request_headers(&request_headers(request.len()), false),
            Outcome::Pause,
            "{}",
            case.name
        );
        assert_eq!(
            stream.send_request_body(&request, true),
            Outcome::Continue,
            "{}",
            case.name
        );

        let upstream = stream.upstream();
        let headers = upstream.headers.clone().unwrap();
        let expected_path = String::from_utf8(case.read("upstream_path.txt").unwrap()).unwrap();
        assert_eq!(
            headers.get(":path").as_deref(),
            Some(expected_path.trim()),
            "{}",
            case.name
        );
        assert_eq!(
            headers.get(":authority").as_deref(),
            Some(case.provider.authority.as_str()),
            "{}",
            case.name
        );
        assert_eq!(
            headers.get("content-length"),
            Some(upstream.body.len().to_string()),
            "{}",
            case.name
        );
        let key = case.provider.api_key.clone();
        let (authorization, x_api_key, goog) = match case.provider.kind {
            ProviderKind::Openai => (key.map(|k| format!("Bearer {k}")), None, None),
            ProviderKind::Anthropic => (None, key, None),
            ProviderKind::Gemini => (None, None, key),
        };
        assert_eq!(
            headers.get("authorization"),
            authorization,
            "{}: the client's token must not leak",
            case.name
        );
        assert_eq!(headers.get("x-api-key"), x_api_key, "{}", case.name);
        assert_eq!(headers.get("x-goog-api-key"), goog, "{}", case.name);
        let expected_request = case.read("upstream_request.json").unwrap();
        assert_eq!(
            json(&upstream.body, &case.name),
            json(&expected_request, &case.name),
            "{}",
            case.name
        );

        let status = case
            .read("upstream_status.txt")
            .map(|s| String::from_utf8(s).unwrap().trim().to_string());
        let (body, content_type) = match (
            case.read("upstream_response.json"),
            case.read("upstream_response.sse"),
        ) {
            (Some(body), _) => (body, "application/json"),
            (None, Some(sse)) => (sse, "text/event-stream"),
            (None, None) => (case.read("upstream_response.txt").unwrap(), "text/html"),
        };
        let status = status.unwrap_or_else(|| "200".into());
        let response_headers = [
            (":status", status.clone()),
            ("content-type", content_type.into()),
            ("content-length", body.len().to_string()),
        ];
        stream.send_response_headers(&response_headers, false);
        // Streams arrive in arbitrary pieces; JSON in two.
        let piece = if content_type == "text/event-stream" {
            7
        } else {
            body.len() / 2 + 1
        };
        let pieces: Vec<&[u8]> = body.chunks(piece).collect();
        for (i, chunk) in pieces.iter().enumerate() {
            stream.send_response_body(chunk, i + 1 == pieces.len());
        }

        let downstream = stream.downstream();
        let response_headers = downstream.headers.unwrap();
        assert_eq!(
            response_headers.get("x-tollgate-provider").as_deref(),
            Some(case.provider.name.as_str()),
            "{}",
            case.name
        );
        assert_eq!(
            response_headers.get("x-tollgate-model").as_deref(),
            case.provider.model.as_deref(),
            "{}",
            case.name
        );
        assert_eq!(
            response_headers.get(":status"),
            Some(status),
            "{}: the upstream status is kept",
            case.name
        );
        if let Some(expected) = case.read("client_response.json") {
            let expected = json(&expected, &case.name);
            assert_eq!(
                normalize(json(&downstream.body, &case.name), &expected),
                expected,
                "{}",
                case.name
            );
            if let Some(length) = response_headers.get("content-length") {
                assert_eq!(length, downstream.body.len().to_string(), "{}", case.name);
            }
        } else {
            let expected = sse_events(&case.read("client_response.sse").unwrap());
            let actual = sse_events(&downstream.body);
            assert_eq!(actual.len(), expected.len(), "{}", case.name);
            for (a, e) in actual.into_iter().zip(expected) {
                assert_eq!(normalize(a, &e), e, "{}", case.name);
            }
        }
        stream.finish();
        assert!(host.traps().is_empty(), "{}: {:?}", case.name, host.traps());
    }
}

#[test]
fn adapter_sets_credentials_idempotently_across_retries_to_other_providers() {
    let providers: Vec<ProviderEndpoint> = cases().into_iter().map(|c| c.provider).collect();
    let mut unique: Vec<ProviderEndpoint> = Vec::new();
    for p in providers {
        if !unique.iter().any(|u| u.name == p.name) {
            unique.push(p);
        }
    }
    let config = serde_json::json!({"backend": "llm", "providers": unique}).to_string();
    let host = host("adapter", &config);
    let request = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    // Envoy keeps header mutations across attempts: replay the first attempt's headers into
    // the next attempt on another provider and check nothing stale survives.
    let mut carried = request_headers(request.len());
    for provider in unique.iter().rev().chain(unique.iter()) {
        let mut stream = host.stream();
        stream.set_property(
            &[
                "xds",
                "upstream_host_metadata",
                "filter_metadata",
                "tollgate",
                "provider",
            ],
            Value::String(provider.name.clone()),
        );
        stream.send_request_headers(&carried, false);
        stream.send_request_body(request, true);
        let headers = stream.upstream().headers.unwrap();
        let credentials: Vec<&str> = [
            "authorization",
            "x-api-key",
            "x-goog-api-key",
            "anthropic-version",
        ]
        .into_iter()
        .filter(|name| headers.get(name).is_some())
        .collect();
        let expected: &[&str] = match (provider.kind, provider.api_key.is_some()) {
            (_, false) => &[],
            (ProviderKind::Openai, true) => &["authorization"],
            (ProviderKind::Anthropic, true) => &["x-api-key", "anthropic-version"],
            (ProviderKind::Gemini, true) => &["x-goog-api-key"],
        };
        assert_eq!(credentials, expected, "{}", provider.name);
        carried = headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        stream.finish();
    }
}

#[test]
fn adapter_answers_503_when_no_provider_matches_the_endpoint() {
    let config = serde_json::json!({"backend": "llm", "providers": [
        {"name":"a","kind":"openai","authority":"a"},{"name":"b","kind":"openai","authority":"b"}]})
    .to_string();
    let host = host("adapter", &config);
    let mut stream = host.stream();
    let request = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    stream.send_request_headers(&request_headers(request.len()), false);
    let Outcome::LocalReply(reply) = stream.send_request_body(request, true) else {
        panic!("not answered")
    };
    assert_eq!(reply.status, 503);
    assert_eq!(
        json(&reply.body, "503")["error"]["code"],
        Json::from("no_provider")
    );
}

#[test]
fn a_body_ending_with_trailers_is_routed_and_translated_too() {
    let request =
        br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let router = host("router", r#"{"models":{"gpt-4o-mini":"fast-llm"}}"#);
    let mut stream = router.stream();
    stream.send_request_headers(&request_headers(request.len()), false);
    assert_eq!(stream.send_request_body(request, false), Outcome::Pause);
    assert_eq!(
        stream.send_request_trailers(&[("x-trailer", "1")]),
        Outcome::Continue
    );
    let upstream = stream.upstream();
    assert_eq!(
        upstream
            .headers
            .unwrap()
            .get("x-tollgate-backend")
            .as_deref(),
        Some("fast-llm")
    );
    assert!(String::from_utf8_lossy(&upstream.body).contains(r#""include_usage":true"#));

    let provider = cases()
        .into_iter()
        .find(|c| c.provider.kind == ProviderKind::Anthropic)
        .unwrap()
        .provider;
    let adapter = host(
        "adapter",
        &serde_json::json!({"backend": "b", "providers": [provider]}).to_string(),
    );
    let mut stream = adapter.stream();
    stream.send_request_headers(&request_headers(request.len()), false);
    assert_eq!(stream.send_request_body(request, false), Outcome::Pause);
    assert_eq!(
        stream.send_request_trailers(&[("x-trailer", "1")]),
        Outcome::Continue
    );
    let upstream = stream.upstream();
    assert_eq!(
        upstream.headers.unwrap().get(":path").as_deref(),
        Some("/v1/messages")
    );
    assert_eq!(
        json(&upstream.body, "anthropic body")["stream"],
        Json::from(true)
    );
}
