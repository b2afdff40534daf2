//! What the generated configuration makes Envoy do, on a real Envoy with the mock providers:
//! outlier ejection and its cap, health checks and priority failover, upstream HTTP/2, circuit
//! breaker overflow, keepalive/DNS settings and LEAST_REQUEST. Counts come from the admin
//! endpoint (`/clusters`, `/stats`, `/config_dump`), as an operator would read them.

use std::time::{Duration, Instant};
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http;
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-behaviour-openai";

/// `/clusters` shows the main thread's view of host health; the worker that serves requests
/// gets it asynchronously. A pause (not an assertion) before relying on a health change.
const WORKER_SETTLE: Duration = Duration::from_secs(1);

fn mock() -> MockHandle {
    spawn(MockConfig::new(
        Kind::Openai,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap()
}

fn chat(gateway: &Gateway, prefix: &str) -> u16 {
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#;
    http::post(
        &gateway.url(&format!("{prefix}/v1/chat/completions")),
        &[("content-type", "application/json")],
        body,
    )
    .map(|r| r.status)
    .unwrap_or(0)
}

/// A gateway from guide blocks and test fixtures (paths relative to the repository root).
fn gateway(inputs: &[&str], endpoints: &[(&str, String)]) -> Gateway {
    let mut spec = GatewaySpec {
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    for (name, url) in endpoints {
        spec = spec.endpoint(name, url.clone());
    }
    Gateway::start(&spec).unwrap()
}

/// `/clusters` lines `<cluster>::<host>::health_flags::<flags>` of one cluster: host -> flags.
fn health_flags(gateway: &Gateway, cluster: &str) -> Vec<(String, String)> {
    let clusters = gateway.envoy.admin_get("/clusters").unwrap();
    clusters
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&format!("{cluster}::"))?;
            let (host, flags) = rest.split_once("::health_flags::")?;
            Some((host.to_string(), flags.to_string()))
        })
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < limit,
            "gave up waiting for {what} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config_dump_cluster(gateway: &Gateway, name: &str) -> serde_json::Value {
    let dump: serde_json::Value = serde_json::from_str(
        &gateway
            .envoy
            .admin_get("/config_dump?resource=static_clusters")
            .unwrap(),
    )
    .unwrap();
    dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["cluster"])
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("cluster {name} not in /config_dump"))
        .clone()
}

#[test]
fn outlier_detection_ejects_after_five_5xx_and_never_more_than_half() {
    let (left, right) = (mock(), mock());
    for host in [&left, &right] {
        host.set_faults(InstanceFaults {
            status: Some(500),
            ..Default::default()
        })
        .unwrap();
    }
    let gateway = gateway(
        &[
            "envoy-config/guide/12-backendconfigpolicy-circuit-breaker.yaml",
            "envoy-config/tests/fixtures/behaviour/outlier.yaml",
        ],
        &[("left", left.base_url()), ("right", right.base_url())],
    );
    // Each request tries one host and retries on the other: both fail every time.
    for _ in 0..4 {
        chat(&gateway, "/openai");
    }
    assert_eq!(
        gateway
            .envoy
            .stat("cluster.openai.outlier_detection.ejections_active"),
        Some(0),
        "4 failures eject nobody"
    );
    for _ in 0..4 {
        chat(&gateway, "/openai");
    }
    let ejected = |g: &Gateway| {
        health_flags(g, "openai")
            .iter()
            .filter(|(_, f)| f.contains("failed_outlier_check"))
            .count()
    };
    assert_eq!(
        ejected(&gateway),
        1,
        "both hosts failed 5 times, but at most 50 % of 2 may be ejected"
    );
    assert_eq!(
        gateway
            .envoy
            .stat("cluster.openai.outlier_detection.ejections_enforced_consecutive_5xx"),
        Some(1)
    );
    assert!(
        gateway
            .envoy
            .stat("cluster.openai.outlier_detection.ejections_overflow")
            .unwrap_or(0)
            >= 1
    );
    let outlier = &config_dump_cluster(&gateway, "openai")["outlier_detection"];
    assert_eq!(outlier["base_ejection_time"], "30s");
    assert_eq!(outlier["consecutive_5xx"], 5);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        ejected(&gateway),
        1,
        "still ejected: the ejection lasts base_ejection_time (30 s)"
    );
}

