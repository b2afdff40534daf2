//! The Prometheus rules file: price recording rules from the pricing table, then the user's
//! PrometheusRule groups with the guide's flaws fixed:
//! - `rate(x[1h])` is per second: a recording rule named `*hourly*` built on `rate(` and not
//!   already multiplied by 3600 is multiplied by 3600.
//! - prices cannot be wasm gauges (integers only): `agentgateway_model_cost_per_million` is
//!   recorded here as constants, one series per (provider, model, direction).
//! - `X and on() hour() >= 0 and hour() < 8`: the second `and` has no `on()`, so it matches
//!   nothing (the left side has labels, `hour()` none); it becomes `and on() hour() < 8`.
//! - with the GenAI naming on, the guide's series and labels are renamed to that naming's
//!   (`agentgateway_llm_tokens_total{direction}` → `gen_ai_client_token_usage_sum{gen_ai_token_type}`).
//!
//! Then one group of ours: `tollgate:hourly_cost_usd`, the exact hourly cost from the stage's
//! micro-USD counter (cached input at its own price, which the guide's rule does not price).

use super::pricing::{label_value, Price};
use crate::catalog::Located;
use crate::model::prometheus_rule::{PrometheusRuleSpec, Rule, RuleGroup};
use std::collections::BTreeMap;
use tollgate_core::config::metrics::MetricNaming;
use tollgate_core::names::metric::{Kind, Metric, Naming, Tag, AGENTGATEWAY, ALL, TAGS};

/// Name of the recorded price series the guide's cost rule joins on.
pub const PRICE_SERIES: &str = "agentgateway_model_cost_per_million";

/// Name of our exact hourly-cost recording rule.
pub const HOURLY_COST_SERIES: &str = "tollgate:hourly_cost_usd";

/// The price recording rules, labelled in `naming`'s label names.
pub fn price_group(prices: &[Price], naming: MetricNaming) -> RuleGroup {
    let names = naming.table();
    let mut rules = Vec::new();
    for price in prices {
        for (direction, usd) in price.by_direction() {
            rules.push(Rule {
                record: Some(PRICE_SERIES.to_string()),
                alert: None,
                expr: format!("vector({usd})"),
                for_duration: None,
                labels: BTreeMap::from([
                    (
                        names.tag_name(Tag::Provider).to_string(),
                        label_value(&price.provider),
                    ),
                    (
                        names.tag_name(Tag::Model).to_string(),
                        label_value(&price.model),
                    ),
                    (
                        names.tag_name(Tag::Direction).to_string(),
                        direction.to_string(),
                    ),
                ]),
                annotations: BTreeMap::new(),
            });
        }
    }
    RuleGroup {
        name: "tollgate-model-prices".to_string(),
        interval: None,
        rules,
    }
}

/// Our rules: the exact hourly cost (USD) from the stage's micro-USD counter.
pub fn cost_group(naming: MetricNaming) -> RuleGroup {
    let cost = naming.table().def(Metric::Cost).name;
    RuleGroup {
        name: "tollgate-cost".to_string(),
        interval: None,
        rules: vec![Rule {
            record: Some(HOURLY_COST_SERIES.to_string()),
            alert: None,
            expr: format!("3600 * sum(rate({cost}[1h])) / 1e6"),
            for_duration: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }],
    }
}

/// The series and label renames from the guide's names to `naming`'s.
fn renames(naming: &Naming) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for metric in ALL {
        let (from, to) = (AGENTGATEWAY.def(metric), naming.def(metric));
        match (from.kind, to.kind) {
            (Kind::Histogram, _) => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    map.insert(
                        format!("{}{suffix}", from.name),
                        format!("{}{suffix}", to.name),
                    );
                }
            }
            (_, Kind::Histogram) => {
                map.insert(from.name.to_string(), format!("{}_sum", to.name));
            }
            _ => {
                map.insert(from.name.to_string(), to.name.to_string());
            }
        }
    }
    for tag in TAGS {
        map.insert(
            AGENTGATEWAY.tag_name(tag).to_string(),
            naming.tag_name(tag).to_string(),
        );
    }
    map.retain(|from, to| from != to);
    map
}

