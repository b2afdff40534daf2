//! A Backend whose providers all speak the client's format runs without the wasm upstream
//! adapter: Envoy rewrites path, host and credential natively (the companion's `openai`
//! Backend behind `/openai`). What the provider sees and what the client gets must be what
//! the adapter would have done.

use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http;
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-native-openai-key";

fn mock(kind: Kind, key: Option<&str>) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = key.map(str::to_string);
    spawn(config).unwrap()
}

fn gateway(openai: &MockHandle, other: &MockHandle) -> Gateway {
    let spec = GatewaySpec::guide_and_companion()
        .endpoint("openai", openai.base_url())
        .endpoint("local-llama", other.base_url())
        .endpoint("gemini-flash", other.base_url())
        .endpoint("gpt-4o-mini", other.base_url())
        .endpoint("claude-haiku", other.base_url())
        .endpoint("mcp-tools", "http://127.0.0.1:9")
        .endpoint("semantic-cache-service", "http://127.0.0.1:9")
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", "sk-ant")
        .secret("google-ai-secret", "goog");
    Gateway::start(&spec).unwrap()
}

/// The cluster object named `name` anywhere in a config_dump.
fn find_cluster<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("name").and_then(|n| n.as_str()) == Some(name)
                && map.contains_key("load_assignment")
            {
                return Some(value);
            }
            map.values().find_map(|v| find_cluster(v, name))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_cluster(v, name)),
        _ => None,
    }
}

#[test]
fn the_openai_backend_has_no_wasm_upstream_filter_and_serves_as_the_adapter_would() {
    let openai = mock(Kind::Openai, Some(OPENAI_KEY));
    let other = mock(Kind::Ollama, None);
    let gateway = gateway(&openai, &other);

    // No adapter on the cluster: its upstream filters are Envoy's codec alone.
    let dump: serde_json::Value =
        serde_json::from_str(&gateway.envoy.admin_get("/config_dump").unwrap()).unwrap();
    let cluster = find_cluster(&dump, "openai").expect("the openai cluster in config_dump");
    assert!(
        !cluster.to_string().contains("tollgate-adapter"),
        "{cluster}"
    );
    let fast = find_cluster(&dump, "fast-llm").expect("the fast-llm cluster");
    assert!(
        fast.to_string().contains("tollgate-adapter"),
        "a translating Backend keeps its adapter"
    );
    assert!(
        !dump.to_string().contains(OPENAI_KEY),
        "the key is in config_dump"
    );

    let response = http::post(
        &gateway.url("/openai/v1/chat/completions?api-version=1"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer sk-the-clients-own-key"),
            ("openai-organization", "org-client"),
            ("cookie", "session=abc"),
        ],
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#,
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("x-tollgate-provider"), Some("openai"));
    let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(body["object"], "chat.completion");

    let received = openai.received();
    let last = received.last().expect("the provider got the request");
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(
        last.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(last.header("openai-organization"), None);
    assert_eq!(last.header("cookie"), None);
    assert_eq!(last.body_json().unwrap()["model"], "gpt-4o-mini");
}

#[test]
fn a_provider_refusing_the_gateway_key_is_a_502_without_its_text() {
    // The provider expects another key than the one the gateway holds.
    let openai = mock(Kind::Openai, Some("sk-the-provider-wants-this"));
    let other = mock(Kind::Ollama, None);
    let gateway = gateway(&openai, &other);
    let response = http::post(
        &gateway.url("/openai/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#,
    )
    .unwrap();
    assert_eq!(response.status, 502, "{}", response.body);
    let error: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(error["error"]["code"], "provider_credentials_refused");
    assert!(!response.body.contains("sk-native"), "{}", response.body);
    assert_eq!(openai.request_count(), 1);
}