#[test]
fn health_checks_mark_a_dead_host_and_traffic_fails_over_to_the_next_priority() {
    let (mut primary, secondary) = (mock(), mock());
    let gateway = gateway(
        &["envoy-config/tests/fixtures/behaviour/health-check.yaml"],
        &[
            ("primary", primary.base_url()),
            ("secondary", secondary.base_url()),
        ],
    );
    wait_for(
        "both hosts to pass their first health check",
        Duration::from_secs(10),
        || {
            let flags = health_flags(&gateway, "checked");
            flags.len() == 2 && flags.iter().all(|(_, f)| f == "healthy")
        },
    );
    std::thread::sleep(WORKER_SETTLE);
    assert_eq!(chat(&gateway, "/checked"), 200);
    assert_eq!(
        (primary.request_count(), secondary.request_count()),
        (1, 0),
        "priority 0 serves while healthy"
    );

    primary.stop();
    wait_for(
        "the health check to fail the primary",
        Duration::from_secs(10),
        || {
            health_flags(&gateway, "checked")
                .iter()
                .any(|(_, f)| f.contains("failed_active_hc"))
        },
    );
    std::thread::sleep(WORKER_SETTLE);
    let retries_before = gateway
        .envoy
        .stat("cluster.checked.upstream_rq_retry")
        .unwrap_or(0);
    for _ in 0..3 {
        assert_eq!(chat(&gateway, "/checked"), 200);
    }
    assert_eq!(
        secondary.request_count(),
        3,
        "priority 1 serves once priority 0 is unhealthy"
    );
    assert_eq!(
        gateway
            .envoy
            .stat("cluster.checked.upstream_rq_retry")
            .unwrap_or(0),
        retries_before,
        "no retry was needed"
    );
}

fn guide_gateway(openai: &MockHandle, others: &MockHandle) -> Gateway {
    let mut spec = GatewaySpec::guide_and_companion()
        .endpoint("openai", openai.base_url())
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", "sk-ant")
        .secret("google-ai-secret", "g-key");
    for name in ["gpt-4o-mini", "claude-haiku", "gemini-flash", "local-llama"] {
        spec = spec.endpoint(name, others.base_url());
    }
    spec = spec
        .endpoint("mcp-tools", "http://127.0.0.1:9")
        .endpoint("semantic-cache-service", "http://127.0.0.1:9");
    Gateway::start(&spec).unwrap()
}

#[test]
fn guides_http2_policy_makes_upstream_connections_http2() {
    let (openai, others) = (mock(), mock());
    let gateway = guide_gateway(&openai, &others);
    assert_eq!(chat(&gateway, "/openai"), 200);
    assert_eq!(openai.request_count(), 1);
    assert!(
        gateway
            .envoy
            .stat("cluster.openai.upstream_cx_http2_total")
            .unwrap_or(0)
            >= 1,
        "openai: HTTP/2 (h2c to the mock)"
    );
    assert_eq!(
        gateway
            .envoy
            .stat("cluster.openai.upstream_cx_http1_total")
            .unwrap_or(0),
        0
    );
}

#[test]
fn guides_keepalive_and_dns_settings_are_in_the_running_config() {
    let (openai, others) = (mock(), mock());
    let gateway = guide_gateway(&openai, &others);
    let cluster = config_dump_cluster(&gateway, "openai");
    assert_eq!(
        cluster["upstream_connection_options"]["tcp_keepalive"],
        serde_json::json!({"keepalive_probes": 3, "keepalive_time": 60, "keepalive_interval": 30})
    );
    assert_eq!(cluster["dns_refresh_rate"], "60s");
    assert!(
        cluster.get("respect_dns_ttl").is_none_or(|v| v == false),
        "respectDnsTtl: false"
    );
    assert_eq!(
        cluster["circuit_breakers"]["thresholds"][0]["max_connections"],
        1000
    );
}

