//! The differential test: the same fixture filters, the same requests and the same assertions,
//! once through this host and once through a real Envoy 1.40 (V8) started by `tollgate-e2e`.
//! Both must pass, so the host agrees with Envoy on what every scenario checks.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::fixture_wasm;
use tollgate_e2e::bootstrap::{self, Bootstrap, Cluster, Listener, Route, Wasm};
use tollgate_e2e::{free_port, http, Envoy};
use tollgate_host::{FailurePolicy, Host, Outcome, Value};

/// What both sides are configured with, so they run the same chain: the fixture module's
/// plugins in filter order (root id, configuration) in one VM, the clusters a callout may name,
/// the stats tag that makes `code` a Prometheus label, and the name of the one route.
const VM_ID: &str = "fixture";
const PLUGINS: [(&str, &str); 2] = [("fixture", "greeting=hi"), ("reader", "")];
const CLUSTERS: [&str; 2] = ["echo", "fixture_upstream"];
const CODE_TAG: (&str, &str) = ("code", r"(\.code\.([^.]+))");
const ROUTE_NAME: &str = "chat";

/// What the client observed, plus what the upstream echoed back about the request it received.
#[derive(Debug, Default)]
struct Observed {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
    upstream_headers: BTreeMap<String, String>,
    upstream_body: String,
}

impl Observed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn upstream(&self, name: &str) -> Option<&str> {
        self.upstream_headers.get(name).map(String::as_str)
    }
}

/// One side of the comparison.
trait Proxy {
    fn send(&mut self, action: &str, body: &str) -> Observed;
    fn counter(&self, name: &str) -> Option<u64>;
    fn prometheus_line(&self, prefix: &str) -> Option<String>;
}

/// The echo upstream's body: the request's headers as `name: value` lines, a blank line, the body.
fn echo_body(headers: &[(String, String)], body: &[u8]) -> String {
    let mut out = String::new();
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(body));
    out
}

fn parse_echo(observed: &mut Observed) {
    if observed.header("x-echo") != Some("1") {
        return;
    }
    let (head, body) = observed.body.split_once("\n\n").unwrap_or_default();
    observed.upstream_headers = head
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    observed.upstream_body = body.to_string();
}

/// A one-request-per-connection HTTP/1.1 echo server; `/check` answers `pong` (the callout).
fn spawn_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.trim_end().split_once(": ") {
                        headers.push((k.to_ascii_lowercase(), v.to_string()));
                    }
                }
                let length = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let reply = if request_line.contains(" /check ") {
                    "pong".to_string()
                } else {
                    echo_body(&headers, &body)
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nx-echo: 1\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = reader.get_mut().write_all(response.as_bytes());
            });
        }
    });
    port
}

// ------------------------------------------------------------------------------------------
// The host side.

struct HostProxy {
    host: Host,
}

impl HostProxy {
    fn new(policy: FailurePolicy, workers: usize) -> Self {
        let plugins = PLUGINS
            .iter()
            .fold(Host::builder(), |builder, (root_id, configuration)| {
                builder
                    .module(fixture_wasm())
                    .vm_id(VM_ID)
                    .root_id(root_id)
                    .configuration(configuration)
                    .allow_on_headers_stop_iteration(true)
                    .failure_policy(policy)
            });
        let host = CLUSTERS
            .iter()
            .fold(plugins.workers(workers), |builder, name| {
                builder.cluster(name)
            })
            .stats_tag(CODE_TAG.0, CODE_TAG.1)
            .property(&["xds", "route_name"], Value::from(ROUTE_NAME))
            .build()
            .unwrap();
        Self { host }
    }
}

impl Proxy for HostProxy {
    fn send(&mut self, action: &str, body: &str) -> Observed {
        let mut s = self.host.stream();
        s.set_property(&["source", "address"], Value::from("127.0.0.1:50123"));
        let headers = [
            (":method", "POST".to_string()),
            (":path", "/v1/chat".to_string()),
            (":authority", "127.0.0.1".to_string()),
            (":scheme", "http".to_string()),
            ("x-fixture-action", action.to_string()),
            ("content-length", body.len().to_string()),
        ];
        let mut outcome = s.send_request_headers(&headers, body.is_empty());
        if !body.is_empty() && !matches!(outcome, Outcome::LocalReply(_)) {
            outcome = s.send_request_body(body.as_bytes(), true);
        }
        // Answer callouts as the echo upstream does.
        while let Some(call) = self.host.http_calls().first().cloned() {
            self.host
                .respond_http_call(
                    call.id,
                    &[(":status", "200"), ("content-length", "4")],
                    b"pong",
                )
                .unwrap();
        }
        let _ = outcome;
        let upstream = s.upstream();
        if upstream.end_stream && s.local_reply().is_none() {
            let headers: Vec<(String, String)> = upstream
                .headers
                .unwrap_or_default()
                .iter()
                .filter(|(k, _)| !k.starts_with(':'))
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            let echo = echo_body(&headers, &upstream.body);
            let length = echo.len().to_string();
            s.send_response_headers(
                &[
                    (":status", "200"),
                    ("x-echo", "1"),
                    ("content-type", "text/plain"),
                    ("content-length", &length),
                ],
                false,
            );
            s.send_response_body(echo.as_bytes(), true);
        }
        let downstream = s.downstream();
        s.finish();
        let response_headers = downstream.headers.unwrap_or_default();
        let mut observed = Observed {
            status: response_headers
                .get(":status")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            headers: response_headers
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            body: String::from_utf8_lossy(&downstream.body).into_owned(),
            ..Default::default()
        };
        parse_echo(&mut observed);
        observed
    }

