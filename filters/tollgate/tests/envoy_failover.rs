//! The module in a real Envoy 1.40 with the mock providers: priority-group failover across
//! OpenAI-compatible, Gemini and Anthropic endpoints, translation of what each answers, the
//! OpenAI-format 503 when every provider is down, and streams relayed chunk by chunk.
//!
//! The Envoy configuration is written here with the harness's bootstrap builder (one cluster,
//! the guide's cost-optimized priority groups), not by the generator, so it tests the module's
//! contract with Envoy independently of the generator. Needs `scripts/build-wasm` and
//! `scripts/setup` (Envoy in `.tools/bin`).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tollgate_e2e::bootstrap::{Bootstrap, Cluster, FailurePolicy, Listener, Retry, Route, Wasm};
use tollgate_e2e::{free_port, http, wasm_path, Envoy};
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

/// The guide's cost-optimized Backend: priority 0 local-llama, 1 gemini-flash + gpt-4o-mini,
/// 2 claude-haiku. Each tuple: (provider name, kind in the adapter config, model, api key).
const PROVIDERS: [(&str, &str, &str, Option<&str>, u32); 4] = [
    ("local-llama", "openai", "llama3.2:8b", None, 0),
    (
        "gemini-flash",
        "gemini",
        "gemini-1.5-flash",
        Some("g-key"),
        1,
    ),
    ("gpt-4o-mini", "openai", "gpt-4o-mini", Some("o-key"), 1),
    (
        "claude-haiku",
        "anthropic",
        "claude-3-5-haiku-20241022",
        Some("a-key"),
        2,
    ),
];

fn mock_kind(name: &str) -> Kind {
    match name {
        "local-llama" => Kind::Ollama,
        "gemini-flash" => Kind::Gemini,
        "gpt-4o-mini" => Kind::Openai,
        _ => Kind::Anthropic,
    }
}

fn start_mock(name: &str, addr: SocketAddr, faults: InstanceFaults) -> MockHandle {
    let (_, _, _, key, _) = PROVIDERS.iter().find(|p| p.0 == name).unwrap();
    let mut config = MockConfig::new(mock_kind(name), addr);
    config.name = name.to_string();
    config.api_key = key.map(str::to_string);
    config.faults = faults;
    spawn(config).unwrap()
}

/// A plugin of the tollgate module, failing closed.
fn plugin(root_id: &str, configuration: &str) -> Wasm {
    Wasm::new("tollgate", &wasm_path("tollgate").unwrap(), root_id)
        .configuration(configuration)
        .failure_policy(FailurePolicy::FailClosed)
}

fn envoy_yaml(listener_port: u16, mocks: &[(&str, SocketAddr)]) -> String {
    let addr_of = |name: &str| mocks.iter().find(|(n, _)| *n == name).unwrap().1;
    let providers: Vec<Value> = PROVIDERS
        .iter()
        .map(|(name, kind, model, key, _)| {
            serde_json::json!({"name": name, "kind": kind, "model": model, "authority": addr_of(name).to_string(), "api_key": key})
        })
        .collect();
    let adapter =
        serde_json::json!({"backend": "cost-optimized-llm", "providers": providers}).to_string();
    let cost_optimized = PROVIDERS.iter().fold(
        Cluster::new("cost-optimized-llm").connect_timeout("0.5s"),
        |cluster, (name, .., priority)| cluster.provider(*priority, name, addr_of(name).port()),
    );
    let anthropic_port = addr_of("claude-haiku").port();
    Bootstrap::new()
        .listener(
            Listener::new("llm", listener_port)
                .route(
                    Route::to_cluster("claude-only", "30s")
                        .header_exact("x-tollgate-backend", "claude-only"),
                )
                .route(
                    Route::to_cluster("cost-optimized-llm", "30s")
                        .retry(Retry::across_priorities().skipping_previous_hosts()),
                )
                .filter(plugin("router", ROUTER_CONFIG)),
        )
        .listener(
            Listener::new("plain", listener_port + 1)
                .route(Route::to_cluster("plain-anthropic", "30s")),
        )
        .cluster(
            Cluster::new("plain-anthropic")
                .connect_timeout("0.5s")
                .endpoint(anthropic_port),
        )
        .cluster(
            Cluster::new("claude-only")
                .connect_timeout("0.5s")
                .provider(0, "claude-haiku", anthropic_port)
                .upstream_filter(plugin("adapter", &adapter)),
        )
        .cluster(cost_optimized.upstream_filter(plugin("adapter", &adapter)))
        .render()
}

