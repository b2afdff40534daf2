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
        let client_status = case.read("client_status.txt").map_or_else(
            || status.clone(),
            |s| String::from_utf8(s).unwrap().trim().to_string(),
        );
        let response_headers = [
            (":status", status.clone()),
            ("content-type", content_type.into()),
            ("content-length", body.len().to_string()),
            ("openai-organization", "org-operator".into()),
            ("set-cookie", "session=operator".into()),
            ("x-request-id", "req-1".into()),
        ];
        if body.is_empty() {
            // No body: nothing to hold; the downstream pipeline writes the error body.
            stream.send_response_headers(&response_headers, true);
            let downstream = stream.downstream();
            let headers = downstream.headers.unwrap();
            assert_eq!(headers.get(":status"), Some(client_status), "{}", case.name);
            assert_eq!(
                headers.get("content-type"),
                None,
                "{}: an empty body is not labelled",
                case.name
            );
            assert!(downstream.body.is_empty(), "{}", case.name);
            stream.finish();
            continue;
        }
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
            Some(client_status),
            "{}: the upstream status is kept unless the case says otherwise",
            case.name
        );
        for hidden in ["openai-organization", "set-cookie"] {
            assert_eq!(
                response_headers.get(hidden),
                None,
                "{}: {hidden} reveals the operator",
                case.name
            );
        }
        assert_eq!(
            response_headers.get("x-request-id").as_deref(),
            Some("req-1"),
            "{}",
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

const PROVIDER_PATH: [&str; 5] = [
    "xds",
    "upstream_host_metadata",
    "filter_metadata",
    "tollgate",
    "provider",
];

/// The fixture table's providers, one each.
fn unique_providers() -> Vec<ProviderEndpoint> {
    let mut unique: Vec<ProviderEndpoint> = Vec::new();
    for p in cases().into_iter().map(|c| c.provider) {
        if !unique.iter().any(|u| u.name == p.name) {
            unique.push(p);
        }
    }
    unique
}

#[test]
fn every_attempt_sets_every_header_it_depends_on_whatever_the_previous_attempt_left() {
    let mut providers = unique_providers();
    // A passthrough provider (keeps the client's model) next to the translated ones.
    let mut passthrough = providers
        .iter()
        .find(|p| p.kind == ProviderKind::Openai)
        .unwrap()
        .clone();
    passthrough.name = "openai-keep".into();
    passthrough.model = None;
    passthrough.override_model = false;
    passthrough.api_key = Some("o-key".into());
    providers.push(passthrough);
    let config = serde_json::json!({"backend": "llm", "providers": providers}).to_string();
    let host = host("adapter", &config);
    let request = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    // The pipeline's published facts: the body it forwards is `request`.
    let facts =
        serde_json::json!({"model": "gpt-4o-mini", "stream": false, "body_bytes": request.len()});
    let mut carried = request_headers(request.len());
    for (name, value) in [
        ("openai-organization", "org-client"),
        ("openai-project", "proj-client"),
        ("anthropic-beta", "tools-2024"),
        ("x-goog-user-project", "client-project"),
        ("cookie", "a=b"),
        ("x-api-key", "client-key"),
    ] {
        carried.push((name.to_string(), value.to_string()));
    }
    // Envoy keeps header mutations across attempts: replay each attempt's headers into the
    // next attempt on another provider and check nothing stale survives.
    let order: Vec<&ProviderEndpoint> = providers.iter().rev().chain(providers.iter()).collect();
    for provider in order {
        let mut stream = host.stream();
        stream.set_property(&PROVIDER_PATH, Value::String(provider.name.clone()));
        stream.set_property(&["wasm.tollgate_request"], Value::String(facts.to_string()));
        stream.set_property(&["tollgate_request"], Value::String(facts.to_string()));
        match stream.send_request_headers(&carried, false) {
            Outcome::Pause => {
                stream.send_request_body(request, true);
            }
            _ => {
                stream.send_request_body(request, true);
            }
        }
        let upstream = stream.upstream();
        let headers = upstream.headers.unwrap_or_else(|| {
            panic!(
                "{}: not sent upstream: {:?}",
                provider.name,
                stream.local_reply()
            )
        });
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
            (ProviderKind::Anthropic, true) => &["x-api-key", "anthropic-version"],
            (ProviderKind::Anthropic, false) => &["anthropic-version"],
            (_, false) => &[],
            (ProviderKind::Openai, true) => &["authorization"],
            (ProviderKind::Gemini, true) => &["x-goog-api-key"],
        };
        assert_eq!(credentials, expected, "{}", provider.name);
        assert_eq!(
            headers.get("content-length"),
            Some(upstream.body.len().to_string()),
            "{}: content-length is this attempt's body",
            provider.name
        );
        assert_eq!(
            headers.get("accept-encoding").as_deref(),
            Some("identity"),
            "{}",
            provider.name
        );
        assert_eq!(
            headers.get(":authority").as_deref(),
            Some(provider.authority.as_str())
        );
        for control in [
            "openai-organization",
            "openai-project",
            "anthropic-beta",
            "x-goog-user-project",
            "cookie",
        ] {
            assert_eq!(
                headers.get(control),
                None,
                "{}: {control} reached the provider",
                provider.name
            );
        }
        carried = headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        stream.finish();
    }
}

