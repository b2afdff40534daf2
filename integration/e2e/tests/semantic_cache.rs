//! The guide's `semantic-cache` policy on real Envoy: the generated config (guide + companion)
//! with `semantic-cache-service` pointed at the reference service (`services/semantic-cache`,
//! real wordllama embeddings) started here on a free port, and the mock OpenAI behind
//! `/openai` (llm-routes).
//!
//! A paraphrase of an answered prompt is served from the service without reaching the mock;
//! another caller (a verified JWT instead of none) is another tenant and misses; with the
//! service down, or accepting connections and never answering, the request is still served
//! (the lookup gives up after the policy's timeout). The store is sent from `on_log`, after which
//! Envoy destroys the stream: a store the service answers only after a second still completes
//! (Envoy does not cancel it with the stream).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_e2e::gateway::{dev_jwt, Gateway, GatewaySpec};
use tollgate_e2e::http;
use tollgate_e2e::workspace_root;
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-semantic-openai";
const ASKED: &str = "Give me three tips for better sleep.";
const PARAPHRASE: &str = "Give me 3 tips for better sleep.";

/// The reference service, killed on drop.
struct Service {
    child: Child,
    url: String,
}

impl Service {
    fn start() -> Service {
        let root = workspace_root();
        let mut child = Command::new(root.join(".tools/venv/bin/python"))
            .arg(root.join("services/semantic-cache/semantic_cache.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the semantic-cache service starts (scripts/setup installs wordllama)");
        let stdout = child.stdout.take().unwrap();
        // Its first line says where it listens, once the model is loaded.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("semantic-cache listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Service { child, url }
    }

    /// A sample of the service's /metrics.
    fn metric(&self, name: &str) -> u64 {
        let text = http::get(&format!("{}/metrics", self.url)).unwrap().body;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mock_openai() -> MockHandle {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some(OPENAI_KEY.to_string());
    spawn(config).unwrap()
}

fn gateway(openai: &MockHandle, semantic_url: &str) -> Gateway {
    let spec = GatewaySpec::guide_and_companion()
        .endpoint("openai", openai.base_url())
        .endpoint("gpt-4o-mini", openai.base_url())
        .endpoint("local-llama", "http://127.0.0.1:9")
        .endpoint("gemini-flash", "http://127.0.0.1:9")
        .endpoint("claude-haiku", "http://127.0.0.1:9")
        .endpoint("mcp-tools", "http://127.0.0.1:9")
        .endpoint("semantic-cache-service", semantic_url)
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", "sk-ant-unused")
        .secret("google-ai-secret", "google-unused");
    Gateway::start(&spec).unwrap()
}

fn chat(gateway: &Gateway, prompt: &str, auth: Option<&str>) -> http::Response {
    let body =
        format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{prompt}"}}]}}"#);
    let bearer = auth.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer.as_str()));
    }
    http::post(&gateway.url("/openai/v1/chat/completions"), &headers, &body).unwrap()
}

/// Polls `condition` until it holds, for at most `limit`.
fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An Envoy counter of the wasm filter (`wasmcustom.<name>`).
fn envoy_counter(gateway: &Gateway, name: &str) -> u64 {
    gateway
        .envoy
        .stat(&format!("wasmcustom.{name}"))
        .unwrap_or(0)
}

#[test]
fn a_paraphrase_is_answered_from_the_service_and_another_tenant_misses() {
    let service = Service::start();
    let openai = mock_openai();
    let gateway = gateway(&openai, &service.url);

    let first = chat(&gateway, ASKED, None);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(openai.request_count(), 1);
    // The store leaves after the stream is over (from on_log, sent by the root context).
    eventually("the answer stored", Duration::from_secs(10), || {
        service.metric("semantic_cache_stores_total") == 1
    });
    assert_eq!(
        envoy_counter(&gateway, "tollgate_semantic_cache_stores_total"),
        1
    );

    let hit = chat(&gateway, PARAPHRASE, None);
    assert_eq!(hit.status, 200, "{}", hit.body);
    assert_eq!(hit.header("x-cache-status"), Some("HIT"));
    let similarity: f64 = hit
        .header("x-tollgate-semantic-similarity")
        .unwrap()
        .parse()
        .unwrap();
    assert!(similarity >= 0.95, "{similarity}");
    let (got, stored): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&hit.body).unwrap(),
        serde_json::from_str(&first.body).unwrap(),
    );
    assert_eq!(got["choices"], stored["choices"], "the stored answer");
    assert_ne!(got["id"], stored["id"], "another completion id");
    assert_eq!(openai.request_count(), 1, "the mock was not asked again");
    assert_eq!(service.metric("semantic_cache_hits_total"), 1);

    // Another caller: a verified JWT (sub e2e-edges) instead of none.
    let other = chat(&gateway, PARAPHRASE, Some(&dev_jwt().unwrap()));
    assert_eq!(other.status, 200, "{}", other.body);
    assert_ne!(other.header("x-cache-status"), Some("HIT"));
    assert_eq!(
        openai.request_count(),
        2,
        "another tenant asks the provider"
    );

    // A different question in the same partition misses.
    let unrelated = chat(&gateway, "Write a poem about dogs.", None);
    assert_ne!(unrelated.header("x-cache-status"), Some("HIT"));
    assert_eq!(openai.request_count(), 3);
    assert_eq!(service.metric("semantic_cache_hits_total"), 1);
    assert_eq!(
        envoy_counter(&gateway, "tollgate_semantic_cache_hits_total"),
        1
    );
}