#[test]
fn least_request_sends_less_to_a_slow_provider() {
    let (fast_a, fast_b, slow) = (mock(), mock(), mock());
    slow.set_faults(InstanceFaults {
        latency_ms: 1000,
        ..Default::default()
    })
    .unwrap();
    let mut spec = GatewaySpec::guide_and_companion()
        .endpoint("gpt-4o-mini", fast_a.base_url())
        .endpoint("claude-haiku", fast_b.base_url())
        .endpoint("gemini-flash", slow.base_url())
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", "sk-ant")
        .secret("google-ai-secret", "g-key");
    for (name, url) in [
        ("openai", fast_a.base_url()),
        ("local-llama", fast_a.base_url()),
    ] {
        spec = spec.endpoint(name, url);
    }
    spec = spec
        .endpoint("mcp-tools", "http://127.0.0.1:9")
        .endpoint("semantic-cache-service", "http://127.0.0.1:9");
    // The mocks speak only OpenAI here: the test counts where requests go, not translation.
    // Without the guide's token budget: its anonymous bucket (these requests carry no JWT)
    // would refuse concurrent requests before they reach the balancer.
    spec.inputs.retain(|name| !name.contains("token-budget"));
    let gateway = Gateway::start(&spec).unwrap();
    assert_eq!(
        config_dump_cluster(&gateway, "multi-provider")["lb_policy"],
        "LEAST_REQUEST"
    );
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let url = gateway.url("/v1/v1/chat/completions");
            std::thread::spawn(move || {
                for _ in 0..4 {
                    let body =
                        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
                    let _ = http::post(&url, &[("content-type", "application/json")], body);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let total = fast_a.request_count() + fast_b.request_count() + slow.request_count();
    assert!(total >= 24, "{total} requests reached the providers");
    assert!(
        slow.request_count() < 24 / 3,
        "slow provider got {} of {total}: round robin would give a third",
        slow.request_count()
    );
}

#[test]
fn circuit_breaker_overflows_beyond_one_connection_and_one_pending_request() {
    let only = mock();
    only.set_faults(InstanceFaults {
        latency_ms: 2000,
        ..Default::default()
    })
    .unwrap();
    let gateway = gateway(
        &["envoy-config/tests/fixtures/behaviour/circuit-breaker.yaml"],
        &[("only", only.base_url())],
    );
    let threads: Vec<_> = (0..5)
        .map(|_| {
            let url = gateway.url("/narrow/v1/chat/completions");
            std::thread::spawn(move || {
                let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
                http::post(&url, &[("content-type", "application/json")], body)
                    .map(|r| r.status)
                    .unwrap_or(0)
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.contains(&503),
        "overflowing requests are refused: {statuses:?}"
    );
    assert!(
        gateway
            .envoy
            .stat("cluster.narrow.upstream_rq_pending_overflow")
            .unwrap_or(0)
            >= 1
    );
    assert!(
        only.request_count() <= 3,
        "the provider never saw more than the pool admits"
    );
}

#[test]
fn the_requested_model_picks_the_backend() {
    let gpt = mock();
    let claude = spawn(MockConfig::new(
        Kind::Anthropic,
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let gateway = gateway(
        &["envoy-config/tests/fixtures/model-routing.yaml"],
        &[
            ("gpt-4o-mini", gpt.base_url()),
            ("claude-haiku", claude.base_url()),
        ],
    );
    let ask = |model: &str| {
        let body =
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
        http::post(
            &gateway.url("/v1/chat/completions"),
            &[("content-type", "application/json")],
            &body,
        )
        .unwrap()
    };
    let answer = ask("claude-3-5-haiku");
    assert_eq!(
        (answer.status, claude.request_count(), gpt.request_count()),
        (200, 1, 0),
        "{}",
        answer.body
    );
    assert_eq!(ask("gpt-4o-mini").status, 200);
    assert_eq!((claude.request_count(), gpt.request_count()), (1, 1));
}
