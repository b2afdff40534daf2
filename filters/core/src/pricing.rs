//! What tokens cost: the price table (the guide's Model Selection Matrix by default), usage
//! split into billed categories so each token is priced once, and the exact cost in
//! pico-USD (integers: no float drift when millions of requests are summed).
//!
//! Here in core so every stage prices the same way: one table type and one lookup
//! ([`PriceTable::price`], [`PriceTable::price_of_model`]), one split of usage into billed
//! categories ([`BilledTokens::from_usage`]) and one cost ([`cost_pico_usd`]). The metrics stage
//! counts with them; the budget stage charges with them (rounding up to whole micro-USD), so a
//! bucket and the cost counter never disagree on what a request cost.

use crate::config::budget::ModelPrice as BudgetPrice;
use crate::config::metrics::{ModelPrice, TokenPrices};
use crate::usage::TokenUsage;

/// What Anthropic bills a 5-minute prompt-cache write, as a multiple of the input price: the
/// cache-write price of an `anthropic` row that gives none.
pub const ANTHROPIC_CACHE_WRITE_FACTOR: f64 = 1.25;

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

/// USD per million tokens as pico-USD per token (= micro-USD per million tokens), rounded to
/// the nearest; the values are validated finite and >= 0.
pub fn pico(usd_per_million: f64) -> u64 {
    (usd_per_million * 1e6).round().clamp(0.0, u64::MAX as f64) as u64
}

impl PicoPrices {
    /// From USD per million tokens of a row of `provider` (a kind label; `None` for the
    /// default price). A missing cached-input price is the input price; a missing cache-write
    /// price is [`ANTHROPIC_CACHE_WRITE_FACTOR`] × input for `anthropic` (the only provider
    /// billing writes above input), else the input price.
    pub fn from_usd(provider: Option<&str>, prices: &TokenPrices) -> Self {
        let write_factor = if provider == Some("anthropic") {
            ANTHROPIC_CACHE_WRITE_FACTOR
        } else {
            1.0
        };
        Self {
            input: pico(prices.input),
            output: pico(prices.output),
            cached_input: pico(prices.cached_input.unwrap_or(prices.input)),
            cache_write: pico(prices.cache_write.unwrap_or(prices.input * write_factor)),
        }
    }

    /// Each price the dearer of the two.
    pub fn max(self, other: Self) -> Self {
        Self {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cached_input: self.cached_input.max(other.cached_input),
            cache_write: self.cache_write.max(other.cache_write),
        }
    }
}

impl From<&BudgetPrice> for PicoPrices {
    /// A budget row is already in pico-USD per token; missing prices are the input price.
    fn from(p: &BudgetPrice) -> Self {
        Self {
            input: p.input,
            output: p.output,
            cached_input: p.cached_input.unwrap_or(p.input),
            cache_write: p.cache_write.unwrap_or(p.input),
        }
    }
}

/// The budget stage's rows for a metrics price table: one per model, each price the dearest
/// any provider asks for it (a budget reserves before failover picks the provider, and must
/// never undercount), defaults resolved per provider, so a model served by one provider is
/// charged exactly what the metrics stage counts. A price equal to the input price is left out.
pub fn budget_prices(rows: &[ModelPrice]) -> Vec<BudgetPrice> {
    let mut by_model: Vec<(&str, PicoPrices)> = Vec::new();
    for row in rows {
        let prices = PicoPrices::from_usd(Some(&row.provider), &row.prices());
        match by_model.iter_mut().find(|(m, _)| *m == row.model) {
            Some((_, known)) => *known = known.max(prices),
            None => by_model.push((&row.model, prices)),
        }
    }
    by_model.sort_by(|a, b| a.0.cmp(b.0));
    by_model
        .into_iter()
        .map(|(model, p)| BudgetPrice {
            model: model.to_string(),
            input: p.input,
            output: p.output,
            cached_input: (p.cached_input != p.input).then_some(p.cached_input),
            cache_write: (p.cache_write != p.input).then_some(p.cache_write),
        })
        .collect()
}

/// One row of a [`PriceTable`].
#[derive(Debug, Clone)]
struct Entry {
    /// Provider kind; `None`: whoever serves the model (the budget's rows).
    provider: Option<String>,
    model: String,
    prices: PicoPrices,
}

