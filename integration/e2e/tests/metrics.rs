//! The metrics stage on real Envoy with the mocks: after a known load on the guide's
//! cost-optimized Backend (local-llama first, then failover to the cheap clouds),
//! `/stats/prometheus` holds exactly the expected series and values, in both namings; the
//! access log has one JSON line per request with tokens and cost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tollgate_core::config::metrics::MetricNaming;
use tollgate_e2e::gateway::{Gateway, GatewaySpec};
use tollgate_e2e::http;
use tollgate_mock::{spawn, InstanceFaults, Kind, MockConfig, MockHandle};

const OPENAI_KEY: &str = "sk-metrics-openai";
const ANTHROPIC_KEY: &str = "sk-metrics-anthropic";
const GOOGLE_KEY: &str = "metrics-google";

/// USD per million input/output tokens of the guide's matrix, by served model, and the kind
/// label of each provider name of the Backend.
fn price(model: &str) -> (f64, f64) {
    match model {
        "gemini-1.5-flash" => (0.075, 0.30),
        "gpt-4o-mini" => (0.15, 0.60),
        "claude-3-5-haiku-20241022" => (0.25, 1.25),
        "llama3.2:8b" => (0.0, 0.0),
        other => panic!("no price for {other}"),
    }
}

fn kind(provider: &str) -> &'static str {
    match provider {
        "local-llama" | "gpt-4o-mini" => "openai",
        "gemini-flash" => "gemini",
        "claude-haiku" => "anthropic",
        other => panic!("unknown provider {other}"),
    }
}

pub struct Stack {
    pub local_llama: MockHandle,
    pub gemini_flash: MockHandle,
    pub gpt_4o_mini: MockHandle,
    pub claude_haiku: MockHandle,
    pub gateway: Gateway,
}

fn mock(kind: Kind, key: Option<&str>) -> MockHandle {
    let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().unwrap());
    config.api_key = key.map(str::to_string);
    spawn(config).unwrap()
}

impl Stack {
    pub fn start(naming: MetricNaming) -> Stack {
        let local_llama = mock(Kind::Ollama, None);
        let gemini_flash = mock(Kind::Gemini, Some(GOOGLE_KEY));
        let gpt_4o_mini = mock(Kind::Openai, Some(OPENAI_KEY));
        let claude_haiku = mock(Kind::Anthropic, Some(ANTHROPIC_KEY));
        let mut spec = GatewaySpec::guide_and_companion()
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
        spec.metrics_naming = naming;
        let gateway = Gateway::start(&spec).unwrap();
        Stack {
            local_llama,
            gemini_flash,
            gpt_4o_mini,
            claude_haiku,
            gateway,
        }
    }
}

/// What the client saw of one answer: who served, the model, the usage.
#[derive(Debug, Clone)]
pub struct Served {
    pub provider: String,
    pub model: String,
    pub input: u64,
    pub output: u64,
}