#[test]
fn a_passthrough_attempt_without_published_length_drops_a_stale_content_length() {
    let provider: ProviderEndpoint = serde_json::from_value(serde_json::json!(
        {"name": "keep", "kind": "openai", "authority": "o", "override_model": false}))
    .unwrap();
    let other: ProviderEndpoint = serde_json::from_value(serde_json::json!(
        {"name": "other", "kind": "openai", "authority": "x"}))
    .unwrap();
    let config = serde_json::json!({"backend": "llm", "providers": [provider, other]}).to_string();
    let host = host("adapter", &config);
    let request = br#"{"model":"a-model-name-of-another-length","messages":[{"role":"user","content":"hi"}]}"#;
    let mut stream = host.stream();
    stream.set_property(&PROVIDER_PATH, Value::String("keep".into()));
    stream.set_property(
        &["tollgate_request"],
        Value::String(r#"{"model":"a-model-name-of-another-length","stream":false}"#.into()),
    );
    // A previous (translated) attempt left its own length.
    let mut headers = request_headers(7);
    headers.push(("content-length".into(), "7".into()));
    assert_eq!(
        stream.send_request_headers(&headers, false),
        Outcome::Continue
    );
    stream.send_request_body(request, true);
    let upstream = stream.upstream();
    assert_eq!(upstream.body, request.to_vec(), "the body is unchanged");
    assert_eq!(upstream.headers.unwrap().get("content-length"), None);
}

fn adapter_with_env(
    provider: serde_json::Value,
    env: &[(&str, &str)],
) -> Result<Host, tollgate_host::HostError> {
    let config = serde_json::json!({"backend": "llm", "providers": [provider]}).to_string();
    let mut builder = Host::builder()
        .module(module())
        .vm_id("tollgate")
        .root_id("adapter")
        .configuration(config.as_bytes())
        .allow_on_headers_stop_iteration(true);
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.build()
}

#[test]
fn a_key_named_by_api_key_env_is_read_from_the_vm_environment_and_never_logged() {
    const KEY: &str = "sk-from-the-environment-0123";
    let host = adapter_with_env(
        serde_json::json!({"name": "oa", "kind": "openai", "model": "gpt-4o-mini",
                           "authority": "api.openai.com", "api_key_env": "TOLLGATE_OPENAI_KEY"}),
        &[("OTHER", "x"), ("TOLLGATE_OPENAI_KEY", KEY)],
    )
    .unwrap();
    let request = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let mut stream = host.stream();
    stream.send_request_headers(&request_headers(request.len()), false);
    stream.send_request_body(request, true);
    let headers = stream.upstream().headers.unwrap();
    assert_eq!(headers.get("authorization"), Some(format!("Bearer {KEY}")));
    stream.send_response_headers(
        &[(":status", "401"), ("content-type", "application/json")],
        false,
    );
    stream.send_response_body(format!(r#"{{"error":{{"message":"Incorrect API key provided: {}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#, &KEY[..6]).as_bytes(), true);
    let downstream = stream.downstream();
    assert_eq!(
        downstream.headers.unwrap().get(":status").as_deref(),
        Some("502")
    );
    let body = String::from_utf8_lossy(&downstream.body).into_owned();
    assert!(body.contains("refused the gateway's credentials"), "{body}");
    assert!(
        !body.contains("sk-fro"),
        "the provider's text (a masked key) is not relayed: {body}"
    );
    let logs: Vec<String> = host.logs().iter().map(|l| format!("{l:?}")).collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("refused the gateway's credentials")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("answered 401 (provider code invalid_api_key)")),
        "the log has the detail: {logs:?}"
    );
    assert!(
        logs.iter()
            .all(|l| !l.contains(KEY) && !l.contains("sk-fro")),
        "{logs:?}"
    );
}

#[test]
fn a_missing_key_variable_fails_the_configuration_naming_the_variable() {
    let error = adapter_with_env(
        serde_json::json!({"name": "oa", "kind": "openai", "authority": "api.openai.com",
                           "api_key_env": "TOLLGATE_MISSING_KEY"}),
        &[("TOLLGATE_OTHER_KEY", "sk-other-secret")],
    )
    .err()
    .expect("the configuration must fail");
    let text = error.to_string();
    assert!(
        text.contains("api_key_env: the environment variable TOLLGATE_MISSING_KEY is not set"),
        "{text}"
    );
    assert!(!text.contains("sk-other-secret"), "{text}");
}

/// An Anthropic adapter stream with the request sent, ready for the provider's answer.
fn anthropic_stream(host: &Host, stream_request: bool) -> tollgate_host::Stream {
    let request = if stream_request {
        &br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#[..]
    } else {
        &br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#[..]
    };
    let mut stream = host.stream();
    stream.send_request_headers(&request_headers(request.len()), false);
    stream.send_request_body(request, true);
    stream
}

fn anthropic_host() -> Host {
    let provider = cases()
        .into_iter()
        .find(|c| c.provider.kind == ProviderKind::Anthropic)
        .unwrap()
        .provider;
    host(
        "adapter",
        &serde_json::json!({"backend": "b", "providers": [provider]}).to_string(),
    )
}

#[test]
fn answers_the_adapter_cannot_read_become_openai_502s_with_their_real_length() {
    let host = anthropic_host();
    type Headers<'a> = &'a [(&'a str, &'a [u8])];
    let cases: [(&str, Headers, &[u8]); 3] = [
        (
            "untranslatable 200",
            &[(":status", b"200"), ("content-type", b"application/json")],
            b"<html>moved</html>",
        ),
        (
            "gzip body",
            &[
                (":status", b"200"),
                ("content-type", b"application/json"),
                ("content-encoding", b"gzip"),
            ],
            b"\x1f\x8b\x08\x00garbage",
        ),
        (
            "non-UTF-8 header value",
            &[
                (":status", b"200"),
                ("content-type", b"application/json\xff\xfe"),
                ("x-odd", b"\xc3\x28"),
            ],
            b"not json",
        ),
    ];
    for (what, headers, body) in cases {
        let mut stream = anthropic_stream(&host, false);
        stream.send_response_headers(headers, false);
        assert!(
            stream.response_paused(),
            "{what}: the headers are held until the body is read"
        );
        stream.send_response_body(body, true);
        let downstream = stream.downstream();
        let response_headers = downstream.headers.unwrap();
        assert_eq!(
            response_headers.get(":status").as_deref(),
            Some("502"),
            "{what}"
        );
        assert_eq!(response_headers.get("content-encoding"), None, "{what}");
        assert_eq!(
            response_headers.get("content-type").as_deref(),
            Some("application/json"),
            "{what}"
        );
        assert_eq!(
            response_headers.get("content-length"),
            Some(downstream.body.len().to_string()),
            "{what}"
        );
        let error = json(&downstream.body, what);
        assert_eq!(error["error"]["code"], "bad_provider_answer", "{what}");
        stream.finish();
        assert!(host.traps().is_empty(), "{what}: {:?}", host.traps());
    }
}

#[test]
fn a_stream_whose_event_outgrows_the_cap_ends_with_an_error_event_and_is_counted() {
    let host = anthropic_host();
    let mut stream = anthropic_stream(&host, true);
    stream.send_response_headers(
        &[(":status", "200"), ("content-type", "text/event-stream")],
        false,
    );
    stream.send_response_body(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\"}}\n\ndata: ", false);
    let piece = vec![b'x'; 256 * 1024];
    for _ in 0..5 {
        stream.send_response_body(&piece, false);
    }
    stream.send_response_body(b"\n\n", true);
    let downstream = stream.downstream();
    let events = sse_events(&downstream.body);
    assert_eq!(events.last(), Some(&Json::from("[DONE]")));
    let error = &events[events.len() - 2];
    assert_eq!(error["error"]["code"], "bad_provider_answer", "{events:?}");
    assert!(
        downstream.body.len() < 4096,
        "the oversized event is not relayed"
    );
    assert_eq!(
        host.metric("wasmcustom.tollgate_adapter_stream_faults_total"),
        Some(1)
    );
    assert_eq!(
        host.metric("wasmcustom.tollgate_adapter_stream_cap_exceeded_total"),
        Some(1)
    );
    assert!(host.traps().is_empty(), "{:?}", host.traps());
}

#[test]
fn a_kept_client_model_reaches_the_model_header_only_when_it_is_a_safe_token() {
    let provider: ProviderEndpoint = serde_json::from_value(serde_json::json!(
        {"name": "keep", "kind": "anthropic", "authority": "a", "override_model": false}))
    .unwrap();
    let host = host(
        "adapter",
        &serde_json::json!({"backend": "b", "providers": [provider]}).to_string(),
    );
    for (model, expected) in [
        ("claude-x", Some("claude-x")),
        ("bad model\twith tab", None),
    ] {
        let request =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
                .to_string();
        let mut stream = host.stream();
        stream.send_request_headers(&request_headers(request.len()), false);
        stream.send_request_body(request.as_bytes(), true);
        stream.send_response_headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        );
        stream.send_response_body(
            br#"{"id":"x","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn"}"#,
            true,
        );
        let headers = stream.downstream().headers.unwrap();
        assert_eq!(
            headers.get("x-tollgate-model").as_deref(),
            expected,
            "{model:?}"
        );
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
