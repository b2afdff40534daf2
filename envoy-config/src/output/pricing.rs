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

/// A metric label value: a dot would split the Envoy stat name into more tags, so `.` -> `_`.
pub fn label_value(value: &str) -> String {
    value.replace('.', "_")
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
    fn label_values_lose_their_dots() {
        assert_eq!(label_value("gemini-1.5-flash"), "gemini-1_5-flash");
    }
}