/// A free port whose successor is free too (the plain listener uses it).
fn free_port_pair() -> u16 {
    loop {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

struct Stack {
    envoy: Envoy,
    port: u16,
    mocks: Vec<(String, SocketAddr, Option<MockHandle>)>,
}

impl Stack {
    fn start(faults_for: impl Fn(&str) -> InstanceFaults) -> Stack {
        let mocks: Vec<(String, SocketAddr, Option<MockHandle>)> = PROVIDERS
            .iter()
            .map(|(name, ..)| {
                let mock = start_mock(name, "127.0.0.1:0".parse().unwrap(), faults_for(name));
                (name.to_string(), mock.addr(), Some(mock))
            })
            .collect();
        let addrs: Vec<(&str, SocketAddr)> =
            mocks.iter().map(|(n, a, _)| (n.as_str(), *a)).collect();
        let port = free_port_pair();
        let envoy = Envoy::start(&envoy_yaml(port, &addrs)).unwrap();
        Stack { envoy, port, mocks }
    }

    fn stop(&mut self, name: &str) {
        let (_, _, mock) = self.mocks.iter_mut().find(|(n, ..)| n == name).unwrap();
        if let Some(mut mock) = mock.take() {
            mock.stop();
        }
    }

    fn restart(&mut self, name: &str) {
        let (_, addr, mock) = self.mocks.iter_mut().find(|(n, ..)| n == name).unwrap();
        *mock = Some(start_mock(name, *addr, InstanceFaults::default()));
    }

    fn chat(&self, body: &str) -> http::Response {
        http::post(
            &format!("http://127.0.0.1:{}/v1/chat/completions", self.port),
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer gateway-client-token"),
            ],
            body,
        )
        .unwrap()
    }
}

/// The router sends the model `claude-3-5-haiku` straight to the `claude-only` backend.
const ROUTER_CONFIG: &str = r#"{"models":{"claude-3-5-haiku":"claude-only"}}"#;

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello"}]}"#;

fn completion(response: &http::Response, stack: &Stack) -> Value {
    let body: Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", response.body, stack.envoy.logs()));
    body
}

#[test]
fn failover_follows_the_priority_groups_and_traffic_returns_to_the_local_model() {
    let mut stack = Stack::start(|_| InstanceFaults::default());

    let response = stack.chat(CHAT);
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.body,
        stack.envoy.logs()
    );
    assert_eq!(response.header("x-tollgate-provider"), Some("local-llama"));
    assert_eq!(response.header("x-tollgate-model"), Some("llama3.2:8b"));

    // Local model down (connection refused): priority 1 answers, in the OpenAI format.
    stack.stop("local-llama");
    let response = stack.chat(CHAT);
    assert_eq!(response.status, 200, "{}", response.body);
    let provider = response.header("x-tollgate-provider").unwrap().to_string();
    assert!(
        provider == "gemini-flash" || provider == "gpt-4o-mini",
        "{provider}"
    );
    let body = completion(&response, &stack);
    assert_eq!(body["object"], "chat.completion");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with(&format!("Hello from {provider}")),
        "{content}"
    );
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // Both of priority 1 failing too: claude-haiku answers, translated from Anthropic.
    stack.stop("gemini-flash");
    stack.stop("gpt-4o-mini");
    let response = stack.chat(CHAT);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-tollgate-provider"), Some("claude-haiku"));
    let body = completion(&response, &stack);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("Hello from claude-haiku (claude-3-5-haiku-20241022)"),
        "{content}"
    );

    // Everything down: one clean 503 in the OpenAI format.
    stack.stop("claude-haiku");
    let response = stack.chat(CHAT);
    assert_eq!(response.status, 503, "{}", response.body);
    let body = completion(&response, &stack);
    assert_eq!(body["error"]["type"], "server_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("provider"));

    // The local model is back: the next request goes to it again.
    stack.restart("local-llama");
    let response = stack.chat(CHAT);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-tollgate-provider"), Some("local-llama"));
}

