//! The rules file passes `promtool check rules`, and `promtool test rules` shows, in both
//! namings: the fixed hourly cost (1000 input + 100 output tokens/s of gpt-4o-mini at $0.15 /
//! $0.60 per million cost 3600 × (1000 × 0.15 + 100 × 0.60) / 1e6 = $0.756 per hour), the price
//! series with dots kept in model names, our exact `tollgate:hourly_cost_usd` from the
//! micro-USD counter, and `HighHourlyCost` firing only above $10/hour for 15 minutes.

mod common;

use std::process::Command;
use tollgate_config::render::{render, RenderRequest};
use tollgate_core::config::metrics::MetricNaming;

fn promtool(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool: run scripts/setup");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    text.into_owned()
}

/// Series names and labels of one naming, as the test input series spell them.
struct Spelling {
    tokens: &'static str,
    cost: &'static str,
    direction: &'static str,
    provider: &'static str,
    model: &'static str,
}

const AGENTGATEWAY: Spelling = Spelling {
    tokens: "agentgateway_llm_tokens_total",
    cost: "agentgateway_llm_cost_micro_usd_total",
    direction: "direction",
    provider: "provider",
    model: "model",
};

const GENAI: Spelling = Spelling {
    tokens: "gen_ai_client_token_usage_sum",
    cost: "gen_ai_client_cost_micro_usd_total",
    direction: "gen_ai_token_type",
    provider: "gen_ai_provider_name",
    model: "gen_ai_response_model",
};

fn check(naming: MetricNaming, s: &Spelling) {
    let mut request: RenderRequest = common::guide_and_companion();
    request.output.metrics_naming = naming;
    let files = render(&request).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("prometheus-rules.yaml");
    std::fs::write(&rules, &files["prometheus-rules.yaml"].text).unwrap();
    promtool(&["check".as_ref(), "rules".as_ref(), rules.as_os_str()]);

    // `tokens_per_minute_*`: a load of 1000 input + 100 output tokens/s for 2 hours; the
    // micro-USD counter of the same load grows 756 000 µUSD per hour = 12 600 per minute.
    // A second series at 20x the load pushes the hourly cost past $10 from minute 0 on.
    let series = |labels: &str| format!("{}{{{labels}}}", s.tokens);
    let labels = |direction: &str, model: &str| {
        format!(
            "{}=\"{direction}\",{}=\"openai\",{}=\"{model}\"",
            s.direction, s.provider, s.model
        )
    };
    let test = format!(
        r#"rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: '{input}'
        values: '0+60000x120'
      - series: '{output}'
        values: '0+6000x120'
      - series: '{cost}{{{provider}="openai",{model}="gpt-4o-mini"}}'
        values: '0+12600x120'
    promql_expr_test:
      - expr: round(agentgateway:estimated_hourly_cost * 1000)
        eval_time: 90m
        exp_samples:
          - labels: '{{}}'
            value: 756
      - expr: round(tollgate:hourly_cost_usd * 1000)
        eval_time: 90m
        exp_samples:
          - labels: '{{}}'
            value: 756
      - expr: agentgateway_model_cost_per_million{{{model}="gemini-1.5-flash",{direction}="cached_input"}}
        eval_time: 1m
        exp_samples:
          - labels: 'agentgateway_model_cost_per_million{{{provider}="gemini",{model}="gemini-1.5-flash",{direction}="cached_input"}}'
            value: 0.01875
    alert_rule_test:
      - alertname: HighHourlyCost
        eval_time: 90m
        exp_alerts: []
  - interval: 1m
    input_series:
      - series: '{big_input}'
        values: '0+1200000x120'
      - series: '{big_output}'
        values: '0+0x120'
    alert_rule_test:
      - alertname: HighHourlyCost
        eval_time: 10m
        exp_alerts: []
      - alertname: HighHourlyCost
        eval_time: 90m
        exp_alerts:
          - exp_labels:
              severity: warning
            exp_annotations:
              summary: "LLM costs exceeding $10/hour"
              description: "Current estimated rate: $180/hour"
"#,
        rules = rules.display(),
        input = series(&labels("input", "gpt-4o-mini")),
        output = series(&labels("output", "gpt-4o-mini")),
        big_input = series(&labels("input", "gpt-4o")),
        // The guide's rule adds two sums: with no output series at all it has no value.
        big_output = series(&labels("output", "gpt-4o")),
        cost = s.cost,
        provider = s.provider,
        model = s.model,
        direction = s.direction,
    );
    let path = dir.path().join("cost-test.yaml");
    std::fs::write(&path, test).unwrap();
    promtool(&["test".as_ref(), "rules".as_ref(), path.as_os_str()]);
}

#[test]
fn the_agentgateway_rules_pass_promtool_and_compute_the_hourly_cost() {
    check(MetricNaming::Agentgateway, &AGENTGATEWAY);
}

#[test]
fn the_genai_rules_read_the_genai_series_and_compute_the_same_cost() {
    check(MetricNaming::Genai, &GENAI);
}
