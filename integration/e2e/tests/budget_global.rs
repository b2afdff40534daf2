//! The global tier on real Envoys: two gateways (2 workers each) rendered from
//! `envoy-config/tests/fixtures/budget-global.yaml`, one budget service (in-process) and one
//! `redis-server` (Debian's, started here). Concurrent streams of one user spread over both
//! gateways never spend past the budget; with Redis stopped the policy's fail mode (closed)
//! answers 503, counted, and the gateways keep answering.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use tollgate_config::secrets::{parse_env_file, SECRETS_ENV_FILE};
use tollgate_e2e::gateway::{render_files, GatewaySpec, Ports};
use tollgate_e2e::http::Response;
use tollgate_e2e::{free_port, raw_request, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-budget-global-operator";

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start_redis() -> (Redis, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package redis-server, installed by scripts/setup)");
    wait_for_port(port, "redis-server");
    (Redis(child), port)
}

/// The budget service on a free port, served by a runtime of its own for the test's life.
fn start_service(redis_port: u16) -> u16 {
    let port = free_port();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let service = tollgate_budget_service::Service::connect(&format!(
                "redis://127.0.0.1:{redis_port}"
            ))
            .await
            .unwrap();
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            axum::serve(listener, service.router()).await.unwrap();
        });
    });
    wait_for_port(port, "the budget service");
    port
}

fn gateway(mock: &MockHandle, service_port: u16) -> (Envoy, u16) {
    let spec = GatewaySpec {
        inputs: vec!["envoy-config/tests/fixtures/budget-global.yaml".into()],
        ..Default::default()
    }
    .endpoint("gpt", mock.base_url())
    .endpoint("budget-service", format!("http://127.0.0.1:{service_port}"))
    .secret("openai-secret", OPENAI_KEY);
    let ports = Ports::free();
    let files = render_files(&spec, ports).unwrap();
    let env = parse_env_file(&files[SECRETS_ENV_FILE].text);
    let envoy =
        Envoy::start_with_env(&files["envoy.yaml"].text, &["--concurrency", "2"], &env).unwrap();
    (envoy, ports.listen)
}

fn chat(words: usize, max_tokens: u64) -> String {
    let content = vec!["w"; words].join(" ");
    format!(
        r#"{{"model":"gpt-4o-mini","max_tokens":{max_tokens},"stream":true,"messages":[{{"role":"user","content":"{content}"}}]}}"#
    )
}

fn send(port: u16, user: &str, body: &str) -> Response {
    raw_request(
        port,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json"), ("x-user", user)],
        body,
    )
    .unwrap()
}

fn usage_of(response: &Response) -> u64 {
    response
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v["usage"].is_object())
        .map(|v| {
            v["usage"]["prompt_tokens"].as_u64().unwrap_or(0)
                + v["usage"]["completion_tokens"].as_u64().unwrap_or(0)
        })
        .sum()
}

#[test]
fn two_gateways_sharing_one_redis_hold_one_budget_and_a_stopped_redis_fails_closed() {
    let (redis, redis_port) = start_redis();
    let service_port = start_service(redis_port);
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some(OPENAI_KEY.to_string());
    let mock = spawn(config).unwrap();
    let (first, first_port) = gateway(&mock, service_port);
    let (second, second_port) = gateway(&mock, service_port);

    // 400 words: 401 prompt tokens + up to 9 answer tokens each; 64 of them would be 26 K of
    // the user's 10 K, half sent to each gateway at once.
    let body = chat(400, 9);
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (barrier, body) = (Arc::clone(&barrier), body.clone());
            let port = if i % 2 == 0 { first_port } else { second_port };
            std::thread::spawn(move || {
                barrier.wait();
                send(port, "carol", &body)
            })
        })
        .collect();
    let responses: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let served: Vec<&Response> = responses.iter().filter(|r| r.status == 200).collect();
    let refused = responses.iter().filter(|r| r.status == 429).count();
    assert_eq!(served.len() + refused, 64, "only 200s and 429s");
    let spent: u64 = served.iter().map(|r| usage_of(r)).sum();
    assert!(served.iter().all(|r| usage_of(r) > 0));
    assert!(
        spent <= 10_000,
        "two gateways spent {spent} of one 10K budget"
    );
    assert!(
        refused > 0 && !served.is_empty(),
        "{} served, {refused} refused",
        served.len()
    );
    assert_eq!(mock.request_count(), served.len() as u64);
    // The settlements are in: a probe's reservation sees exactly what both gateways charged
    // (its own 1 output token plus its body, with the 40 bytes of
    // `"stream_options":{"include_usage":true},` the router adds; earlier probes charge theirs).
    let probe_body = chat(0, 1);
    let probe_reserves = probe_body.len() as u64 + 40 + 1;
    let mut spent = spent;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = send(first_port, "carol", &probe_body);
        assert_eq!(probe.status, 200, "{}", probe.body);
        let remaining: u64 = probe
            .header("x-ratelimit-remaining-tokens")
            .and_then(|v| v.parse().ok())
            .unwrap();
        if remaining == 10_000 - spent - probe_reserves {
            break;
        }
        spent += usage_of(&probe);
        assert!(
            Instant::now() < deadline,
            "settlements never arrived: {remaining} left after {spent}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Redis goes away mid-run: the policy fails closed, every request is answered (no hang).
    drop(redis);
    for port in [first_port, second_port] {
        let response = send(port, "dave", &chat(10, 5));
        assert_eq!(response.status, 503, "{}", response.body);
        let error: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(error["error"]["code"], "budget_unavailable");
    }
    for envoy in [&first, &second] {
        let errors = envoy.stat("wasmcustom.tollgate_budget_store_errors_total");
        assert!(errors.unwrap_or(0) >= 1, "store errors counted: {errors:?}");
    }
}
