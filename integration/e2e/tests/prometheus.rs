//! A real Prometheus (Debian's `prometheus`, on loopback) scrapes the real Envoy's stats
//! listener and evaluates the generated rules: after a known load, the guide's hourly-cost rule
//! returns the dollars that load cost per hour and agrees with our exact rule; `HighHourlyCost`
//! fires once its threshold is below the cost (and not at the guide's $10); every query of the
//! shipped Grafana dashboard evaluates without error and returns data.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::{free_port, http, workspace_root};
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-prom-openai";
const ANTHROPIC_KEY: &str = "sk-prom-anthropic";
const GOOGLE_KEY: &str = "prom-google";

fn mock(kind: Kind, key: Option<&str>) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = key.map(str::to_string);
    spawn(config).unwrap()
}

/// A Prometheus process, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    fn start(dir: &std::path::Path, stats_port: u16, rule_files: &[std::path::PathBuf]) -> Self {
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{}]\n\
             scrape_configs:\n  - job_name: envoy\n    metrics_path: /stats/prometheus\n    \
             static_configs: [{{targets: ['127.0.0.1:{stats_port}']}}]\n",
            rules.join(", ")
        );
        let path = dir.join("prometheus.yml");
        std::fs::write(&path, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus: run scripts/setup (Debian package prometheus)");
        let prometheus = Prometheus { child, port };
        prometheus.wait_for("up{job=\"envoy\"} == 1", Duration::from_secs(60));
        prometheus
    }

    /// `/api/v1/query`: the result vector (panics on an error status).
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "http://127.0.0.1:{}/api/v1/query?query={}",
            self.port,
            encode(expr)
        );
        let body = http::get(&url)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .body;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "success", "{expr}: {body}");
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The single value of a scalar-like query.
    fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr);
        let first = result.first()?;
        first["value"][1].as_str()?.parse().ok()
    }

    /// Polls until `expr` returns something.
    fn wait_for(&self, expr: &str, limit: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let url = format!(
                "http://127.0.0.1:{}/api/v1/query?query={}",
                self.port,
                encode(expr)
            );
            if let Ok(response) = http::get(&url) {
                let json: serde_json::Value =
                    serde_json::from_str(&response.body).unwrap_or_default();
                if let Some(result) = json["data"]["result"].as_array().filter(|r| !r.is_empty()) {
                    return result.clone();
                }
            }
            assert!(Instant::now() < deadline, "{expr}: nothing after {limit:?}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The alerts in `state` named `name`.
    fn alerts(&self, name: &str, state: &str) -> usize {
        let url = format!("http://127.0.0.1:{}/api/v1/alerts", self.port);
        let json: serde_json::Value = serde_json::from_str(&http::get(&url).unwrap().body).unwrap();
        json["data"]["alerts"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|x| x["labels"]["alertname"] == name && x["state"] == state)
                .count()
        })
    }
}