/// `expr` with the guide's series and label names in `naming`'s: identifiers outside string
/// literals are renamed whole.
pub fn rename(expr: &str, naming: MetricNaming) -> String {
    let map = renames(naming.table());
    if map.is_empty() {
        return expr.to_string();
    }
    let mut out = String::with_capacity(expr.len());
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.extend(&chars[start..i]);
        } else if c.is_ascii_alphabetic() || c == '_' || c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == ':'
                    || chars[i] == '.')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            match map.get(&word) {
                Some(to) if !c.is_ascii_digit() => out.push_str(to),
                _ => out.push_str(&word),
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// A rule with the guide's flaws fixed (see the module documentation).
pub fn fix_rule(rule: &Rule, naming: MetricNaming) -> Rule {
    let mut fixed = rule.clone();
    fixed.expr = rename(&rule.expr, naming);
    let hourly = rule
        .record
        .as_deref()
        .is_some_and(|name| name.contains("hourly"));
    if hourly && fixed.expr.contains("rate(") && !fixed.expr.contains("3600") {
        fixed.expr = format!("3600 * (\n{}\n)", fixed.expr.trim_end());
    }
    if fixed.expr.contains("and hour(") {
        fixed.expr = fixed.expr.replace("and hour(", "and on() hour(");
    }
    fixed
}

/// Every group of the rules file.
pub fn rule_groups(
    prices: &[Price],
    rules: &[Located<PrometheusRuleSpec>],
    naming: MetricNaming,
) -> Vec<RuleGroup> {
    let mut groups = vec![price_group(prices, naming), cost_group(naming)];
    for rule in rules {
        for group in &rule.spec().groups {
            groups.push(RuleGroup {
                rules: group.rules.iter().map(|r| fix_rule(r, naming)).collect(),
                ..group.clone()
            });
        }
    }
    groups
}

/// Header of the rules file: what was changed from the input, and why.
pub const RULES_FILE_HEADER: &str = "# Generated by tollgate-config. Changes from the input PrometheusRules:\n\
# - prices are recording rules with constant values from the pricing table (Envoy gauges are integers);\n\
# - `*hourly*` recording rules built on rate() are multiplied by 3600 (rate() is per second);\n\
# - `and hour() ...` after `and on() ...` gets its own on() (otherwise it never matches);\n\
# - the guide's rule prices input and output only: cached input (its own `direction`) counts $0\n\
#   there; `tollgate:hourly_cost_usd` is the exact hourly cost from the stage's micro-USD counter.\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(record: &str, expr: &str) -> Rule {
        Rule {
            record: Some(record.into()),
            alert: None,
            expr: expr.into(),
            for_duration: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn hourly_rate_rules_are_multiplied_by_3600_once() {
        let fixed = fix_rule(
            &rule("x:estimated_hourly_cost", "sum(rate(t[1h]))"),
            MetricNaming::Agentgateway,
        );
        assert_eq!(fixed.expr, "3600 * (\nsum(rate(t[1h]))\n)");
        assert_eq!(
            fix_rule(&fixed, MetricNaming::Agentgateway).expr,
            fixed.expr
        );
        assert_eq!(
            fix_rule(
                &rule("x:cost", "sum(rate(t[1h]))"),
                MetricNaming::Agentgateway
            )
            .expr,
            "sum(rate(t[1h]))"
        );
    }

    #[test]
    fn bare_and_hour_gets_on() {
        let fixed = fix_rule(
            &rule("a", "r > 0\nand on() hour() >= 0 and hour() < 8"),
            MetricNaming::Agentgateway,
        );
        assert_eq!(
            fixed.expr,
            "r > 0\nand on() hour() >= 0 and on() hour() < 8"
        );
    }

    #[test]
    fn every_price_is_two_constant_series() {
        let prices = [Price {
            provider: "gemini".into(),
            model: "gemini-1.5-flash".into(),
            input: 0.075,
            output: 0.3,
            cached_input: Some(0.01875),
            cache_write: None,
        }];
        let group = price_group(&prices, MetricNaming::Agentgateway);
        assert_eq!(group.rules.len(), 3);
        assert_eq!(group.rules[0].expr, "vector(0.075)");
        assert_eq!(group.rules[0].labels["model"], "gemini-1.5-flash");
        assert_eq!(group.rules[1].labels["direction"], "output");
        assert_eq!(group.rules[2].labels["direction"], "cached_input");
        let genai = price_group(&prices, MetricNaming::Genai);
        assert_eq!(
            genai.rules[0].labels["gen_ai_response_model"],
            "gemini-1.5-flash"
        );
        assert_eq!(genai.rules[0].labels["gen_ai_token_type"], "input");
    }

    #[test]
    fn the_genai_naming_renames_series_and_labels_but_not_strings_or_functions() {
        let expr = r#"sum(rate(agentgateway_llm_tokens_total{direction="input",model="model"}[1h]) * on(provider, model) group_left agentgateway_model_cost_per_million{direction="input"} / 1000000) and on() rate(agentgateway_llm_requests_total{model="gpt-4"}[5m]) > 0 and agentgateway:estimated_hourly_cost > 1e6"#;
        assert_eq!(
            rename(expr, MetricNaming::Genai),
            r#"sum(rate(gen_ai_client_token_usage_sum{gen_ai_token_type="input",gen_ai_response_model="model"}[1h]) * on(gen_ai_provider_name, gen_ai_response_model) group_left agentgateway_model_cost_per_million{gen_ai_token_type="input"} / 1000000) and on() rate(gen_ai_client_operation_total{gen_ai_response_model="gpt-4"}[5m]) > 0 and agentgateway:estimated_hourly_cost > 1e6"#
        );
        assert_eq!(rename(expr, MetricNaming::Agentgateway), expr);
    }
}
