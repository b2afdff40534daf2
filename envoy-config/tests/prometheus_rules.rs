//! The rules file passes `promtool check rules`, and `promtool test rules` shows the fixed
//! hourly cost: 1000 input + 100 output tokens/s of gpt-4o-mini ($0.15 / $0.60 per million)
//! cost 3600 × (1000 × 0.15 + 100 × 0.60) / 1e6 = $0.756 per hour (756 milli-dollars).

mod common;

use std::process::Command;
use tollgate_config::render::render;

fn promtool() -> &'static str {
    "promtool"
}

#[test]
fn rules_file_passes_promtool_and_computes_hourly_cost() {
    let files = render(&common::guide_and_companion()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("prometheus-rules.yaml");
    std::fs::write(&rules, &files["prometheus-rules.yaml"].text).unwrap();
    let check = Command::new(promtool())
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("promtool: run scripts/setup");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout) + String::from_utf8_lossy(&check.stderr)
    );

    let test = dir.path().join("cost-test.yaml");
    std::fs::write(&test, format!(
        "rule_files: [{}]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n\
         \x20     - series: 'agentgateway_llm_tokens_total{{direction=\"input\",provider=\"openai\",model=\"gpt-4o-mini\"}}'\n\
         \x20       values: '0+60000x120'\n\
         \x20     - series: 'agentgateway_llm_tokens_total{{direction=\"output\",provider=\"openai\",model=\"gpt-4o-mini\"}}'\n\
         \x20       values: '0+6000x120'\n\
         \x20   promql_expr_test:\n\
         \x20     - expr: round(agentgateway:estimated_hourly_cost * 1000)\n\
         \x20       eval_time: 90m\n\
         \x20       exp_samples:\n\
         \x20         - labels: '{{}}'\n\
         \x20           value: 756\n\
         \x20     - expr: agentgateway_model_cost_per_million{{model=\"gemini-1_5-flash\",direction=\"input\"}}\n\
         \x20       eval_time: 1m\n\
         \x20       exp_samples:\n\
         \x20         - labels: 'agentgateway_model_cost_per_million{{provider=\"gemini\",model=\"gemini-1_5-flash\",direction=\"input\"}}'\n\
         \x20           value: 0.075\n",
        rules.display()
    )).unwrap();
    let run = Command::new(promtool())
        .arg("test")
        .arg("rules")
        .arg(&test)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stdout) + String::from_utf8_lossy(&run.stderr)
    );
}
