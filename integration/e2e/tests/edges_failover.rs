//! Failover edges on real Envoy with the generated guide + companion config (+ the fixture
//! `tests/fixtures/failover-edges.yaml`): a provider's 429 fails over to another provider with
//! no opt-in (and `retry.codes: []` turns that off), a 503 likewise, `Retry-After` does not keep
//! Envoy away from a provider, and every attempt of a request that crosses translated and
//! passthrough providers carries a `content-length` that matches its own body.

use std::time::{Duration, Instant};
use tollgate_e2e::gateway::{dev_jwt, Gateway, GatewaySpec};
use tollgate_e2e::http;
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle, ReceivedRequest};

const OPENAI_KEY: &str = "sk-edges-failover-openai";
const ANTHROPIC_KEY: &str = "sk-edges-failover-anthropic";
const GOOGLE_KEY: &str = "edges-failover-google";

/// One mock per provider name of the guide and companion.
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
        let mut spec = GatewaySpec::guide_and_companion()
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
        spec.inputs
            .push("integration/e2e/tests/fixtures/failover-edges.yaml".to_string());
        spec.health_check_path = Some("/__mock/health".to_string());
        Gateway::start(&spec).unwrap()
    }

    fn all(&self) -> [&MockHandle; 4] {
        [
            &self.local_llama,
            &self.gemini_flash,
            &self.gpt_4o_mini,
            &self.claude_haiku,
        ]
    }

    fn reset_received(&self) {
        for mock in self.all() {
            mock.reset_received();
        }
    }
}

fn failing(status: u16) -> InstanceFaults {
    InstanceFaults {
        status: Some(status),
        ..Default::default()
    }
}

/// Only the next request fails, with `status`.
fn failing_once(status: u16) -> InstanceFaults {
    InstanceFaults {
        status: Some(status),
        fail_first: 1,
        ..Default::default()
    }
}

/// A chat completion asking for gpt-4o-mini on a route, with the companion's development JWT
/// (the llm-routes policy may require one; other routes ignore it).
fn chat(gateway: &Gateway, path: &str) -> http::Response {
    let token = format!("Bearer {}", dev_jwt().unwrap());
    http::post(
        &gateway.url(path),
        &[
            ("content-type", "application/json"),
            ("authorization", &token),
        ],
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

fn assert_openai_completion(response: &http::Response) {
    assert_eq!(response.status, 200, "{}", response.body);
    let body: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.body));
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
}

/// Every request a provider received frames the body it carries: a `content-length` equal to
/// its length, or chunked transfer encoding without one (a stale length from an earlier
/// attempt would cut the body or hang the request).
fn assert_lengths_match(name: &str, received: &[ReceivedRequest]) {
    for request in received {
        let declared = request.header("content-length");
        let chunked = request
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        let length = request.body.len().to_string();
        assert!(
            declared == Some(length.as_str()) || (declared.is_none() && chunked),
            "{name} got content-length {declared:?} (chunked: {chunked}) for a {length}-byte body: {}",
            String::from_utf8_lossy(&request.body)
        );
        assert!(
            request.body_json().is_some(),
            "{name} got a body that is not JSON: {}",
            String::from_utf8_lossy(&request.body)
        );
    }
}

/// Waits until Envoy's health checks mark every host of a cluster healthy.
fn wait_healthy(gateway: &Gateway, cluster: &str, hosts: usize) {
    let started = Instant::now();
    loop {
        let clusters = gateway.envoy.admin_get("/clusters").unwrap_or_default();
        let healthy = clusters
            .lines()
            .filter(|l| l.starts_with(&format!("{cluster}::")))
            .filter(|l| l.ends_with("::health_flags::healthy"))
            .count();
        if healthy == hosts {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{cluster}: {healthy} of {hosts} hosts healthy:\n{clusters}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_429_from_the_first_group_is_served_by_the_second_without_opt_in() {
    let providers = Providers::start();
    providers.local_llama.set_faults(failing(429)).unwrap();
    let gateway = providers.gateway();
    // batch-route names no retry codes: 429 failover is the default on a Backend with groups.
    let response = chat(&gateway, "/batch/v1/chat/completions");
    assert_openai_completion(&response);
    let provider = served_by(&response);
    assert!(
        provider == "gemini-flash" || provider == "gpt-4o-mini",
        "served by {provider}"
    );
    assert_eq!(providers.local_llama.request_count(), 1);
    assert_eq!(providers.claude_haiku.request_count(), 0);
}

#[test]
fn a_503_from_the_first_group_is_served_by_the_second() {
    let providers = Providers::start();
    providers.gpt_4o_mini.set_faults(failing(503)).unwrap();
    let gateway = providers.gateway();
    // stream-route: fast-llm, gpt-4o-mini first, gemini-flash second.
    let response = chat(&gateway, "/stream/v1/chat/completions");
    assert_openai_completion(&response);
    assert_eq!(served_by(&response), "gemini-flash");
    assert_eq!(providers.gpt_4o_mini.request_count(), 1);
}

/// `retriable_status_codes` of every route of the gateway listener, by route name, as Envoy
/// holds them (admin `/config_dump`).
fn retry_codes(gateway: &Gateway) -> Vec<(String, Vec<u64>)> {
    let dump: serde_json::Value = serde_json::from_str(
        &gateway
            .envoy
            .admin_get("/config_dump?resource=static_listeners")
            .unwrap(),
    )
    .unwrap();
    let mut found = Vec::new();
    for listener in dump["configs"].as_array().unwrap() {
        let hcm = &listener["listener"]["filter_chains"][0]["filters"][0]["typed_config"];
        for vhost in hcm["route_config"]["virtual_hosts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for route in vhost["routes"].as_array().into_iter().flatten() {
                let codes = route["route"]["retry_policy"]["retriable_status_codes"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|v| v.as_u64()).collect())
                    .unwrap_or_default();
                found.push((route["name"].as_str().unwrap_or("").to_string(), codes));
            }
        }
    }
    found
}

#[test]
fn a_route_with_empty_retry_codes_passes_the_429_to_the_client() {
    let providers = Providers::start();
    providers.local_llama.set_faults(failing(429)).unwrap();
    let gateway = providers.gateway();
    let codes = retry_codes(&gateway);
    let of = |name: &str| {
        codes
            .iter()
            .find(|(n, _)| n.starts_with(name))
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("no route {name} in {codes:?}"))
    };
    // Several providers and no retry codes: 429 by default; one provider: nothing to fail over to.
    assert_eq!(of("batch-route/"), [429]);
    assert_eq!(of("stream-route/"), [429]);
    assert_eq!(
        of("llm-routes/0/"),
        Vec::<u64>::new(),
        "/openai has one provider"
    );
    assert_eq!(of("strict-route/"), Vec::<u64>::new());
    let response = chat(&gateway, "/strict/v1/chat/completions");
    assert_eq!(response.status, 429, "{}", response.body);
    assert_eq!(providers.local_llama.request_count(), 1);
    assert_eq!(providers.gemini_flash.request_count(), 0);
    assert_eq!(providers.gpt_4o_mini.request_count(), 0);
}

