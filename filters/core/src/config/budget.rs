//! The budget stage's section of [`super::DownstreamConfig`]: token, request and dollar buckets
//! per caller, as the generator derives them from `token-budget` TrafficPolicies
//! (`spec.rateLimit.local[]`). The stage crate (`tollgate-budget`) validates it at load.

use serde::{Deserialize, Serialize};

/// Default bound on body bytes per input token (see [`BudgetConfig::input_bytes_per_token`]).
pub const DEFAULT_INPUT_BYTES_PER_TOKEN: u32 = 1;
/// Output cap reserved (and written into the request) when the client sets none.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 4096;
/// Fewest output tokens a clamped request is still admitted with.
pub const DEFAULT_MIN_OUTPUT_TOKENS: u64 = 1;
/// Shared-data slots of the local tier (each holds one caller's buckets of one policy).
pub const DEFAULT_SLOTS: u32 = 4096;

/// Configuration of the budget stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// The policies; a request pays into every policy whose routes it is on.
    #[serde(default)]
    pub policies: Vec<BudgetPolicy>,
    /// The input estimate is `ceil(body bytes / input_bytes_per_token)`. The default 1 is a
    /// strict upper bound for byte-level BPE tokenizers (every token covers at least one byte
    /// of text, and the JSON framing of each message outweighs its few special tokens), so a
    /// reservation always covers the real usage; larger values reserve less, and usage above
    /// the reservation is still charged and counted as overshoot.
    #[serde(default = "default_input_bytes_per_token")]
    pub input_bytes_per_token: u32,
    /// Output cap when the client gives none (`max_completion_tokens`/`max_tokens`).
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u64,
    /// A request whose buckets cannot hold its input plus this many output tokens is refused.
    #[serde(default = "default_min_output_tokens")]
    pub min_output_tokens: u64,
    /// Local tier: number of shared-data slots (bounded key space; see the stage crate).
    #[serde(default = "default_slots")]
    pub slots: u32,
    /// Prices for `micro_usd` buckets, by model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prices: Vec<ModelPrice>,
    /// Global tier: the budget service the state lives in (Redis behind it); absent: the
    /// local tier (shared data of this Envoy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalBudget>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            input_bytes_per_token: DEFAULT_INPUT_BYTES_PER_TOKEN,
            default_output_tokens: DEFAULT_OUTPUT_TOKENS,
            min_output_tokens: DEFAULT_MIN_OUTPUT_TOKENS,
            slots: DEFAULT_SLOTS,
            prices: Vec::new(),
            global: None,
        }
    }
}

/// One policy: whose budget (the key) and its buckets, all of which must hold a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPolicy {
    /// Name (metrics label; part of the state key).
    pub name: String,
    /// HTTPRoute names (the part of Envoy's route name before the first `/`); empty: every route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Where the caller's identity comes from, all parts joined: `jwt.<claim>`,
    /// `header.<name>`, `client` (the authenticated client key), `source.address`, `model`.
    pub key: Vec<String>,
    /// A request without the identity shares one anonymous budget; `false`: it gets a 401.
    #[serde(default)]
    pub anonymous: bool,
    /// The buckets.
    pub buckets: Vec<BucketLimit>,
}

/// A token bucket, in the guide's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketLimit {
    /// What it counts.
    #[serde(default)]
    pub unit: BudgetUnit,
    /// Capacity (and the starting level).
    pub max_tokens: u64,
    /// Added every `fill_interval_ms`, up to `max_tokens`.
    pub tokens_per_fill: u64,
    /// Refill period.
    pub fill_interval_ms: u64,
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetUnit {
    /// Input + output tokens.
    #[default]
    Tokens,
    /// Requests.
    Requests,
    /// Cost in millionths of a US dollar, priced by [`BudgetConfig::prices`].
    MicroUsd,
}

/// A model's prices, in micro-USD per million tokens (= pico-USD per token, the unit of
/// `tollgate_core::pricing::PicoPrices`). The generator writes these rows from the pricing
/// table (`tollgate_core::pricing::budget_prices`: the dearest provider of each model, defaults
/// resolved), so a bucket is charged what the metrics stage counts. A model also prices its
/// dated snapshots (`gpt-4o-mini` prices `gpt-4o-mini-2024-07-18`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Model name as the client or the provider names it.
    pub model: String,
    /// Prompt tokens neither read from nor written to the prompt cache.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Prompt tokens read from the prompt cache; absent: the input price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<u64>,
    /// Prompt tokens written to the prompt cache (Anthropic `cache_creation_input_tokens`);
    /// absent: the input price. A row has no provider, so the Anthropic default (1.25 × input)
    /// is applied by the generator, which writes this price for every Anthropic model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<u64>,
}

/// The global tier's budget service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalBudget {
    /// Envoy cluster of the service.
    pub cluster: String,
    /// `:authority` of its requests.
    pub authority: String,
    /// Call timeout.
    #[serde(default = "default_global_timeout_ms")]
    pub timeout_ms: u64,
    /// When the service fails or times out: `true` admits the request unmetered (counted),
    /// `false` refuses it with a 503.
    #[serde(default)]
    pub fail_open: bool,
}

fn default_input_bytes_per_token() -> u32 {
    DEFAULT_INPUT_BYTES_PER_TOKEN
}
fn default_output_tokens() -> u64 {
    DEFAULT_OUTPUT_TOKENS
}
fn default_min_output_tokens() -> u64 {
    DEFAULT_MIN_OUTPUT_TOKENS
}
fn default_slots() -> u32 {
    DEFAULT_SLOTS
}
fn default_global_timeout_ms() -> u64 {
    200
}
