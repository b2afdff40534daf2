//! Smoke test of the foundation: a real Envoy loads every tollgate .wasm and proxies an OpenAI
//! chat completion to the mock provider.

use tollgate_e2e::bootstrap::{Bootstrap, Cluster, FailurePolicy, Listener, Route, Wasm};
use tollgate_e2e::{free_port, http, wasm_path, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig};

/// A plugin of the tollgate module, failing closed.
fn tollgate_plugin(root_id: &str, configuration: &str) -> Wasm {
    Wasm::new("tollgate", &wasm_path("tollgate").unwrap(), root_id)
        .configuration(configuration)
        .failure_policy(FailurePolicy::FailClosed)
}

/// A listener with all downstream filters and one cluster (upstream adapter included) to `upstream_port`.
fn all_filters_config(listener_port: u16, upstream_port: u16) -> String {
    let adapter_config = format!(
        r#"{{"backend":"openai","providers":[{{"name":"gpt-4o-mini","kind":"openai","model":"gpt-4o-mini","authority":"127.0.0.1:{upstream_port}","api_key":"sk-smoke"}}]}}"#
    );
    Bootstrap::new()
        .listener(
            Listener::new("llm", listener_port)
                .route(Route::to_cluster("openai", "30s"))
                .filter(tollgate_plugin("router", "{}")),
        )
        .cluster(
            Cluster::new("openai")
                .provider(0, "gpt-4o-mini", upstream_port)
                .upstream_filter(tollgate_plugin("adapter", &adapter_config)),
        )
        .render()
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