#[test]
fn with_the_service_down_the_request_is_served_and_the_failure_counted() {
    // A port nobody listens on: connection refused.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let openai = mock_openai();
    let gateway = gateway(&openai, &url);
    let answer = chat(&gateway, ASKED, None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(openai.request_count(), 1);
    assert_eq!(
        envoy_counter(&gateway, "tollgate_semantic_cache_failures_total"),
        1
    );
}

#[test]
fn with_the_service_hanging_the_lookup_gives_up_and_the_request_is_served() {
    // Accepts connections, never answers: only the lookup's timeout lets the request go on
    // (the route's own timeout is 300 s; the client waits at most 60 s).
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hanging.local_addr().unwrap());
    let openai = mock_openai();
    let gateway = gateway(&openai, &url);
    let answer = chat(&gateway, ASKED, None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(openai.request_count(), 1);
    assert_eq!(
        envoy_counter(&gateway, "tollgate_semantic_cache_failures_total"),
        1
    );
    drop(hanging);
}

/// A stand-in service: every lookup misses at once; a store is answered only after `delay`,
/// and counted when its answer was written.
struct SlowStore {
    url: String,
    stores_answered: Arc<AtomicU64>,
}

impl SlowStore {
    fn start(delay: Duration) -> SlowStore {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stores_answered = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&stores_answered);
        std::thread::spawn(move || {
            for connection in listener.incoming().flatten() {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || serve_slowly(connection, delay, &counter));
            }
        });
        SlowStore {
            url,
            stores_answered,
        }
    }
}

/// HTTP/1.1 keep-alive requests on one connection, as Envoy sends them.
fn serve_slowly(connection: TcpStream, delay: Duration, stores: &AtomicU64) {
    let mut writer = connection.try_clone().unwrap();
    let mut reader = BufReader::new(connection);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let store = request_line.starts_with("POST /store ");
        let answer: &[u8] = if store {
            std::thread::sleep(delay);
            br#"{"stored":true,"entries":1}"#
        } else {
            br#"{"hit":false}"#
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(answer).is_err() {
            return;
        }
        if store {
            stores.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_store_sent_from_on_log_completes_after_the_stream_is_gone() {
    let service = SlowStore::start(Duration::from_secs(1));
    let openai = mock_openai();
    let gateway = gateway(&openai, &service.url);
    for i in 0..3 {
        let answer = chat(
            &gateway,
            &format!("Question {i}: why is the sky blue?"),
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // Every client has its answer and every stream is over; the stores are still out.
    eventually("the slow stores answered", Duration::from_secs(20), || {
        service.stores_answered.load(Ordering::SeqCst) == 3
    });
    let cluster = "cluster.service/semantic-cache-service";
    eventually(
        "Envoy counted the calls complete",
        Duration::from_secs(10),
        || {
            gateway
                .envoy
                .stat(&format!("{cluster}.upstream_rq_completed"))
                == Some(6)
        },
    );
    assert_eq!(
        gateway
            .envoy
            .stat(&format!("{cluster}.upstream_rq_cancelled")),
        Some(0)
    );
    assert_eq!(
        envoy_counter(&gateway, "tollgate_semantic_cache_stores_total"),
        3
    );
}

#[test]
fn a_streamed_answer_is_replayed_as_frames_to_a_streamed_paraphrase() {
    let service = Service::start();
    let openai = mock_openai();
    let gateway = gateway(&openai, &service.url);
    let stream = |prompt: &str| {
        let body = format!(
            r#"{{"model":"gpt-4o-mini","stream":true,"messages":[{{"role":"user","content":"{prompt}"}}]}}"#
        );
        http::post(
            &gateway.url("/openai/v1/chat/completions"),
            &[("content-type", "application/json")],
            &body,
        )
        .unwrap()
    };
    let first = stream(ASKED);
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.ends_with("data: [DONE]\n\n"), "{}", first.body);
    eventually("the stream stored", Duration::from_secs(10), || {
        service.metric("semantic_cache_stores_total") == 1
    });
    // A JSON request is another partition: it does not get the stream.
    let json = chat(&gateway, PARAPHRASE, None);
    assert_ne!(json.header("x-cache-status"), Some("HIT"));
    assert_eq!(openai.request_count(), 2);

    let hit = stream(PARAPHRASE);
    assert_eq!(hit.header("x-cache-status"), Some("HIT"));
    assert_eq!(hit.header("content-type"), Some("text/event-stream"));
    assert_eq!(openai.request_count(), 2, "the mock was not asked");
    let frames = |body: &str| body.matches("data: ").count();
    assert_eq!(frames(&hit.body), frames(&first.body), "{}", hit.body);
    assert!(hit.body.ends_with("data: [DONE]\n\n"), "{}", hit.body);
}
