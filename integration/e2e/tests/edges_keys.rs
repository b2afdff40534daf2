//! Provider keys out of reach, on real Envoy with the generated guide + companion config and
//! known fake keys: after serving requests that need every key, no key appears in admin
//! `/config_dump`, in `/stats/prometheus`, in any generated file but `secrets.env`, or in
//! Envoy's info-level log. Admin stays on loopback; the stats port serves only
//! `/stats/prometheus` and `/ready`.

use tollgate_e2e::gateway::{dev_jwt, Gateway, GatewaySpec};
use tollgate_e2e::{http, raw_request};
use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

/// Distinctive fake keys, so a hit can only be a leak.
const OPENAI_KEY: &str = "sk-edges-keys-openai-7f3a9c";
const ANTHROPIC_KEY: &str = "sk-ant-edges-keys-2b8d4e";
const GOOGLE_KEY: &str = "edges-keys-google-91c6f0";
const KEYS: [&str; 3] = [OPENAI_KEY, ANTHROPIC_KEY, GOOGLE_KEY];

struct Providers {
    local_llama: MockHandle,
    gemini_flash: MockHandle,
    gpt_4o_mini: MockHandle,
    claude_haiku: MockHandle,
}

/// A mock that answers 401 unless the request carries `key`.
fn mock(kind: Kind, key: Option<&str>) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = key.map(str::to_string);
    spawn(config).unwrap()
}

fn start() -> (Providers, Gateway) {
    let providers = Providers {
        local_llama: mock(Kind::Ollama, None),
        gemini_flash: mock(Kind::Gemini, Some(GOOGLE_KEY)),
        gpt_4o_mini: mock(Kind::Openai, Some(OPENAI_KEY)),
        claude_haiku: mock(Kind::Anthropic, Some(ANTHROPIC_KEY)),
    };
    let spec = GatewaySpec::guide_and_companion()
        .endpoint("local-llama", providers.local_llama.base_url())
        .endpoint("gemini-flash", providers.gemini_flash.base_url())
        .endpoint("gpt-4o-mini", providers.gpt_4o_mini.base_url())
        .endpoint("openai", providers.gpt_4o_mini.base_url())
        .endpoint("claude-haiku", providers.claude_haiku.base_url())
        .endpoint("mcp-tools", "http://127.0.0.1:9")
        .endpoint("semantic-cache-service", "http://127.0.0.1:9")
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", ANTHROPIC_KEY)
        .secret("google-ai-secret", GOOGLE_KEY);
    let gateway = Gateway::start(&spec).unwrap();
    (providers, gateway)
}

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

fn assert_no_key(what: &str, text: &str) {
    for key in KEYS {
        assert!(!text.contains(key), "{what} holds the key {key}");
    }
}

#[test]
fn no_provider_key_in_config_dump_stats_generated_files_or_the_info_log() {
    let (providers, gateway) = start();
    // Requests that need each key: the mocks answer 401 without the right one, so a 200 shows
    // the adapter got the key from Envoy's environment.
    let stream = chat(&gateway, "/stream/v1/chat/completions");
    assert_eq!(stream.status, 200, "gpt-4o-mini: {}", stream.body);
    let openai = chat(&gateway, "/openai/v1/chat/completions");
    assert_eq!(openai.status, 200, "openai: {}", openai.body);
    // fast-llm: gpt-4o-mini fails, gemini-flash serves.
    providers.gpt_4o_mini.set_faults(failing(503)).unwrap();
    let gemini = chat(&gateway, "/stream/v1/chat/completions");
    assert_eq!(gemini.status, 200, "gemini-flash: {}", gemini.body);
    assert_eq!(gemini.header("x-tollgate-provider"), Some("gemini-flash"));
    // cost-optimized-llm: every group before claude-haiku fails.
    providers.local_llama.set_faults(failing(503)).unwrap();
    providers.gemini_flash.set_faults(failing(503)).unwrap();
    let claude = chat(&gateway, "/batch/v1/chat/completions");
    assert_eq!(claude.status, 200, "claude-haiku: {}", claude.body);
    assert_eq!(claude.header("x-tollgate-provider"), Some("claude-haiku"));

    for query in ["", "?include_eds"] {
        let dump = gateway
            .envoy
            .admin_get(&format!("/config_dump{query}"))
            .unwrap();
        assert!(dump.contains("TOLLGATE_KEY_"), "config_dump{query}");
        assert_no_key(&format!("/config_dump{query}"), &dump);
    }
    let metrics = http::get(&gateway.stats_url("/stats/prometheus")).unwrap();
    assert_eq!(metrics.status, 200);
    assert_no_key("/stats/prometheus", &metrics.body);
    assert_no_key("admin /stats", &gateway.envoy.admin_get("/stats").unwrap());

    let secrets = &gateway.files["secrets.env"];
    assert!(secrets.secret, "secrets.env is written 0600");
    for key in KEYS {
        assert!(secrets.text.contains(key), "secrets.env lacks {key}");
    }
    for (name, file) in gateway.files.iter().filter(|(n, _)| *n != "secrets.env") {
        assert_no_key(name, &file.text);
    }
    let log = gateway.envoy.logs();
    assert!(log.contains("[info]"), "the log is at info level");
    assert_no_key("Envoy's log", &log);
    // Envoy's own files for this run: the config it was given, and nothing else holds keys.
    for entry in std::fs::read_dir(gateway.envoy.run_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert_no_key(&path.display().to_string(), &text);
    }
}

fn failing(status: u16) -> tollgate_mock::InstanceFaults {
    tollgate_mock::InstanceFaults {
        status: Some(status),
        ..Default::default()
    }
}

#[test]
fn the_stats_port_serves_prometheus_and_ready_and_nothing_else_of_admin() {
    let (_providers, gateway) = start();
    let port = gateway.stats_port;
    let metrics = raw_request(port, "GET", "/stats/prometheus", &[], "").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("# TYPE envoy_"),
        "not Prometheus text: {}",
        &metrics.body[..metrics.body.len().min(300)]
    );
    let ready = raw_request(port, "GET", "/ready", &[], "").unwrap();
    assert_eq!((ready.status, ready.body.trim()), (200, "LIVE"));
    for (method, path) in [
        ("GET", "/config_dump"),
        ("GET", "/config_dump?include_eds"),
        ("POST", "/quitquitquit"),
        ("GET", "/quitquitquit"),
        ("POST", "/healthcheck/fail"),
        ("POST", "/logging?level=trace"),
        ("GET", "/stats"),
        ("GET", "/clusters"),
        ("GET", "/ready/../quitquitquit"),
        ("GET", "/stats/prometheus/../../config_dump"),
        ("POST", "/stats/prometheus"),
        ("POST", "/ready"),
    ] {
        let response = raw_request(port, method, path, &[], "").unwrap();
        assert_eq!(response.status, 404, "{method} {path}: {}", response.body);
    }
    // The gateway is still up and admin still listens on loopback only.
    assert_eq!(
        gateway.envoy.admin_get("/ready").unwrap().trim(),
        "LIVE",
        "a request on the stats port stopped Envoy"
    );
    assert!(gateway.envoy.admin_addr().ip().is_loopback());
}