    fn counter(&self, name: &str) -> Option<u64> {
        self.host.metric(&format!("wasmcustom.{name}"))
    }

    fn prometheus_line(&self, prefix: &str) -> Option<String> {
        self.host
            .prometheus_lines()
            .into_iter()
            .find(|l| l.starts_with(prefix))
    }
}

// ------------------------------------------------------------------------------------------
// The Envoy side.

struct EnvoyProxy {
    envoy: Envoy,
    port: u16,
}

impl EnvoyProxy {
    fn start(echo_port: u16, policy: FailurePolicy) -> Self {
        let policy = match policy {
            FailurePolicy::FailClosed => bootstrap::FailurePolicy::FailClosed,
            FailurePolicy::FailReload => bootstrap::FailurePolicy::FailReload,
            FailurePolicy::FailOpen => panic!("no scenario runs FAIL_OPEN"),
        };
        let port = free_port();
        let listener = PLUGINS.iter().fold(
            Listener::new("fixture", port).route(Route::to_cluster("echo", "10s").name(ROUTE_NAME)),
            |listener, (root_id, configuration)| {
                listener.filter(
                    Wasm::new(VM_ID, &fixture_wasm(), root_id)
                        .configuration(configuration)
                        .failure_policy(policy),
                )
            },
        );
        let config = CLUSTERS.iter().fold(
            Bootstrap::new()
                .stats_tag(CODE_TAG.0, CODE_TAG.1)
                .listener(listener),
            |config, name| config.cluster(Cluster::new(name).endpoint(echo_port)),
        );
        // tollgate-e2e starts Envoy with --concurrency 1 and cannot take a second value yet.
        let envoy = Envoy::start(&config.render()).unwrap();
        Self { envoy, port }
    }
}

impl Proxy for EnvoyProxy {
    fn send(&mut self, action: &str, body: &str) -> Observed {
        let url = format!("http://127.0.0.1:{}/v1/chat", self.port);
        let response = http::post(&url, &[("x-fixture-action", action)], body).unwrap();
        let mut observed = Observed {
            status: response.status,
            headers: response.headers.into_iter().collect(),
            body: response.body,
            ..Default::default()
        };
        parse_echo(&mut observed);
        observed
    }

    fn counter(&self, name: &str) -> Option<u64> {
        self.envoy
            .stat(name)
            .or_else(|| self.envoy.stat(&format!("wasmcustom.{name}")))
    }

    fn prometheus_line(&self, prefix: &str) -> Option<String> {
        let text = self.envoy.admin_get("/stats/prometheus").ok()?;
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    }
}

// ------------------------------------------------------------------------------------------
// The scenarios: every assertion runs against both sides.

