//! Smoke test of the foundation: a real Envoy loads every tollgate .wasm and proxies an OpenAI
//! chat completion to the mock provider.

use tollgate_e2e::{free_port, http, wasm_path, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig};

/// One `envoy.filters.http.wasm` entry in Envoy's YAML.
fn wasm_filter(module: &str, root_id: &str, configuration: &str) -> String {
    let path = wasm_path(module).unwrap();
    format!(
        r#"
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {module}-{root_id}
                root_id: {root_id}
                allow_on_headers_stop_iteration: true
                failure_policy: FAIL_CLOSED
                vm_config:
                  vm_id: {module}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: "{path}" }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{configuration}'"#,
        path = path.display()
    )
}

/// A listener with all downstream filters and one cluster (upstream adapter included) to `upstream_port`.
fn all_filters_config(listener_port: u16, upstream_port: u16) -> String {
    let downstream: String = [wasm_filter("tollgate", "router", "{}")].concat();
    let adapter_config = format!(
        r#"{{"backend":"openai","providers":[{{"name":"gpt-4o-mini","kind":"openai","model":"gpt-4o-mini","authority":"127.0.0.1:{upstream_port}","api_key":"sk-smoke"}}]}}"#
    );
    let upstream =
        wasm_filter("tollgate", "adapter", &adapter_config).replace("\n          ", "\n        ");
    format!(
        r#"
admin:
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
              - match: {{ prefix: "/" }}
                route: {{ cluster: openai, timeout: 30s }}
          http_filters:{downstream}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: openai
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: openai
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }}
          metadata:
            filter_metadata:
              tollgate: {{ provider: gpt-4o-mini }}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http_protocol_options: {{}} }}
        http_filters:{upstream}
        - name: envoy.filters.http.upstream_codec
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec
"#
    )
}

#[test]
fn envoy_loads_every_filter_and_proxies_a_chat_completion_to_the_mock() {
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse().unwrap());
    config.api_key = Some("sk-smoke".into());
    let mock = spawn(config).unwrap();
    let port = free_port();
    let envoy = Envoy::start(&all_filters_config(port, mock.addr().port())).unwrap();

    let response = http::post(
        &format!("http://127.0.0.1:{port}/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer sk-smoke"),
        ],
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#,
    )
    .unwrap();

    assert_eq!(response.status, 200, "{}\n{}", response.body, envoy.logs());
    let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Hello from"));
    assert_eq!(mock.request_count(), 1);
    // Every module was loaded into V8: one wasm VM per module and worker, none failed.
    let logs = envoy.logs();
    assert!(!logs.contains("Wasm VM failed"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[test]
fn a_config_envoy_rejects_is_reported_with_envoys_reason() {
    let yaml = all_filters_config(free_port(), 1).replace("STATIC", "NOT_A_TYPE");
    let err = tollgate_e2e::validate_config(&yaml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("NOT_A_TYPE"), "{err}");
}