#[test]
fn provider_errors_are_retried_on_the_next_group_and_429_counts_as_failure() {
    let stack = Stack::start(|name| match name {
        "local-llama" => InstanceFaults {
            status: Some(503),
            ..InstanceFaults::default()
        },
        "gemini-flash" | "gpt-4o-mini" => InstanceFaults {
            status: Some(429),
            ..InstanceFaults::default()
        },
        _ => InstanceFaults::default(),
    });
    let response = stack.chat(CHAT);
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.body,
        stack.envoy.logs()
    );
    assert_eq!(response.header("x-tollgate-provider"), Some("claude-haiku"));
    assert!(!stack.envoy.logs().contains("panicked"));
}

/// Reads a raw HTTP/1.1 answer, noting when each piece arrives.
fn post_and_time_pieces(port: u16, body: &str) -> (String, Vec<(Duration, Vec<u8>)>) {
    post_raw(port, "/v1/chat/completions", "", body)
}

fn post_raw(
    port: u16,
    path: &str,
    extra_headers: &str,
    body: &str,
) -> (String, Vec<(Duration, Vec<u8>)>) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    socket.set_nodelay(true).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n{extra_headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    socket.write_all(request.as_bytes()).unwrap();
    let mut pieces = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => pieces.push((started.elapsed(), buffer[..n].to_vec())),
        }
    }
    let all: Vec<u8> = pieces.iter().flat_map(|(_, p)| p.clone()).collect();
    (String::from_utf8_lossy(&all).into_owned(), pieces)
}

#[test]
fn anthropic_streams_reach_the_client_event_by_event_in_the_openai_format() {
    const CHUNK_DELAY: Duration = Duration::from_millis(150);
    let stack = Stack::start(|name| match name {
        "claude-haiku" => InstanceFaults {
            chunk_delay_ms: CHUNK_DELAY.as_millis() as u64,
            ..InstanceFaults::default()
        },
        _ => InstanceFaults {
            status: Some(503),
            ..InstanceFaults::default()
        },
    });
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#;
    let (text, pieces) = post_and_time_pieces(stack.port, body);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{text}\n{}",
        stack.envoy.logs()
    );
    assert!(text.contains("x-tollgate-provider: claude-haiku"), "{text}");

    // The first content event arrives long before the stream ends: nothing is buffered.
    let first_content = pieces
        .iter()
        .find(|(_, p)| String::from_utf8_lossy(p).contains("\"content\":\"Hello"))
        .map(|(t, _)| *t)
        .expect("a content chunk");
    let last = pieces.last().unwrap().0;
    assert!(
        last >= first_content + CHUNK_DELAY * 3,
        "first content at {first_content:?}, end at {last:?}"
    );

    // The events are OpenAI chunks, ending with usage and [DONE].
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{text}"
    );
    let answer: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(answer.starts_with("Hello from claude-haiku"), "{answer}");
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{text}"
    );
}

/// Time to first byte against plain Envoy is a benchmark, not a test: `cargo run --release -p
/// tollgate-e2e --bin ttfb` and `scripts/bench-load` measure it.
#[test]
fn the_model_picks_the_backend_whatever_the_priority_groups_say() {
    let stack = Stack::start(|_| InstanceFaults::default());
    // Routed by model: the claude-only backend.
    let response = stack
        .chat(r#"{"model":"claude-3-5-haiku","messages":[{"role":"user","content":"Say hello"}]}"#);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-tollgate-provider"), Some("claude-haiku"));
}

// ---------------------------------------------------------------------------------------------
// Every attempt standing alone, keys from the environment, encodings and answers the adapter
// cannot read: one cluster whose priority groups mix translated and passthrough providers.

/// One listener, one cluster `chain` with one endpoint per priority, in order; the plugins'
/// VMs see the environment variables `env_keys`.
fn chain_yaml(
    listener_port: u16,
    endpoints: &[(&str, SocketAddr)],
    adapter: &str,
    env_keys: &[&str],
) -> String {
    let chain = endpoints.iter().zip(0..).fold(
        Cluster::new("chain").connect_timeout("0.5s"),
        |cluster, ((name, addr), priority)| cluster.provider(priority, name, addr.port()),
    );
    Bootstrap::new()
        .listener(
            Listener::new("llm", listener_port)
                .route(Route::to_cluster("chain", "30s").retry(Retry::across_priorities()))
                .filter(plugin("router", "{}").env_keys(env_keys)),
        )
        .cluster(chain.upstream_filter(plugin("adapter", adapter).env_keys(env_keys)))
        .render()
}

fn mock_named(kind: Kind, name: &str, key: Option<&str>, faults: InstanceFaults) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.name = name.to_string();
    config.api_key = key.map(str::to_string);
    config.faults = faults;
    spawn(config).unwrap()
}

