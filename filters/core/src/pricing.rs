//! What tokens cost: the price table (the guide's Model Selection Matrix by default), usage
//! split into billed categories so each token is priced once, and the exact cost in
//! pico-USD (integers: no float drift when millions of requests are summed).
//!
//! Here in core so every stage prices the same way: the metrics stage counts with it, and the
//! budget stage can charge with [`PriceTable::price`] and [`cost_pico_usd`].

use crate::config::metrics::{ModelPrice, TokenPrices};
use crate::usage::TokenUsage;

/// One row of the built-in table: provider kind, model, USD per 1M input, output, cached
/// input, cache write.
type Row = (
    &'static str,
    &'static str,
    f64,
    f64,
    Option<f64>,
    Option<f64>,
);

/// The built-in prices. Input and output are the guide's Model Selection Matrix
/// (optimization-guide.md); cached-input and cache-write prices are the providers' published
/// ones for those models (OpenAI: cached input at half price; Anthropic: cache reads at 10 %,
/// writes at 125 % of input; Gemini 1.5: context-cache reads at 25 %), which the guide does
/// not list. The Claude Haiku row keeps the guide's $0.25/$1.25.
pub const GUIDE_PRICES: [Row; 9] = [
    ("openai", "gpt-4o", 2.50, 10.00, Some(1.25), None),
    ("openai", "gpt-4o-mini", 0.15, 0.60, Some(0.075), None),
    ("openai", "gpt-3.5-turbo", 0.50, 1.50, None, None),
    (
        "anthropic",
        "claude-3-opus-20240229",
        15.00,
        75.00,
        Some(1.50),
        Some(18.75),
    ),
    (
        "anthropic",
        "claude-3-5-sonnet-20241022",
        3.00,
        15.00,
        Some(0.30),
        Some(3.75),
    ),
    (
        "anthropic",
        "claude-3-5-haiku-20241022",
        0.25,
        1.25,
        Some(0.03),
        Some(0.30),
    ),
    ("gemini", "gemini-1.5-pro", 1.25, 5.00, Some(0.3125), None),
    (
        "gemini",
        "gemini-1.5-flash",
        0.075,
        0.30,
        Some(0.01875),
        None,
    ),
    ("openai", "llama3.2:8b", 0.0, 0.0, None, None),
];

/// The built-in table as configuration rows.
pub fn guide_prices() -> Vec<ModelPrice> {
    GUIDE_PRICES
        .iter()
        .map(
            |&(provider, model, input, output, cached_input, cache_write)| ModelPrice {
                provider: provider.to_string(),
                model: model.to_string(),
                input,
                output,
                cached_input,
                cache_write,
            },
        )
        .collect()
}

/// A price rejected at configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PriceError {
    /// Negative, NaN or infinite.
    #[error("prices[{index}] ({provider}/{model}).{field}: {value} is not a price (USD per million tokens, 0 or more)")]
    NotAPrice {
        /// Row index.
        index: usize,
        /// Provider of the row.
        provider: String,
        /// Model of the row.
        model: String,
        /// Which price.
        field: &'static str,
        /// The value.
        value: f64,
    },
    /// The same (provider, model) twice.
    #[error("prices[{index}]: {provider}/{model} is priced twice")]
    Duplicate {
        /// Row index of the second.
        index: usize,
        /// Provider.
        provider: String,
        /// Model.
        model: String,
    },
}

/// Prices in pico-USD per token (USD per million tokens × 10⁶), as integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PicoPrices {
    /// Uncached prompt token.
    pub input: u64,
    /// Generated token.
    pub output: u64,
    /// Prompt token read from the prompt cache.
    pub cached_input: u64,
    /// Prompt token written to the prompt cache.
    pub cache_write: u64,
}

fn pico(usd_per_million: f64) -> u64 {
    // Validated finite and >= 0; rounds to the nearest pico-USD (10⁻⁶ USD per million).
    (usd_per_million * 1e6).round().clamp(0.0, u64::MAX as f64) as u64
}

impl PicoPrices {
    /// From USD per million tokens; a missing cached or cache-write price is the input price.
    pub fn from_usd(prices: &TokenPrices) -> Self {
        Self {
            input: pico(prices.input),
            output: pico(prices.output),
            cached_input: pico(prices.cached_input.unwrap_or(prices.input)),
            cache_write: pico(prices.cache_write.unwrap_or(prices.input)),
        }
    }
}

/// The price table of one configuration.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    rows: Vec<(String, String, PicoPrices)>,
    default: PicoPrices,
}