fn scenarios(proxy: &mut dyn Proxy, side: &str) {
    let plain = proxy.send("plain", "{}");
    assert_eq!(plain.status, 200, "{side}: {plain:?}");
    assert_eq!(plain.upstream("x-fixture"), Some("hi"), "{side}");
    assert_eq!(plain.upstream("x-fixture-seen"), Some("none"), "{side}");
    assert_eq!(plain.upstream_body, "{}", "{side}");
    assert_eq!(plain.header("x-fixture-response"), Some("200"), "{side}");

    let reply = proxy.send("reply", "{}");
    assert_eq!(reply.status, 403, "{side}: {reply:?}");
    assert_eq!(reply.body, "denied by fixture", "{side}");
    assert_eq!(reply.header("x-fixture-local"), Some("1"), "{side}");
    assert_eq!(reply.header("content-type"), Some("text/plain"), "{side}");
    assert_eq!(
        reply.header("x-fixture-response"),
        Some("403"),
        "{side}: the local reply passes the filter's response callback"
    );

    let paused = proxy.send("pause-for-body", "hello");
    assert_eq!(
        paused.upstream("x-body-bytes"),
        Some("5"),
        "{side}: {paused:?}"
    );
    assert_eq!(paused.upstream_body, "hello", "{side}");

    let buffered = proxy.send("buffer", "hello world");
    assert_eq!(
        buffered.upstream_body, "HELLO WORLD",
        "{side}: {buffered:?}"
    );
    assert_eq!(buffered.upstream("content-length"), Some("11"), "{side}");

    let upper = proxy.send("upper-response", "abc");
    assert!(upper.body.ends_with("\n\nABC"), "{side}: {upper:?}");

    for expected in 1..=4 {
        let cas = proxy.send("cas", "");
        assert_eq!(
            cas.upstream("x-counter"),
            Some(expected.to_string().as_str()),
            "{side}: {cas:?}"
        );
    }

    let property = proxy.send("property", "");
    assert!(
        property
            .upstream("x-source-address")
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{side}: {property:?}"
    );
    assert_eq!(property.upstream("x-route-name"), Some("chat"), "{side}");
    assert_eq!(
        property.upstream("x-request-path"),
        Some("/v1/chat"),
        "{side}"
    );
    assert_eq!(
        property.upstream("x-fixture-seen"),
        Some("yes"),
        "{side}: filter state crosses filters"
    );

    let callout = proxy.send("callout", "");
    assert_eq!(
        callout.upstream("x-callout-status"),
        Some("200"),
        "{side}: {callout:?}"
    );
    assert_eq!(callout.upstream("x-callout-body"), Some("pong"), "{side}");

    let unknown = proxy.send("callout-unknown-cluster", "");
    assert_eq!(
        unknown.upstream("x-callout-error"),
        Some("BadArgument"),
        "{side}: {unknown:?}"
    );

    for _ in 0..3 {
        proxy.send("enqueue", "");
    }
    let started = Instant::now();
    while proxy.counter("fixture_queue_items_total") != Some(3)
        && started.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        proxy.counter("fixture_queue_items_total"),
        Some(3),
        "{side}"
    );

    // 15 requests reached the fixture so far; 14 went upstream and came back with 200.
    assert_eq!(proxy.counter("fixture_requests_total"), Some(15), "{side}");
    assert_eq!(
        proxy
            .prometheus_line(r#"fixture_responses_total{code="200"}"#)
            .as_deref(),
        Some(r#"fixture_responses_total{code="200"} 14"#),
        "{side}"
    );
    assert_eq!(
        proxy
            .prometheus_line(r#"fixture_responses_total{code="403"}"#)
            .as_deref(),
        Some(r#"fixture_responses_total{code="403"} 1"#),
        "{side}"
    );

    // A body Continue forwards headers paused for a callout; the late callout answer then writes
    // those headers. Envoy still holds its header pointer, so the write is no BadArgument and
    // the VM survives to serve the next request.
    let early = proxy.send("callout", "payload");
    assert_eq!(early.status, 200, "{side}: {early:?}");
    assert_eq!(early.upstream_body, "payload", "{side}");
    assert_eq!(
        proxy.send("plain", "").status,
        200,
        "{side}: the VM survived the late write"
    );

    let late_read = proxy.send("request-header-in-response", "");
    assert_eq!(
        late_read.status, 503,
        "{side}: reading request headers in the response phase traps: {late_read:?}"
    );
    assert_eq!(late_read.header("x-request-path"), None, "{side}");

    let panicked = proxy.send("panic", "");
    assert_eq!(panicked.status, 503, "{side}: {panicked:?}");
}

#[test]
fn the_host_and_envoy_agree_on_every_fixture_scenario() {
    let echo_port = spawn_echo();
    let mut host = HostProxy::new(FailurePolicy::FailClosed, 2);
    scenarios(&mut host, "host");
    let mut envoy = EnvoyProxy::start(echo_port, FailurePolicy::FailClosed);
    scenarios(&mut envoy, "envoy");
}

/// What a panic costs under each failure policy, in the host and in Envoy 1.40: FAIL_CLOSED
/// answers 503 for that worker's every later request, for good; FAIL_RELOAD answers 503 until
/// Envoy has reloaded the VM (its ReloadConfig backoff: 1 s base by default; the host reloads
/// at once) and then serves requests again. The generator uses FAIL_RELOAD.
#[test]
fn after_a_panic_fail_reload_serves_again_and_fail_closed_never_does() {
    let echo_port = spawn_echo();
    let mut sides: Vec<(Box<dyn Proxy>, &str, bool)> = vec![
        // One worker, as the Envoy side (`--concurrency 1`): the failed VM serves every request.
        (
            Box::new(HostProxy::new(FailurePolicy::FailReload, 1)),
            "host FAIL_RELOAD",
            true,
        ),
        (
            Box::new(HostProxy::new(FailurePolicy::FailClosed, 1)),
            "host FAIL_CLOSED",
            false,
        ),
        (
            Box::new(EnvoyProxy::start(echo_port, FailurePolicy::FailReload)),
            "envoy FAIL_RELOAD",
            true,
        ),
        (
            Box::new(EnvoyProxy::start(echo_port, FailurePolicy::FailClosed)),
            "envoy FAIL_CLOSED",
            false,
        ),
    ];
    for (proxy, side, reloads) in sides.iter_mut() {
        assert_eq!(proxy.send("plain", "").status, 200, "{side}");
        let panicked = proxy.send("panic", "");
        assert_eq!(panicked.status, 503, "{side}: {panicked:?}");
        // Poll for a served request, with a deadline well past Envoy's 1 s reload backoff.
        let started = Instant::now();
        let mut served = false;
        while started.elapsed() < Duration::from_secs(3) {
            if proxy.send("plain", "").status == 200 {
                served = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "{side}: served again: {served} after {:?}",
            started.elapsed()
        );
        assert_eq!(served, *reloads, "{side}");
    }
}
