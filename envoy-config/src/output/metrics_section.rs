//! The metrics stage's section of the pipeline configuration, from the plan: the naming, the
//! price table the Prometheus rules are written from (so the filter's cost counter and the
//! rules agree), the provider name → kind labels of every Backend, and the model cap.

use super::pricing::Price;
use crate::plan::Plan;
use std::collections::BTreeMap;
use tollgate_core::config::metrics::{MetricNaming, MetricsConfig, DEFAULT_MAX_MODELS};
use tollgate_core::config::ProviderKind;

/// What the generator was told about metrics (set by `render` from the options and the
/// pricing table).
#[derive(Debug, Clone, Default)]
pub struct MetricsPlan {
    /// Which names the metrics carry.
    pub naming: MetricNaming,
    /// The pricing table (empty: the stage's built-in table, the same as the shipped one).
    pub prices: Vec<Price>,
}

/// The provider kind label of a provider endpoint.
pub fn kind_label(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gemini",
    }
}

/// The section. The stage always runs: the guide's rules and HPA read its series.
pub fn section(plan: &Plan) -> Option<MetricsConfig> {
    let mut providers = BTreeMap::new();
    for backend in &plan.backends {
        for endpoint in backend.priorities.iter().flatten() {
            if let Some(provider) = &endpoint.provider {
                providers.insert(provider.name.clone(), kind_label(provider.kind).to_string());
            }
        }
    }
    Some(MetricsConfig {
        naming: plan.metrics.naming,
        max_models: DEFAULT_MAX_MODELS,
        prices: plan
            .metrics
            .prices
            .iter()
            .map(Price::to_model_price)
            .collect(),
        providers,
        ..MetricsConfig::default()
    })
}

/// The HCM access log: one JSON line per request on Envoy's stdout, from Envoy's own fields
/// (time, route, status, attempts, duration) and the one filter-state value the metrics stage
/// publishes when the answer ends (`wasm.tollgate_log`: provider, model, user, tokens by
/// category, micro-USD, cache and budget outcome, time to first byte, already JSON). No header
/// values, no path, no prompt. `None` when the stage's access log is off.
///
/// A text format, not `json_format`: the stage's value is the line's tail (`,"provider":...`),
/// written in one filter-state write instead of one per field. `omit_empty_values` prints
/// nothing where the value is absent (a request the stage never saw), so the line stays JSON;
/// Envoy's fields here are always set when the HCM logs (route names are the generator's own
/// `<HTTPRoute>/<rule>/<match>`, nothing to escape).
pub fn access_log(config: Option<&MetricsConfig>) -> Option<serde_json::Value> {
    use tollgate_core::names::metric::LOG_PROPERTY;
    if !config.is_some_and(|c| c.access_log) {
        return None;
    }
    let format = format!(
        concat!(
            r#"{{"time":"%START_TIME%","route":"%ROUTE_NAME%","status":%RESPONSE_CODE%,"#,
            r#""attempts":%UPSTREAM_REQUEST_ATTEMPT_COUNT%,"duration_ms":%DURATION%"#,
            "%FILTER_STATE(wasm.{}:PLAIN)%}}\n"
        ),
        LOG_PROPERTY
    );
    Some(serde_json::json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {
                "text_format_source": {"inline_string": format},
                "omit_empty_values": true,
            },
        },
    }]))
}