/// A chat completion on /batch (cost-optimized-llm), with a distinct prompt per request.
pub fn chat(gateway: &Gateway, i: usize) -> Served {
    let body = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"Say hello number {i}"}}]}}"#
    );
    let response = http::post(
        &gateway.url("/batch/v1/chat/completions"),
        &[("content-type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    let json: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    Served {
        provider: response.header("x-tollgate-provider").unwrap().to_string(),
        model: json["model"].as_str().unwrap().to_string(),
        input: json["usage"]["prompt_tokens"].as_u64().unwrap(),
        output: json["usage"]["completion_tokens"].as_u64().unwrap(),
    }
}

/// The known load: 3 requests local-llama serves, then (local-llama failing) 4 the cheap clouds
/// serve after failover.
pub fn send_load(stack: &Stack) -> Vec<Served> {
    let mut served: Vec<Served> = (0..3).map(|i| chat(&stack.gateway, i)).collect();
    stack
        .local_llama
        .set_faults(InstanceFaults {
            status: Some(503),
            ..Default::default()
        })
        .unwrap();
    served.extend((3..7).map(|i| chat(&stack.gateway, i)));
    served
}

/// The model label: the model as the provider named it, dots and colons kept.
pub fn label(model: &str) -> String {
    model.to_string()
}

/// Exact cost per (provider kind, model) in micro-USD: the sum of each request's pico-USD,
/// floored (the stage carries the remainder).
pub fn expected_micro_usd(served: &[Served]) -> BTreeMap<(String, String), u64> {
    let mut pico: BTreeMap<(String, String), u128> = BTreeMap::new();
    for s in served {
        let (pin, pout) = price(&s.model);
        let cost = u128::from(s.input) * (pin * 1e6).round() as u128
            + u128::from(s.output) * (pout * 1e6).round() as u128;
        *pico
            .entry((kind(&s.provider).to_string(), label(&s.model)))
            .or_default() += cost;
    }
    pico.into_iter()
        .map(|(k, v)| (k, (v / 1_000_000) as u64))
        .collect()
}

/// Expected tokens per (provider kind, model, direction).
pub fn expected_tokens(served: &[Served]) -> BTreeMap<(String, String, &'static str), u64> {
    let mut tokens = BTreeMap::new();
    for s in served {
        let key = (kind(&s.provider).to_string(), label(&s.model));
        *tokens
            .entry((key.0.clone(), key.1.clone(), "input"))
            .or_default() += s.input;
        *tokens.entry((key.0, key.1, "output")).or_default() += s.output;
    }
    tokens
}

/// The metric lines (no comments) of our series on the stats listener.
pub fn our_lines(gateway: &Gateway, prefixes: &[&str]) -> BTreeSet<String> {
    let text = http::get(&gateway.stats_url("/stats/prometheus"))
        .unwrap()
        .body;
    text.lines()
        .filter(|l| !l.starts_with('#') && prefixes.iter().any(|p| l.starts_with(p)))
        .map(str::to_string)
        .collect()
}

/// Polls until `check` holds on the exposition (histograms appear after a stats flush).
fn eventually(
    gateway: &Gateway,
    prefixes: &[&str],
    check: impl Fn(&BTreeSet<String>) -> bool,
) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = our_lines(gateway, prefixes);
        if check(&lines) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn after_a_known_load_the_agentgateway_series_are_exactly_these() {
    let stack = Stack::start(MetricNaming::Agentgateway);
    let served = send_load(&stack);
    assert!(
        served[..3].iter().all(|s| s.provider == "local-llama"),
        "{served:?}"
    );
    assert!(
        served[3..].iter().all(|s| s.provider != "local-llama"),
        "{served:?}"
    );

    let mut want = BTreeSet::new();
    let mut requests: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in &served {
        *requests
            .entry((kind(&s.provider).to_string(), label(&s.model)))
            .or_default() += 1;
    }
    for ((provider, model), n) in &requests {
        want.insert(format!(
            r#"agentgateway_llm_requests_total{{provider="{provider}",model="{model}",status="200"}} {n}"#
        ));
        want.insert(format!(
            r#"agentgateway_llm_request_duration_ms_count{{provider="{provider}",model="{model}"}} {n}"#
        ));
        want.insert(format!(
            r#"agentgateway_llm_time_to_first_token_ms_count{{provider="{provider}",model="{model}"}} {n}"#
        ));
    }
    for ((provider, model, direction), n) in expected_tokens(&served) {
        want.insert(format!(
            r#"agentgateway_llm_tokens_total{{direction="{direction}",provider="{provider}",model="{model}"}} {n}"#
        ));
    }
    for ((provider, model), micro) in expected_micro_usd(&served) {
        if micro > 0 {
            want.insert(format!(
                r#"agentgateway_llm_cost_micro_usd_total{{provider="{provider}",model="{model}"}} {micro}"#
            ));
        }
    }
    // Envoy prints a stat without tags with empty braces.
    want.insert("agentgateway_active_connections{} 0".to_string());

    let prefixes = ["agentgateway_"];
    let got = eventually(&stack.gateway, &prefixes, |lines| {
        want.iter().all(|w| lines.contains(w))
    });
    // Every line but histogram buckets and sums is exactly what we expect.
    let exact: BTreeSet<String> = got
        .iter()
        .filter(|l| !l.contains("_bucket{") && !l.contains("_sum{"))
        .cloned()
        .collect();
    assert_eq!(exact, want, "all lines: {got:#?}");
    // Buckets are the configured ones: LLM-sized, up to 5 minutes.
    let buckets: BTreeSet<&str> = got
        .iter()
        .filter(|l| l.starts_with("agentgateway_llm_request_duration_ms_bucket{"))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert!(
        buckets.contains("81920") && buckets.contains("300000") && buckets.contains("+Inf"),
        "{buckets:?}"
    );
}

#[test]
fn after_the_same_load_the_genai_series_carry_the_opentelemetry_names() {
    let stack = Stack::start(MetricNaming::Genai);
    let served = send_load(&stack);
    let labels = |provider: &str, model: &str| {
        format!(
            r#"gen_ai_provider_name="{provider}",gen_ai_response_model="{model}",gen_ai_request_model="gpt-4o-mini""#
        )
    };
    let mut want = BTreeSet::new();
    let mut requests: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in &served {
        *requests
            .entry((kind(&s.provider).to_string(), label(&s.model)))
            .or_default() += 1;
    }
    for ((provider, model), n) in &requests {
        let l = labels(provider, model);
        want.insert(format!(
            r#"gen_ai_client_operation_total{{{l},http_response_status_code="200",gen_ai_operation_name="chat"}} {n}"#
        ));
        want.insert(format!(
            r#"gen_ai_server_request_duration_count{{{l},http_response_status_code="200",gen_ai_operation_name="chat"}} {n}"#
        ));
        want.insert(format!(
            r#"gen_ai_server_time_to_first_token_count{{{l},gen_ai_operation_name="chat"}} {n}"#
        ));
        for direction in ["input", "output"] {
            want.insert(format!(
                r#"gen_ai_client_token_usage_count{{gen_ai_token_type="{direction}",{l},gen_ai_operation_name="chat"}} {n}"#
            ));
        }
    }
    for ((provider, model), micro) in expected_micro_usd(&served) {
        if micro > 0 {
            let l = labels(&provider, &model);
            want.insert(format!(
                r#"gen_ai_client_cost_micro_usd_total{{{l},gen_ai_operation_name="chat"}} {micro}"#
            ));
        }
    }
    want.insert("agentgateway_active_connections{} 0".to_string());
    let prefixes = ["gen_ai_", "agentgateway_"];
    let got = eventually(&stack.gateway, &prefixes, |lines| {
        want.iter().all(|w| lines.contains(w))
    });
    let exact: BTreeSet<String> = got
        .iter()
        .filter(|l| !l.contains("_bucket{") && !l.contains("_sum{"))
        .cloned()
        .collect();
    assert_eq!(exact, want, "all lines: {got:#?}");
    // Token sums are Envoy's histogram sums: approximate (log-linear bins), at most 1 % high.
    for ((provider, model, direction), n) in expected_tokens(&served) {
        let prefix = format!(
            r#"gen_ai_client_token_usage_sum{{gen_ai_token_type="{direction}",{},gen_ai_operation_name="chat"}} "#,
            labels(&provider, &model)
        );
        let line = got
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{prefix}: {got:#?}"));
        let sum: f64 = line[prefix.len()..].parse().unwrap();
        assert!(
            sum >= n as f64 && sum <= n as f64 * 1.01,
            "{line}: want {n}"
        );
    }
}

#[test]
fn each_request_has_one_json_access_log_line_with_tokens_cost_and_attempts() {
    let stack = Stack::start(MetricNaming::Agentgateway);
    let served = send_load(&stack);
    // A request the gateway refuses itself: no provider, no tokens, still one JSON line.
    let refused = http::get(&stack.gateway.url("/batch/v1/chat/completions")).unwrap();
    assert_eq!(refused.status, 405, "{}", refused.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let logs = stack.gateway.envoy.logs();
        let access: Vec<&str> = logs
            .lines()
            .filter(|l| l.starts_with(r#"{"time""#))
            .collect();
        if access.len() > served.len() || Instant::now() > deadline {
            break access
                .iter()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .unwrap_or_else(|e| panic!("{e}: {l}"))
                })
                .collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(lines.len(), served.len() + 1, "{lines:#?}");
    let last = &lines[served.len()];
    assert_eq!(last["status"], 405, "{last}");
    assert_eq!(last["answered_by"], "gateway", "{last}");
    assert_eq!(last["input_tokens"], 0, "{last}");
    assert_eq!(last["provider"], "", "{last}");
    for (line, s) in lines.iter().zip(&served) {
        let (pin, pout) = price(&s.model);
        let cost = (s.input as f64 * pin + s.output as f64 * pout).round() as u64;
        assert_eq!(line["route"], "batch-route/0/0", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["provider"], kind(&s.provider), "{line}");
        assert_eq!(line["model"], s.model, "{line}");
        assert_eq!(line["input_tokens"], s.input, "{line}");
        assert_eq!(line["output_tokens"], s.output, "{line}");
        assert_eq!(line["cached_input_tokens"], 0, "{line}");
        assert_eq!(line["cost_micro_usd"], cost, "{line}");
        assert_eq!(line["answered_by"], "upstream", "{line}");
        assert_eq!(line["cache"], "-", "{line}");
        assert!(line["ttfb_ms"].is_u64(), "{line}");
        assert!(line["duration_ms"].is_number(), "{line}");
        assert!(
            line["time"].as_str().is_some_and(|t| t.contains('T')),
            "{line}"
        );
        // failover shows as attempts: local-llama answered first try, later ones retried
        let attempts = line["attempts"].as_u64().unwrap();
        if s.provider == "local-llama" {
            assert_eq!(attempts, 1, "{line}");
        } else {
            assert!(attempts >= 2, "{line}");
        }
        let text = line.to_string();
        assert!(
            !text.contains("Say hello") && !text.contains("sk-metrics"),
            "{text}"
        );
    }
}
