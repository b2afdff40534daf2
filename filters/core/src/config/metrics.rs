//! The metrics stage's section of [`super::DownstreamConfig`]: which names the metrics carry,
//! what tokens cost, and how many distinct models one instance labels.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default cap on distinct model label values per VM (Envoy worker); later models count as
/// `model="other"`.
pub const DEFAULT_MAX_MODELS: usize = 50;

/// Configuration of the metrics stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The metric and label names: `agentgateway` (the guide's) or `genai` (OpenTelemetry
    /// GenAI semantic conventions).
    #[serde(default)]
    pub naming: MetricNaming,
    /// Distinct models one VM labels; requests for further models are counted as
    /// `model="other"`, so no client can blow up the number of series.
    #[serde(default = "default_max_models")]
    pub max_models: usize,
    /// Prices, USD per million tokens, by provider kind and model. Empty: the built-in table
    /// (the optimization guide's Model Selection Matrix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prices: Vec<ModelPrice>,
    /// Price of a (provider, model) missing from `prices`; such requests are also counted as
    /// unpriced.
    #[serde(default)]
    pub default_price: TokenPrices,
    /// Provider name (as the Backend names it, `x-tollgate-provider`) → provider kind label
    /// (`openai`, `anthropic`, `gemini`). A name missing here is its own label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, String>,
    /// Publish each request's facts as filter state (`wasm.tollgate_log_*`) for Envoy's access
    /// log.
    #[serde(default = "default_true")]
    pub access_log: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            naming: MetricNaming::default(),
            max_models: DEFAULT_MAX_MODELS,
            prices: Vec::new(),
            default_price: TokenPrices::default(),
            providers: BTreeMap::new(),
            access_log: true,
        }
    }
}

fn default_max_models() -> usize {
    DEFAULT_MAX_MODELS
}

fn default_true() -> bool {
    true
}

/// Which names the metrics carry (both from `crate::names::metric`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricNaming {
    /// `agentgateway_llm_tokens_total{direction,provider,model}` and friends.
    #[default]
    Agentgateway,
    /// `gen_ai_client_token_usage{gen_ai_token_type,...}` and friends.
    Genai,
}

impl MetricNaming {
    /// The name table.
    pub fn table(self) -> &'static crate::names::metric::Naming {
        match self {
            MetricNaming::Agentgateway => &crate::names::metric::AGENTGATEWAY,
            MetricNaming::Genai => &crate::names::metric::GENAI,
        }
    }
}

/// USD per million tokens of each billed category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPrices {
    /// Prompt tokens not read from the prompt cache.
    #[serde(default)]
    pub input: f64,
    /// Generated tokens.
    #[serde(default)]
    pub output: f64,
    /// Prompt tokens read from the provider's prompt cache; `None`: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Prompt tokens written to the provider's prompt cache (Anthropic); `None`: the input price
    /// (this is the price of unlisted models, whose provider is not known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

/// The prices of one model of one provider kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Provider kind label (`openai`, `anthropic`, `gemini`).
    pub provider: String,
    /// Model as the provider names it; also matches its dated snapshots (`gpt-4o-mini`
    /// prices `gpt-4o-mini-2024-07-18`).
    pub model: String,
    /// USD per million prompt tokens not read from the prompt cache.
    pub input: f64,
    /// USD per million generated tokens.
    pub output: f64,
    /// USD per million prompt tokens read from the prompt cache; `None`: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// USD per million prompt tokens written to the prompt cache (Anthropic's
    /// `cache_creation_input_tokens`). `None`: 1.25 × the input price when `provider` is
    /// `anthropic` (its 5-minute cache writes; 1-hour writes cost 2 × input: give the price),
    /// else the input price (other providers do not bill writes apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl ModelPrice {
    /// The row's prices.
    pub fn prices(&self) -> TokenPrices {
        TokenPrices {
            input: self.input,
            output: self.output,
            cached_input: self.cached_input,
            cache_write: self.cache_write,
        }
    }
}