/// The price table of one configuration.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    rows: Vec<Entry>,
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
            let prices = PicoPrices::from_usd(Some(&row.provider), &row.prices());
            push(&mut table, index, Some(&row.provider), &row.model, prices)?;
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
            default: PicoPrices::from_usd(None, default),
        })
    }

    /// The budget stage's table: rows by model alone (whoever serves it), in pico-USD per
    /// token already; a model the table lacks has no price (the budget reserves it at the
    /// dearest).
    pub fn of_models(rows: &[BudgetPrice]) -> Result<Self, PriceError> {
        let mut table = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            push(&mut table, index, None, &row.model, PicoPrices::from(row))?;
        }
        Ok(Self {
            rows: table,
            default: PicoPrices::default(),
        })
    }

    /// Every row's prices, in table order.
    pub fn rows(&self) -> impl Iterator<Item = PicoPrices> + '_ {
        self.rows.iter().map(|e| e.prices)
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
        for entry in &self.rows {
            let other_provider = match (provider, &entry.provider) {
                (Some(wanted), Some(row)) => wanted != row,
                _ => false,
            };
            if other_provider {
                continue;
            }
            let m = &entry.model;
            if m == model {
                return Some(entry.prices);
            }
            let snapshot = model
                .strip_prefix(m.as_str())
                .is_some_and(is_snapshot_suffix);
            if snapshot && best.is_none_or(|(len, _)| m.len() > len) {
                best = Some((m.len(), entry.prices));
            }
        }
        best.map(|(_, p)| p)
    }

    /// The prices of a model the table lacks.
    pub fn default_price(&self) -> PicoPrices {
        self.default
    }
}