fn failing(status: u16) -> InstanceFaults {
    InstanceFaults {
        status: Some(status),
        ..InstanceFaults::default()
    }
}

/// What a mock received must be self-consistent: a `content-length`, when there is one, is
/// the length of the body that arrived, and the body is JSON.
fn assert_each_request_stands_alone(name: &str, mock: &MockHandle) {
    let received = mock.received();
    assert!(!received.is_empty(), "{name} received nothing");
    for request in received {
        let length = request
            .headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.clone());
        if let Some(length) = length {
            assert_eq!(
                length,
                request.body.len().to_string(),
                "{name}: {request:?}"
            );
        }
        assert!(
            serde_json::from_slice::<Value>(&request.body).is_ok(),
            "{name}: {}",
            String::from_utf8_lossy(&request.body)
        );
        let header = |n: &str| {
            request
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("accept-encoding"), Some("identity"), "{name}");
        for control in [
            "openai-organization",
            "anthropic-beta",
            "cookie",
            "x-goog-user-project",
        ] {
            assert_eq!(
                header(control),
                None,
                "{name}: the client's {control} reached the provider"
            );
        }
    }
}

const KEY_VARS: [&str; 3] = [
    "TOLLGATE_TEST_ANTHROPIC_KEY",
    "TOLLGATE_TEST_OPENAI_KEY",
    "TOLLGATE_TEST_GEMINI_KEY",
];

/// anthropic (translated) → openai-compatible keeping the client's model (passthrough) →
/// gemini (translated), keys read from Envoy's environment.
struct Chain {
    envoy: Envoy,
    port: u16,
    anthropic: MockHandle,
    openai: MockHandle,
    gemini: MockHandle,
}

impl Chain {
    fn start(anthropic: InstanceFaults, openai: InstanceFaults, gemini: InstanceFaults) -> Chain {
        let keys = ["sk-ant-from-env", "sk-openai-from-env-longer", "g-env"];
        let anthropic = mock_named(Kind::Anthropic, "claude", Some(keys[0]), anthropic);
        let openai = mock_named(Kind::Openai, "openai-keep", Some(keys[1]), openai);
        let gemini = mock_named(Kind::Gemini, "gemini", Some(keys[2]), gemini);
        let adapter = serde_json::json!({"backend": "chain", "providers": [
            {"name": "claude", "kind": "anthropic", "model": "claude-3-5-haiku-20241022",
             "authority": anthropic.addr().to_string(), "api_key_env": KEY_VARS[0]},
            {"name": "openai-keep", "kind": "openai", "override_model": false,
             "authority": openai.addr().to_string(), "api_key_env": KEY_VARS[1]},
            {"name": "gemini", "kind": "gemini", "model": "gemini-1.5-flash",
             "authority": gemini.addr().to_string(), "api_key_env": KEY_VARS[2]},
        ]})
        .to_string();
        let port = free_port();
        let yaml = chain_yaml(
            port,
            &[
                ("claude", anthropic.addr()),
                ("openai-keep", openai.addr()),
                ("gemini", gemini.addr()),
            ],
            &adapter,
            &KEY_VARS,
        );
        let env: Vec<(String, String)> = KEY_VARS
            .iter()
            .zip(keys)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let envoy = Envoy::start_with_env(&yaml, &[], &env).unwrap();
        Chain {
            envoy,
            port,
            anthropic,
            openai,
            gemini,
        }
    }

