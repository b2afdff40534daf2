//! The pricing table behind the cost rules: USD per million tokens per (provider, model).

use serde::Deserialize;

/// The guide's Model Selection Matrix, shipped with the generator.
pub const GUIDE_PRICES: &str = include_str!("../../pricing/guide-prices.yaml");

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Provider kind label (`openai`, `anthropic`, `gemini`).
    pub provider: String,
    /// Model as the provider names it.
    pub model: String,
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
    /// USD per million prompt tokens read from the provider's prompt cache (default: input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// USD per million prompt tokens written to the prompt cache (default: 1.25 × input for
    /// `anthropic`, input for the others; see `tollgate_core::pricing::PicoPrices::from_usd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl Price {
    /// The row as the metrics stage's configuration has it.
    pub fn to_model_price(&self) -> tollgate_core::config::metrics::ModelPrice {
        tollgate_core::config::metrics::ModelPrice {
            provider: self.provider.clone(),
            model: self.model.clone(),
            input: self.input,
            output: self.output,
            cached_input: self.cached_input,
            cache_write: self.cache_write,
        }
    }

    /// USD per million tokens by direction label value (cached input only when the provider
    /// prices it apart).
    pub fn by_direction(&self) -> Vec<(&'static str, f64)> {
        use tollgate_core::names::metric::direction;
        let mut prices = vec![
            (direction::INPUT, self.input),
            (direction::OUTPUT, self.output),
        ];
        if let Some(cached) = self.cached_input {
            prices.push((direction::CACHED_INPUT, cached));
        }
        prices
    }
}

/// Parses a pricing table (a YAML list of [`Price`]).
pub fn parse(file: &str, text: &str) -> Result<Vec<Price>, crate::error::ConfigError> {
    let value: serde_norway::Value = serde_norway::from_str(text).map_err(|error| {
        crate::error::ConfigError::new(
            crate::error::Location::file(file),
            format!("not valid YAML: {error}"),
        )
    })?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let location = crate::error::Location::file(file).at(error.path().to_string());
        crate::error::ConfigError::new(
            location,
            crate::error::humanize_serde_message(&error.inner().to_string()),
        )
    })
}

/// A model or provider as the metrics carry it on Envoy's Prometheus endpoint: the stage
/// encodes tags Istio's way, so dots and colons stay (`gpt-4.1`, `llama3.2:8b`; measured on
/// Envoy 1.40, `integration/e2e/tests/metrics.rs`); only `;`, `=` and control characters
/// become `_` (see `tollgate_core::names::metric::encode_value`).
pub fn label_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    tollgate_core::names::metric::encode_value(value, &mut encoded);
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_covers_the_guide_backend_models() {
        let prices = parse("guide-prices.yaml", GUIDE_PRICES).unwrap();
        for model in [
            "llama3.2:8b",
            "gemini-1.5-flash",
            "gpt-4o-mini",
            "claude-3-5-haiku-20241022",
        ] {
            assert!(prices.iter().any(|p| p.model == model), "{model}");
        }
    }

    #[test]
    fn label_values_keep_their_dots_and_colons_as_envoy_does() {
        assert_eq!(label_value("gemini-1.5-flash"), "gemini-1.5-flash");
        assert_eq!(label_value("llama3.2:8b"), "llama3.2:8b");
        assert_eq!(label_value("a;b=c"), "a_b_c");
    }

    #[test]
    fn the_shipped_table_is_the_metrics_stages_builtin_table() {
        let prices = parse("guide-prices.yaml", GUIDE_PRICES).unwrap();
        let rows: Vec<_> = prices.iter().map(Price::to_model_price).collect();
        assert_eq!(rows, tollgate_core::pricing::guide_prices());
    }
}