/// One chat completion with a long prompt (so the cost is many micro-dollars); returns who
/// served it and its exact cost in USD from the served model and the usage the client got.
fn chat(gateway: &Gateway, words: usize) -> (String, f64) {
    let prompt = vec!["token"; words].join(" ");
    let body =
        format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{prompt}"}}]}}"#);
    let response = http::post(
        &gateway.url("/batch/v1/chat/completions"),
        &[("content-type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    let (pin, pout) = match json["model"].as_str().unwrap() {
        "gemini-1.5-flash" => (0.075, 0.30),
        "gpt-4o-mini" => (0.15, 0.60),
        "claude-3-5-haiku-20241022" => (0.25, 1.25),
        "llama3.2:8b" => (0.0, 0.0),
        other => panic!("unpriced {other}"),
    };
    let input = json["usage"]["prompt_tokens"].as_f64().unwrap();
    let output = json["usage"]["completion_tokens"].as_f64().unwrap();
    let provider = response.header("x-tollgate-provider").unwrap().to_string();
    (provider, (input * pin + output * pout) / 1e6)
}

#[test]
fn prometheus_evaluates_the_generated_rules_and_the_dashboard_over_real_envoy() {
    let local_llama = mock(Kind::Ollama, None);
    let gemini_flash = mock(Kind::Gemini, Some(GOOGLE_KEY));
    let gpt_4o_mini = mock(Kind::Openai, Some(OPENAI_KEY));
    let claude_haiku = mock(Kind::Anthropic, Some(ANTHROPIC_KEY));
    // The free local model fails: the cheap clouds answer (after failover), at a price.
    local_llama
        .set_faults(InstanceFaults {
            status: Some(503),
            ..Default::default()
        })
        .unwrap();
    let spec = GatewaySpec::guide_and_companion()
        .endpoint("local-llama", local_llama.base_url())
        .endpoint("gemini-flash", gemini_flash.base_url())
        .endpoint("gpt-4o-mini", gpt_4o_mini.base_url())
        .endpoint("openai", gpt_4o_mini.base_url())
        .endpoint("claude-haiku", claude_haiku.base_url())
        .endpoint("mcp-tools", "http://127.0.0.1:9")
        .endpoint("semantic-cache-service", "http://127.0.0.1:9")
        .secret("openai-secret", OPENAI_KEY)
        .secret("anthropic-secret", ANTHROPIC_KEY)
        .secret("google-ai-secret", GOOGLE_KEY);
    let gateway = Gateway::start(&spec).unwrap();
    let dir = gateway.envoy.run_dir().to_path_buf();

    // The shipped rules, and a copy whose HighHourlyCost fires at a test-sized threshold.
    let rules_text = &gateway.files["prometheus-rules.yaml"].text;
    let shipped = dir.join("prometheus-rules.yaml");
    std::fs::write(&shipped, rules_text).unwrap();
    assert!(
        rules_text.contains("expr: agentgateway:estimated_hourly_cost > 10"),
        "{rules_text}"
    );
    let low = rules_text
        .replace("alert: HighHourlyCost", "alert: HighHourlyCostLowThreshold")
        .replace(
            "expr: agentgateway:estimated_hourly_cost > 10",
            "expr: agentgateway:estimated_hourly_cost > 0.001",
        )
        .replace("for: 15m", "for: 0s")
        .replace("record: ", "record: test_copy_");
    let low_path = dir.join("low-threshold-rules.yaml");
    std::fs::write(&low_path, low).unwrap();
    for file in [&shipped, &low_path] {
        let check = Command::new("promtool")
            .arg("check")
            .arg("rules")
            .arg(file)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
    }

    // Warm-up: every series the load will add to exists (and is scraped) before it, so rate()
    // sees the whole load: both providers of priority 2 have answered once.
    let mut seen = std::collections::BTreeSet::new();
    let mut warm_up = 0.0;
    for _ in 0..40 {
        let (provider, usd) = chat(&gateway, 10);
        seen.insert(provider);
        warm_up += usd;
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.iter().map(String::as_str).collect::<Vec<_>>(),
        ["gemini-flash", "gpt-4o-mini"]
    );
    let prometheus = Prometheus::start(
        &dir,
        gateway.stats_port,
        &[shipped.clone(), low_path.clone()],
    );
    prometheus.wait_for("agentgateway_llm_tokens_total", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3)); // two more scrapes of the warm-up values

    // The measured load: 20 requests of ~2000 prompt tokens.
    let mut dollars = 0.0;
    for _ in 0..20 {
        let (provider, usd) = chat(&gateway, 2000);
        assert!(
            seen.contains(&provider),
            "{provider} answered for the first time"
        );
        dollars += usd;
    }
    assert!(dollars > 0.004, "{dollars}");
    // Let the counters be scraped and the rules evaluated for a while.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
    }

    // rate() over the hour extrapolates the increase it saw to the edges of its samples, so the
    // hourly cost is at least the dollars sent in the window and at most ~10 % above.
    let guide = prometheus
        .value("agentgateway:estimated_hourly_cost")
        .expect("guide rule");
    assert!(
        guide >= dollars * 0.999 && guide <= dollars * 1.10,
        "guide {guide} vs sent {dollars}"
    );
    // Our exact rule, from the micro-USD counter, says the same (no cached input here): each
    // series' rate extrapolates by its own first sample, so they agree to a few percent.
    let exact = prometheus
        .value("tollgate:hourly_cost_usd")
        .expect("exact rule");
    assert!(
        exact >= dollars * 0.999 && exact <= dollars * 1.10,
        "exact {exact} vs sent {dollars}"
    );
    assert!(
        (exact - guide).abs() <= guide * 0.05,
        "exact {exact} vs guide {guide}"
    );
    // The counter itself holds every dollar sent (to the micro-dollar: floored per series).
    let counted = prometheus
        .value("sum(agentgateway_llm_cost_micro_usd_total)")
        .unwrap();
    let sent = (warm_up + dollars) * 1e6;
    assert!(
        counted <= sent + 1e-6 && counted >= sent - 2.0,
        "counted {counted} µUSD, sent {sent}"
    );

    // HighHourlyCost: fires at a threshold below the cost, not at the guide's $10.
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus.alerts("HighHourlyCostLowThreshold", "firing") == 0 {
        assert!(
            Instant::now() < deadline,
            "HighHourlyCostLowThreshold never fired"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(prometheus.alerts("HighHourlyCost", "firing"), 0);
    assert_eq!(prometheus.alerts("HighHourlyCost", "pending"), 0);

    // Every query of the dashboard evaluates and returns data.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("deploy/grafana/tollgate.json")).unwrap(),
    )
    .unwrap();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let result = prometheus.query(expr);
            assert!(
                !result.is_empty(),
                "{}: {expr} returned no data",
                panel["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 10);
}