#[test]
fn retry_after_does_not_keep_envoy_away_from_a_rate_limited_provider() {
    // Envoy 1.40 has no way to eject a host for the time a 429's Retry-After names (outlier
    // detection does not count 429; rate_limited_retry_back_off only delays the retry): every
    // request tries the rate-limited first group again, then fails over at once.
    let providers = Providers::start();
    providers
        .local_llama
        .set_faults(InstanceFaults {
            status: Some(429),
            retry_after_secs: Some(30),
            ..Default::default()
        })
        .unwrap();
    let gateway = providers.gateway();
    for _ in 0..2 {
        let response = chat(&gateway, "/batch/v1/chat/completions");
        assert_openai_completion(&response);
        assert_ne!(served_by(&response), "local-llama");
    }
    assert_eq!(providers.local_llama.request_count(), 2);
}

#[test]
fn translated_then_passthrough_then_translated_attempts_each_frame_their_own_body() {
    let providers = Providers::start();
    let gateway = providers.gateway();
    // mixed-order: claude-haiku (Anthropic) -> gpt-4o-mini (OpenAI, the client's model: sent
    // as is) -> gemini-flash (Gemini); model names of 25, 11 and 16 bytes.
    providers
        .claude_haiku
        .set_faults(failing_once(429))
        .unwrap();
    providers.gpt_4o_mini.set_faults(failing_once(503)).unwrap();
    let response = chat(&gateway, "/mixed/v1/chat/completions");
    assert_openai_completion(&response);
    assert_eq!(served_by(&response), "gemini-flash");
    for (name, mock, path) in [
        ("claude-haiku", &providers.claude_haiku, "/v1/messages"),
        (
            "gpt-4o-mini",
            &providers.gpt_4o_mini,
            "/v1/chat/completions",
        ),
    ] {
        let received = mock.received();
        assert_eq!(received.len(), 1, "{name} attempts: {received:?}");
        assert_eq!(received[0].path, path, "{name}");
        assert_lengths_match(name, &received);
    }
    let gemini = providers.gemini_flash.received();
    assert_eq!(gemini.len(), 1, "{gemini:?}");
    assert!(
        gemini[0].path.contains("gemini-1.5-flash"),
        "{}",
        gemini[0].path
    );
    assert_lengths_match("gemini-flash", &gemini);
}

#[test]
fn the_multi_provider_route_survives_two_failed_attempts_in_any_provider_order() {
    let providers = Providers::start();
    let gateway = providers.gateway();
    wait_healthy(&gateway, "multi-provider", 3);
    // /v1 balances gpt-4o-mini, claude-haiku and gemini-flash (one group, LEAST_REQUEST). Each
    // round two of them fail their next request (one 429, one 503) and the third answers, so a
    // request fails over zero, one or two times across translated and passthrough providers,
    // in whatever order Envoy picks; the survivor changes every round.
    let mocks = [
        ("gpt-4o-mini", &providers.gpt_4o_mini),
        ("claude-haiku", &providers.claude_haiku),
        ("gemini-flash", &providers.gemini_flash),
    ];
    let mut failovers = 0;
    for round in 0..12 {
        providers.reset_received();
        let failing: Vec<usize> = (0..3).filter(|i| *i != round % 3).collect();
        mocks[failing[0]].1.set_faults(failing_once(429)).unwrap();
        mocks[failing[1]].1.set_faults(failing_once(503)).unwrap();
        let response = chat(&gateway, "/v1/chat/completions");
        assert_openai_completion(&response);
        let mut attempts = 0;
        for (name, mock) in mocks {
            let received = mock.received();
            attempts += received.len();
            assert_lengths_match(name, &received);
        }
        failovers += attempts - 1;
        for (_, mock) in mocks {
            mock.set_faults(InstanceFaults::default()).unwrap();
        }
    }
    assert!(failovers > 0, "no request of 12 failed over");
}