    fn chat(&self, body: &str) -> http::Response {
        http::post(
            &format!("http://127.0.0.1:{}/v1/chat/completions", self.port),
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer gateway-client-token"),
                ("openai-organization", "org-client"),
                ("anthropic-beta", "client-beta"),
                ("cookie", "session=client"),
                ("x-goog-user-project", "client-project"),
            ],
            body,
        )
        .unwrap()
    }
}

#[test]
fn translated_passthrough_translated_attempts_each_send_their_own_length_and_keys_from_the_environment(
) {
    let chain = Chain::start(failing(503), failing(429), InstanceFaults::default());
    // A client model whose length differs from every configured model.
    let body = r#"{"model":"gpt-4o-mini-2024-07-18-custom","messages":[{"role":"user","content":"Say hello"}]}"#;
    let response = chain.chat(body);
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.body,
        chain.envoy.logs()
    );
    assert_eq!(response.header("x-tollgate-provider"), Some("gemini"));
    assert_eq!(
        response.header("x-tollgate-model"),
        Some("gemini-1.5-flash")
    );
    let completion: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(chain.anthropic.request_count(), 1);
    assert_eq!(chain.openai.request_count(), 1);
    assert_eq!(chain.gemini.request_count(), 1);
    for (name, mock) in [
        ("claude", &chain.anthropic),
        ("openai-keep", &chain.openai),
        ("gemini", &chain.gemini),
    ] {
        assert_each_request_stands_alone(name, mock);
    }
    // The passthrough attempt got the client's body and model, unchanged.
    let passed = &chain.openai.received()[0];
    let sent: Value = serde_json::from_slice(&passed.body).unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini-2024-07-18-custom");
    // Keys came from Envoy's environment: the mocks check them (a wrong key is their 401).
    let gemini = &chain.gemini.received()[0];
    assert!(gemini
        .headers
        .iter()
        .any(|(k, v)| k == "x-goog-api-key" && v == "g-env"));
    assert!(gemini
        .headers
        .iter()
        .all(|(k, _)| k != "authorization" && k != "x-api-key"));
    let logs = chain.envoy.logs();
    for key in ["sk-ant-from-env", "sk-openai-from-env-longer", "g-env"] {
        assert!(!logs.contains(key), "a key is in Envoy's log");
        assert!(
            !chain.envoy.admin_get("/config_dump").unwrap().contains(key),
            "a key is in config_dump"
        );
    }
}

#[test]
fn a_provider_refusing_the_gateways_key_is_a_502_without_its_text() {
    // Every mock expects another key than Envoy's environment holds: each refuses with 401.
    let wrong = |kind, name| {
        mock_named(
            kind,
            name,
            Some("the-mock-wants-this"),
            InstanceFaults::default(),
        )
    };
    let anthropic = wrong(Kind::Anthropic, "claude");
    let adapter = serde_json::json!({"backend": "chain", "providers": [
        {"name": "claude", "kind": "anthropic", "model": "claude-3-5-haiku-20241022",
         "authority": anthropic.addr().to_string(), "api_key_env": KEY_VARS[0]}]})
    .to_string();
    let port = free_port();
    let yaml = chain_yaml(
        port,
        &[("claude", anthropic.addr())],
        &adapter,
        &KEY_VARS[..1],
    );
    let env = vec![(KEY_VARS[0].to_string(), "sk-ant-wrong-key-1234".to_string())];
    let envoy = Envoy::start_with_env(&yaml, &[], &env).unwrap();
    let response = http::post(
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        &[("content-type", "application/json")],
        CHAT,
    )
    .unwrap();
    assert_eq!(response.status, 502, "{}\n{}", response.body, envoy.logs());
    let error: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(error["error"]["code"], "provider_credentials_refused");
    assert!(!response.body.contains("sk-ant"), "{}", response.body);
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    let logs = envoy.logs();
    assert!(logs.contains("refused the gateway's credentials"), "{logs}");
    assert!(!logs.contains("sk-ant-wrong-key-1234"));
}

