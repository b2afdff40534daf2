//! Priority-group failover of the guide's cost-optimized Backend, on real Envoy with the mocks:
//! priority 1 local-llama, 2 gemini-flash + gpt-4o-mini, 3 claude-haiku. Envoy does the failover
//! (endpoint priorities + retries with previous_priorities); tollgate configures it and adapts
//! each attempt to the provider Envoy picked.

use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http;
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-failover-openai";
const ANTHROPIC_KEY: &str = "sk-failover-anthropic";
const GOOGLE_KEY: &str = "failover-google";

/// The four providers of cost-optimized-llm, each a mock on its own port.
struct Providers {
    local_llama: MockHandle,
    gemini_flash: MockHandle,
    gpt_4o_mini: MockHandle,
    claude_haiku: MockHandle,
}

fn mock(kind: Kind, key: Option<&str>) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = key.map(str::to_string);
    spawn(config).unwrap()
}

impl Providers {
    fn start() -> Self {
        Providers {
            local_llama: mock(Kind::Ollama, None),
            gemini_flash: mock(Kind::Gemini, Some(GOOGLE_KEY)),
            gpt_4o_mini: mock(Kind::Openai, Some(OPENAI_KEY)),
            claude_haiku: mock(Kind::Anthropic, Some(ANTHROPIC_KEY)),
        }
    }

    fn gateway(&self) -> Gateway {
        let spec = GatewaySpec::guide_and_companion()
            .endpoint("local-llama", self.local_llama.base_url())
            .endpoint("gemini-flash", self.gemini_flash.base_url())
            .endpoint("gpt-4o-mini", self.gpt_4o_mini.base_url())
            .endpoint("openai", self.gpt_4o_mini.base_url())
            .endpoint("claude-haiku", self.claude_haiku.base_url())
            .endpoint("mcp-tools", "http://127.0.0.1:9")
            .endpoint("semantic-cache-service", "http://127.0.0.1:9")
            .secret("openai-secret", OPENAI_KEY)
            .secret("anthropic-secret", ANTHROPIC_KEY)
            .secret("google-ai-secret", GOOGLE_KEY);
        Gateway::start(&spec).unwrap()
    }
}

fn always_failing(status: u16) -> InstanceFaults {
    InstanceFaults {
        status: Some(status),
        ..Default::default()
    }
}

/// A chat completion on the guide's /batch route (cost-optimized-llm).
fn chat(gateway: &Gateway) -> http::Response {
    http::post(
        &gateway.url("/batch/v1/chat/completions"),
        &[("content-type", "application/json")],
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#,
    )
    .unwrap()
}

fn served_by(response: &http::Response) -> String {
    response
        .header("x-tollgate-provider")
        .unwrap_or("(none)")
        .to_string()
}

/// The body is an OpenAI chat completion whatever provider answered.
fn assert_openai_completion(response: &http::Response) {
    let body: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body));
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    assert!(
        body["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );
}

#[test]
fn the_local_model_serves_while_it_is_up() {
    let providers = Providers::start();
    let gateway = providers.gateway();
    let response = chat(&gateway);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(served_by(&response), "local-llama");
    assert_openai_completion(&response);
    assert_eq!(providers.gemini_flash.request_count(), 0);
    assert_eq!(providers.gpt_4o_mini.request_count(), 0);
}

#[test]
fn local_llama_down_is_served_by_the_second_priority_group() {
    let mut providers = Providers::start();
    providers.local_llama.stop();
    let gateway = providers.gateway();
    for _ in 0..4 {
        let response = chat(&gateway);
        assert_eq!(response.status, 200, "{}", response.body);
        let provider = served_by(&response);
        assert!(
            provider == "gemini-flash" || provider == "gpt-4o-mini",
            "served by {provider}"
        );
        assert_openai_completion(&response);
    }
    assert_eq!(providers.claude_haiku.request_count(), 0);
}

#[test]
fn both_second_group_providers_failing_falls_through_to_claude_haiku() {
    let mut providers = Providers::start();
    providers.local_llama.stop();
    providers
        .gemini_flash
        .set_faults(always_failing(503))
        .unwrap();
    providers
        .gpt_4o_mini
        .set_faults(always_failing(500))
        .unwrap();
    let gateway = providers.gateway();
    let response = chat(&gateway);
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(served_by(&response), "claude-haiku");
    assert_openai_completion(&response);
    // Claude got an Anthropic Messages request with the configured model and its own key.
    let received = providers.claude_haiku.received();
    let last = received.last().unwrap();
    assert_eq!(last.path, "/v1/messages");
    assert_eq!(last.header("x-api-key"), Some(ANTHROPIC_KEY));
    let sent: serde_json::Value = last.body_json().unwrap();
    assert_eq!(sent["model"], "claude-3-5-haiku-20241022");
}

#[test]
fn all_providers_down_is_one_clean_503_in_openai_format() {
    let mut providers = Providers::start();
    providers.local_llama.stop();
    providers.gemini_flash.stop();
    providers.gpt_4o_mini.stop();
    providers.claude_haiku.stop();
    let gateway = providers.gateway();
    let response = chat(&gateway);
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        response.headers
    );
    let body: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body));
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
}

#[test]
fn traffic_returns_to_local_llama_when_it_comes_back() {
    let mut providers = Providers::start();
    let local_addr = providers.local_llama.addr();
    providers.local_llama.stop();
    let gateway = providers.gateway();
    let during = chat(&gateway);
    assert_eq!(during.status, 200, "{}", during.body);
    assert_ne!(served_by(&during), "local-llama");

    let mut config = MockConfig::new(Kind::Ollama, local_addr);
    config.api_key = None;
    providers.local_llama = spawn(config).unwrap();
    let after = chat(&gateway);
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(served_by(&after), "local-llama");
    assert_eq!(providers.local_llama.request_count(), 1);
}