/// Appends a row, refusing a second one for the same (provider, model).
fn push(
    table: &mut Vec<Entry>,
    index: usize,
    provider: Option<&str>,
    model: &str,
    prices: PicoPrices,
) -> Result<(), PriceError> {
    if table
        .iter()
        .any(|e| e.provider.as_deref() == provider && e.model == model)
    {
        return Err(PriceError::Duplicate {
            index,
            provider: provider.unwrap_or_default().to_string(),
            model: model.to_string(),
        });
    }
    table.push(Entry {
        provider: provider.map(str::to_string),
        model: model.to_string(),
        prices,
    });
    Ok(())
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
    /// every provider: `input_tokens` holds all prompt tokens, cache reads and writes included
    /// (OpenAI's `prompt_tokens`; Anthropic's `input_tokens + cache_read + cache_creation`;
    /// Gemini's `promptTokenCount`), `cached_input_tokens` the cache reads (OpenAI
    /// `cached_tokens`, Anthropic `cache_read_input_tokens`, Gemini `cachedContentTokenCount`),
    /// `cache_write_tokens` the writes (Anthropic `cache_creation_input_tokens`, carried to the
    /// pipeline as `prompt_tokens_details.cache_creation_tokens`). Parts larger than the prompt
    /// are clamped to it, so no token is billed twice.
    pub fn from_usage(usage: &TokenUsage) -> Self {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        Self {
            input: usage.input_tokens - cached - written,
            output: usage.output_tokens,
            cached_input: cached,
            cache_write: written,
        }
    }

    /// All prompt tokens (uncached, read and written).
    pub fn prompt(&self) -> u64 {
        self.input
            .saturating_add(self.cached_input)
            .saturating_add(self.cache_write)
    }

    /// Every token, prompt and generated (what a token budget counts).
    pub fn total(&self) -> u64 {
        self.prompt().saturating_add(self.output)
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
            cache_write_tokens: 0,
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

    fn row(provider: &str, model: &str, input: f64, cache_write: Option<f64>) -> ModelPrice {
        ModelPrice {
            provider: provider.into(),
            model: model.into(),
            input,
            output: 5.0,
            cached_input: Some(input / 10.0),
            cache_write,
        }
    }

    /// (what, provider, model, usage as the pipeline has it: prompt incl. reads and writes,
    /// output, reads, writes), the cost in pico-USD.
    const COSTS: &[(&str, &str, &str, [u64; 4], u128)] = &[
        // Anthropic reported input 1000, cache_read 2000, cache_creation 500, output 200:
        // 1000 × 3 + 2000 × 0.30 + 500 × 3.75 + 200 × 15 = 3000 + 600 + 1875 + 3000 µUSD.
        (
            "anthropic reads and writes, each at its price",
            "anthropic",
            "claude-3-5-sonnet-20241022",
            [3_500, 200, 2_000, 500],
            8_475 * PICO_PER_MICRO,
        ),
        // 12 × 0.25 + 20 × 0.03 + 3 × 0.30 + 4 × 1.25 = 3 + 0.6 + 0.9 + 5 µUSD.
        (
            "the basic_chat fixture's usage",
            "anthropic",
            "claude-3-5-haiku-20241022",
            [35, 4, 20, 3],
            9_500_000,
        ),
        // No price for writes from OpenAI: a write an OpenAI-compatible server reports is input.
        (
            "openai writes at the input price",
            "openai",
            "gpt-4o-mini",
            [1_000, 0, 0, 1_000],
            150 * PICO_PER_MICRO,
        ),
        // Reads 800 and writes 800 of a 1000-token prompt: 800 read, 200 written, 0 uncached.
        // 800 × 0.03 + 200 × 0.30 = 24 + 60 µUSD.
        (
            "parts larger than the prompt are clamped",
            "anthropic",
            "claude-3-5-haiku-20241022",
            [1_000, 0, 800, 800],
            84 * PICO_PER_MICRO,
        ),
    ];

    #[test]
    fn cache_reads_and_writes_are_priced_apart_from_input() {
        let t = table();
        for &(what, provider, model, [input, output, cached, written], expected) in COSTS {
            let usage = TokenUsage {
                input_tokens: input,
                output_tokens: output,
                cached_input_tokens: cached,
                cache_write_tokens: written,
            };
            let billed = BilledTokens::from_usage(&usage);
            assert_eq!(
                billed.prompt(),
                input,
                "{what}: every prompt token billed once"
            );
            let prices = t.price(provider, model).unwrap();
            assert_eq!(cost_pico_usd(&prices, &billed), expected, "{what}");
        }
    }

    #[test]
    fn a_missing_cache_write_price_is_five_quarters_of_input_for_anthropic_only() {
        let t = PriceTable::new(
            &[
                row("anthropic", "claude-new", 2.0, None),
                row("anthropic", "claude-priced", 2.0, Some(4.0)),
                row("openai", "gpt-new", 2.0, None),
            ],
            &TokenPrices {
                input: 2.0,
                ..TokenPrices::default()
            },
        )
        .unwrap();
        let write = |p: Option<PicoPrices>| p.unwrap().cache_write;
        assert_eq!(write(t.price("anthropic", "claude-new")), 2_500_000);
        assert_eq!(write(t.price("anthropic", "claude-priced")), 4_000_000);
        assert_eq!(write(t.price("openai", "gpt-new")), 2_000_000);
        assert_eq!(t.default_price().cache_write, 2_000_000);
    }

    #[test]
    fn budget_rows_take_each_models_dearest_provider_with_defaults_resolved() {
        let rows = [
            row("anthropic", "claude-new", 2.0, None),
            row("bedrock", "claude-new", 3.0, None),
            row("openai", "gpt-4o-mini", 0.15, None),
        ];
        let budget = budget_prices(&rows);
        let claude = budget.iter().find(|r| r.model == "claude-new").unwrap();
        // Input from bedrock (3.0), the write from anthropic's default (2.0 × 1.25 = 2.5 < 3.0):
        // each price the dearest, so the write is bedrock's input price.
        assert_eq!(
            (claude.input, claude.cache_write, claude.cached_input),
            (3_000_000, None, Some(300_000))
        );
        let alone = budget_prices(&rows[..1]);
        assert_eq!(alone[0].cache_write, Some(2_500_000));
        // The budget's table prices a model as the metrics table prices its only provider.
        let metrics = PriceTable::new(&rows[..1], &TokenPrices::default()).unwrap();
        let budget = PriceTable::of_models(&alone).unwrap();
        assert_eq!(
            budget.price_of_model("claude-new-20250101"),
            metrics.price("anthropic", "claude-new")
        );
        let gpt = budget_prices(&rows[2..]);
        assert_eq!(
            (gpt[0].cached_input, gpt[0].cache_write),
            (Some(15_000), None)
        );
    }

    #[test]
    fn a_models_table_matches_any_provider_and_refuses_a_model_twice() {
        let rows = budget_prices(&[row("openai", "gpt-4o-mini", 0.15, None)]);
        let t = PriceTable::of_models(&rows).unwrap();
        assert!(t.price("anthropic", "gpt-4o-mini-2024-07-18").is_some());
        assert_eq!(t.price_of_model("gpt-4o-mini-high"), None);
        let e = PriceTable::of_models(&[rows[0].clone(), rows[0].clone()]).unwrap_err();
        assert!(matches!(e, PriceError::Duplicate { index: 1, .. }), "{e}");
    }
}