#[test]
fn a_compressed_answer_the_adapter_must_read_is_a_502_never_a_relabelled_body() {
    let chain = Chain::start(
        InstanceFaults {
            gzip_regardless: true,
            ..InstanceFaults::default()
        },
        InstanceFaults::default(),
        InstanceFaults::default(),
    );
    let response = chain.chat(CHAT);
    // The 502 is the adapter's, decided after the body was read (headers held): Envoy then
    // retries it on the next group like any 5xx.
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.body,
        chain.envoy.logs()
    );
    assert_eq!(response.header("x-tollgate-provider"), Some("openai-keep"));
    assert_eq!(chain.anthropic.request_count(), 1);
    let asked = &chain.anthropic.received()[0];
    assert!(asked
        .headers
        .iter()
        .any(|(k, v)| k == "accept-encoding" && v == "identity"));
}

#[test]
fn an_untranslatable_answer_becomes_a_502_once_its_body_is_read() {
    // One Anthropic provider that compresses whatever it is asked: nothing to fail over to.
    let anthropic = mock_named(
        Kind::Anthropic,
        "claude",
        None,
        InstanceFaults {
            gzip_regardless: true,
            ..InstanceFaults::default()
        },
    );
    let adapter = serde_json::json!({"backend": "chain", "providers": [
        {"name": "claude", "kind": "anthropic", "model": "claude-3-5-haiku-20241022",
         "authority": anthropic.addr().to_string()}]})
    .to_string();
    let port = free_port();
    let envoy = Envoy::start(&chain_yaml(
        port,
        &[("claude", anthropic.addr())],
        &adapter,
        &[],
    ))
    .unwrap();
    let (text, _) = post_raw(
        port,
        "/v1/chat/completions",
        "accept-encoding: gzip\r\n",
        CHAT,
    );
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 502"), "{text}\n{}", envoy.logs());
    let head = head.to_ascii_lowercase();
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{head}"
    );
    let error: Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"]["code"], "bad_provider_answer");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("gzip"),
        "{body}"
    );
}

#[test]
fn a_passthrough_answer_may_stay_compressed_when_the_provider_compresses_anyway() {
    let chain = Chain::start(
        failing(503),
        InstanceFaults {
            gzip_regardless: true,
            ..InstanceFaults::default()
        },
        InstanceFaults::default(),
    );
    let (text, pieces) = post_raw(
        chain.port,
        "/v1/chat/completions",
        "accept-encoding: gzip\r\n",
        CHAT,
    );
    let all: Vec<u8> = pieces.iter().flat_map(|(_, p)| p.clone()).collect();
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{text}");
    assert!(
        head.contains("content-encoding: gzip"),
        "relayed as the provider sent it: {head}"
    );
    assert!(head.contains("x-tollgate-provider: openai-keep"), "{head}");
}

#[test]
fn envoy_refuses_an_adapter_whose_key_variable_is_not_in_its_environment() {
    let anthropic = mock_named(Kind::Anthropic, "claude", None, InstanceFaults::default());
    let adapter = serde_json::json!({"backend": "chain", "providers": [
        {"name": "claude", "kind": "anthropic", "model": "claude-3-5-haiku-20241022",
         "authority": anthropic.addr().to_string(), "api_key_env": KEY_VARS[0]}]})
    .to_string();
    let yaml = chain_yaml(
        free_port(),
        &[("claude", anthropic.addr())],
        &adapter,
        &KEY_VARS,
    );
    // Another key is set; the one the adapter names is not.
    let env = vec![(
        KEY_VARS[1].to_string(),
        "sk-openai-present-9876".to_string(),
    )];
    let error = match Envoy::start_with_env(&yaml, &[], &env) {
        Ok(envoy) => panic!("Envoy started:\n{}", envoy.logs()),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains(KEY_VARS[0]),
        "the variable is named: {error}"
    );
    assert!(error.contains("host_env_keys"), "{error}");
    assert!(
        !error.contains("sk-openai-present-9876"),
        "no value is printed: {error}"
    );
    assert_eq!(anthropic.request_count(), 0);
}