impl PriceTable {
    /// The table of `rows` (empty: [`GUIDE_PRICES`]) with `default` for models it lacks.
    pub fn new(rows: &[ModelPrice], default: &TokenPrices) -> Result<Self, PriceError> {
        let builtin;
        let rows = if rows.is_empty() {
            builtin = guide_prices();
            &builtin[..]
        } else {
            rows
        };
        let mut table = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            let fields = [
                ("input", Some(row.input)),
                ("output", Some(row.output)),
                ("cached_input", row.cached_input),
                ("cache_write", row.cache_write),
            ];
            for (field, value) in fields {
                if let Some(value) = value.filter(|v| !v.is_finite() || *v < 0.0) {
                    return Err(PriceError::NotAPrice {
                        index,
                        provider: row.provider.clone(),
                        model: row.model.clone(),
                        field,
                        value,
                    });
                }
            }
            if table
                .iter()
                .any(|(p, m, _)| *p == row.provider && *m == row.model)
            {
                return Err(PriceError::Duplicate {
                    index,
                    provider: row.provider.clone(),
                    model: row.model.clone(),
                });
            }
            table.push((
                row.provider.clone(),
                row.model.clone(),
                PicoPrices::from_usd(&row.prices()),
            ));
        }
        for (field, value) in [("input", default.input), ("output", default.output)] {
            if !value.is_finite() || value < 0.0 {
                return Err(PriceError::NotAPrice {
                    index: usize::MAX,
                    provider: "default_price".into(),
                    model: String::new(),
                    field,
                    value,
                });
            }
        }
        Ok(Self {
            rows: table,
            default: PicoPrices::from_usd(default),
        })
    }

    /// The prices of `model` served by `provider` (a kind label): the exact row, else the
    /// longest row whose model is followed by a snapshot suffix (`-2024-07-18`, `-20241022`,
    /// `-001`, `-latest`), so `gpt-4o-mini-2024-07-18` is `gpt-4o-mini` but `gpt-4o-mini` is
    /// never `gpt-4o`. `None`: not in the table.
    pub fn price(&self, provider: &str, model: &str) -> Option<PicoPrices> {
        self.find(Some(provider), model)
    }

    /// The prices of `model` whoever serves it (the first provider listing it): for answers
    /// that do not say who served them, such as cache hits.
    pub fn price_of_model(&self, model: &str) -> Option<PicoPrices> {
        self.find(None, model)
    }

    fn find(&self, provider: Option<&str>, model: &str) -> Option<PicoPrices> {
        let mut best: Option<(usize, PicoPrices)> = None;
        for (p, m, prices) in &self.rows {
            if provider.is_some_and(|provider| p != provider) {
                continue;
            }
            if m == model {
                return Some(*prices);
            }
            let snapshot = model
                .strip_prefix(m.as_str())
                .is_some_and(is_snapshot_suffix);
            if snapshot && best.is_none_or(|(len, _)| m.len() > len) {
                best = Some((m.len(), *prices));
            }
        }
        best.map(|(_, p)| p)
    }

    /// The prices of a model the table lacks.
    pub fn default_price(&self) -> PicoPrices {
        self.default
    }
}

fn is_snapshot_suffix(rest: &str) -> bool {
    match rest.strip_prefix('-') {
        Some(tail) => tail == "latest" || tail.starts_with(|c: char| c.is_ascii_digit()),
        None => false,
    }
}

/// Tokens by billed category: every token in exactly one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BilledTokens {
    /// Prompt tokens neither read from nor written to the prompt cache.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Prompt tokens read from the prompt cache.
    pub cached_input: u64,
    /// Prompt tokens written to the prompt cache.
    pub cache_write: u64,
}

impl BilledTokens {
    /// From the pipeline's usage, which the adapters normalised to OpenAI's convention for
    /// every provider: `input_tokens` holds all prompt tokens, cached ones included (OpenAI's
    /// `prompt_tokens`; Anthropic's `input_tokens + cache_read + cache_creation`; Gemini's
    /// `promptTokenCount`), `cached_input_tokens` the cache reads (OpenAI `cached_tokens`,
    /// Anthropic `cache_read_input_tokens`, Gemini `cachedContentTokenCount`). Cache writes
    /// reach us folded into `input_tokens` (OpenAI's format has no field for them), so they
    /// are priced as input.
    pub fn from_usage(usage: &TokenUsage) -> Self {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        Self {
            input: usage.input_tokens - cached,
            output: usage.output_tokens,
            cached_input: cached,
            cache_write: 0,
        }
    }
}

/// Exact cost in pico-USD (10⁻¹² USD).
pub fn cost_pico_usd(prices: &PicoPrices, tokens: &BilledTokens) -> u128 {
    u128::from(tokens.input) * u128::from(prices.input)
        + u128::from(tokens.output) * u128::from(prices.output)
        + u128::from(tokens.cached_input) * u128::from(prices.cached_input)
        + u128::from(tokens.cache_write) * u128::from(prices.cache_write)
}

/// Pico-USD per micro-USD.
pub const PICO_PER_MICRO: u128 = 1_000_000;

