//! The module in a real Envoy 1.40 with the mock providers: priority-group failover across
//! OpenAI-compatible, Gemini and Anthropic endpoints, translation of what each answers, the
//! OpenAI-format 503 when every provider is down, and streams relayed chunk by chunk.
//!
//! The Envoy configuration is written here by hand (one cluster, the guide's cost-optimized
//! priority groups) so it tests the module's contract with Envoy independently of the
//! generator. Needs `scripts/build-wasm` and `scripts/setup` (Envoy in `.tools/bin`).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
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

fn wasm_filter(root_id: &str, configuration: &str, indent: &str) -> String {
    let path = wasm_path("tollgate").unwrap();
    let text = format!(
        r#"- name: tollgate.{root_id}
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
    config:
      name: {root_id}
      root_id: {root_id}
      allow_on_headers_stop_iteration: true
      failure_policy: FAIL_CLOSED
      vm_config:
        vm_id: tollgate
        runtime: envoy.wasm.runtime.v8
        code: {{ local: {{ filename: "{path}" }} }}
      configuration:
        "@type": type.googleapis.com/google.protobuf.StringValue
        value: '{configuration}'"#,
        path = path.display()
    );
    text.lines().map(|l| format!("{indent}{l}\n")).collect()
}

fn envoy_yaml(listener_port: u16, mocks: &[(&str, SocketAddr)]) -> String {
    let providers: Vec<Value> = PROVIDERS
        .iter()
        .map(|(name, kind, model, key, _)| {
            let addr = mocks.iter().find(|(n, _)| n == name).unwrap().1;
            serde_json::json!({"name": name, "kind": kind, "model": model, "authority": addr.to_string(), "api_key": key})
        })
        .collect();
    let adapter =
        serde_json::json!({"backend": "cost-optimized-llm", "providers": providers}).to_string();
    let endpoints: String = (0..3)
        .map(|priority| {
            let hosts: String = PROVIDERS
                .iter()
                .filter(|p| p.4 == priority)
                .map(|(name, ..)| {
                    let addr = mocks.iter().find(|(n, _)| n == name).unwrap().1;
                    format!(
                        "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n          metadata: {{ filter_metadata: {{ tollgate: {{ provider: {name} }} }} }}\n",
                        addr.port()
                    )
                })
                .collect();
            format!("      - priority: {priority}\n        lb_endpoints:\n{hosts}")
        })
        .collect();
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
static_resources:
  listeners:
  - name: llm
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener_port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: llm
          route_config:
            virtual_hosts:
            - name: llm
              domains: ["*"]
              routes:
              - match:
                  prefix: "/"
                  headers: [{{ name: x-tollgate-backend, string_match: {{ exact: claude-only }} }}]
                route: {{ cluster: claude-only, timeout: 30s }}
              - match: {{ prefix: "/" }}
                route:
                  cluster: cost-optimized-llm
                  timeout: 30s
                  retry_policy:
                    retry_on: "5xx,reset,connect-failure,retriable-status-codes"
                    retriable_status_codes: [429]
                    num_retries: 3
                    per_try_timeout: 10s
                    retry_priority:
                      name: envoy.retry_priorities.previous_priorities
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig
                        update_frequency: 1
                    retry_host_predicate:
                    - name: envoy.retry_host_predicates.previous_hosts
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
          http_filters:
{router}          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  - name: plain
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {plain_port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: plain
          route_config:
            virtual_hosts:
            - name: plain
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: plain-anthropic, timeout: 30s }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
  clusters:
  - name: plain-anthropic
    connect_timeout: 0.5s
    type: STATIC
    load_assignment:
      cluster_name: plain-anthropic
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {anthropic_port} }} }} }}
  - name: claude-only
    connect_timeout: 0.5s
    type: STATIC
    load_assignment:
      cluster_name: claude-only
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {anthropic_port} }} }} }}
          metadata: {{ filter_metadata: {{ tollgate: {{ provider: claude-haiku }} }} }}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http_protocol_options: {{}} }}
        http_filters:
{adapter}        - name: envoy.filters.http.upstream_codec
          typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec }}
  - name: cost-optimized-llm
    connect_timeout: 0.5s
    type: STATIC
    load_assignment:
      cluster_name: cost-optimized-llm
      endpoints:
{endpoints}    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http_protocol_options: {{}} }}
        http_filters:
{adapter}        - name: envoy.filters.http.upstream_codec
          typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec }}
"#,
        router = wasm_filter("router", ROUTER_CONFIG, "          "),
        plain_port = listener_port + 1,
        anthropic_port = mocks
            .iter()
            .find(|(n, _)| *n == "claude-haiku")
            .unwrap()
            .1
            .port(),
        adapter = wasm_filter("adapter", &adapter, "        "),
    )
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