/// Turns exact pico-USD costs into whole micro-USD counter increments, carrying the
/// remainder, so a counter fed many sub-micro-dollar requests still sums to the exact cost
/// (within one micro-USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MicroCarry {
    remainder: u128,
}

impl MicroCarry {
    /// Adds `pico` and returns the whole micro-USD now due.
    pub fn add(&mut self, pico: u128) -> u64 {
        let total = self.remainder + pico;
        self.remainder = total % PICO_PER_MICRO;
        u64::try_from(total / PICO_PER_MICRO).unwrap_or(u64::MAX)
    }
}

/// A cost rounded to the nearest micro-USD (the access log's per-request figure).
pub fn round_micro(pico: u128) -> u64 {
    u64::try_from((pico + PICO_PER_MICRO / 2) / PICO_PER_MICRO).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn table() -> PriceTable {
        PriceTable::new(&[], &TokenPrices::default()).unwrap()
    }

    #[test]
    fn the_builtin_table_is_the_guides_matrix() {
        let t = table();
        let p = t.price("openai", "gpt-4o-mini").unwrap();
        assert_eq!(
            (p.input, p.output, p.cached_input),
            (150_000, 600_000, 75_000)
        );
        let p = t.price("gemini", "gemini-1.5-flash").unwrap();
        assert_eq!((p.input, p.output), (75_000, 300_000));
        assert_eq!(
            t.price("openai", "llama3.2:8b"),
            Some(PicoPrices::default())
        );
        assert_eq!(t.price("anthropic", "gpt-4o"), None);
    }

    #[test]
    fn dated_snapshots_take_the_longest_matching_row() {
        let t = table();
        assert_eq!(
            t.price("openai", "gpt-4o-mini-2024-07-18"),
            t.price("openai", "gpt-4o-mini")
        );
        assert_eq!(
            t.price("openai", "gpt-4o-2024-08-06"),
            t.price("openai", "gpt-4o")
        );
        assert_eq!(t.price("openai", "gpt-4omni"), None);
        assert_eq!(
            t.price_of_model("claude-3-5-haiku-20241022"),
            t.price("anthropic", "claude-3-5-haiku-20241022")
        );
    }

    #[test]
    fn openai_cached_tokens_are_priced_once_at_the_cached_price() {
        // OpenAI: prompt_tokens 1000 of which cached_tokens 400; 100 out. gpt-4o-mini.
        let usage = TokenUsage {
            input_tokens: 1000,
            output_tokens: 100,
            cached_input_tokens: 400,
        };
        let billed = BilledTokens::from_usage(&usage);
        assert_eq!((billed.input, billed.cached_input), (600, 400));
        let p = table().price("openai", "gpt-4o-mini").unwrap();
        // 600 × 0.15 + 400 × 0.075 + 100 × 0.60 = 90 + 30 + 60 = 180 micro-USD
        assert_eq!(cost_pico_usd(&p, &billed), 180 * PICO_PER_MICRO);
    }

    #[test]
    fn a_missing_cached_price_is_the_input_price() {
        let p = table().price("openai", "gpt-3.5-turbo").unwrap();
        assert_eq!(p.cached_input, p.input);
    }

    #[test]
    fn sub_micro_costs_carry_over_and_sum_exactly() {
        // 10 tokens of gemini-1.5-flash input = 0.75 micro-USD each request.
        let p = table().price("gemini", "gemini-1.5-flash").unwrap();
        let billed = BilledTokens {
            input: 10,
            ..Default::default()
        };
        let mut carry = MicroCarry::default();
        let sum: u64 = (0..4).map(|_| carry.add(cost_pico_usd(&p, &billed))).sum();
        assert_eq!(sum, 3);
        assert_eq!(round_micro(cost_pico_usd(&p, &billed)), 1);
    }

    #[test]
    fn bad_prices_are_rejected_with_the_row() {
        let row = ModelPrice {
            provider: "openai".into(),
            model: "m".into(),
            input: -1.0,
            output: 1.0,
            cached_input: None,
            cache_write: None,
        };
        let e = PriceTable::new(std::slice::from_ref(&row), &TokenPrices::default()).unwrap_err();
        assert!(
            e.to_string().starts_with("prices[0] (openai/m).input: -1"),
            "{e}"
        );
        let ok = ModelPrice { input: 1.0, ..row };
        let e = PriceTable::new(&[ok.clone(), ok], &TokenPrices::default()).unwrap_err();
        assert!(matches!(e, PriceError::Duplicate { index: 1, .. }));
    }

    #[test]
    fn configured_rows_replace_the_builtin_table() {
        let row = ModelPrice {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            input: 1.0,
            output: 2.0,
            cached_input: None,
            cache_write: None,
        };
        let t = PriceTable::new(&[row], &TokenPrices::default()).unwrap();
        assert_eq!(t.price("openai", "gpt-4o").unwrap().input, 1_000_000);
        assert_eq!(t.price("openai", "gpt-4o-mini"), None);
    }
}
