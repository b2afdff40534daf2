//! What a request costs in each bucket's unit, and how much output a bucket can still pay for.
//!
//! Dollar amounts are integers: prices are micro-USD per million tokens, so the cost of `n`
//! tokens in micro-USD is `n × price / 10⁶`, rounded up (a budget never undercounts).

use tollgate_core::config::budget::{BudgetUnit, ModelPrice};
use tollgate_core::usage::TokenUsage;

/// A model's prices (micro-USD per million tokens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    /// Input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cached input tokens.
    pub cached_input: u64,
}

impl From<&ModelPrice> for Price {
    fn from(p: &ModelPrice) -> Self {
        Price {
            input: p.input,
            output: p.output,
            cached_input: p.cached_input.unwrap_or(p.input),
        }
    }
}

impl Price {
    /// The dearest of each price: what a request is reserved at when its model has no price
    /// (an alias, a model a failover may change), so the reservation covers any of them.
    pub fn dearest(prices: &[ModelPrice]) -> Price {
        prices
            .iter()
            .map(Price::from)
            .fold(Price::default(), |a, p| Price {
                input: a.input.max(p.input),
                output: a.output.max(p.output),
                cached_input: a.cached_input.max(p.cached_input),
            })
    }

    /// The price of `model`, if the table has it; a dated snapshot (`gpt-4o-mini-2024-07-18`)
    /// takes the price of its model (the longest listed name it extends with `-`).
    pub fn of(prices: &[ModelPrice], model: &str) -> Option<Price> {
        prices
            .iter()
            .find(|p| p.model == model)
            .or_else(|| {
                prices
                    .iter()
                    .filter(|p| {
                        model
                            .strip_prefix(p.model.as_str())
                            .is_some_and(|rest| rest.starts_with('-'))
                    })
                    .max_by_key(|p| p.model.len())
            })
            .map(Price::from)
    }
}

/// Tokens a request uses, kept apart as providers bill them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens, cached ones included.
    pub input: u64,
    /// The cached part of `input`.
    pub cached_input: u64,
    /// Output tokens.
    pub output: u64,
}

impl From<TokenUsage> for Tokens {
    fn from(u: TokenUsage) -> Self {
        Tokens {
            input: u.input_tokens,
            cached_input: u.cached_input_tokens.min(u.input_tokens),
            output: u.output_tokens,
        }
    }
}

impl Tokens {
    /// Input + output.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

fn to_level(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Micro-USD for `tokens` at `price`, rounded up.
pub fn micro_usd(tokens: &Tokens, price: &Price) -> u64 {
    let uncached = u128::from(tokens.input.saturating_sub(tokens.cached_input));
    let pico = uncached * u128::from(price.input)
        + u128::from(tokens.cached_input) * u128::from(price.cached_input)
        + u128::from(tokens.output) * u128::from(price.output);
    u64::try_from(pico.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// What `tokens` cost in a bucket of `unit`.
pub fn amount(unit: BudgetUnit, tokens: &Tokens, price: &Price) -> i64 {
    match unit {
        BudgetUnit::Tokens => to_level(u128::from(tokens.total())),
        BudgetUnit::Requests => 1,
        BudgetUnit::MicroUsd => to_level(u128::from(micro_usd(tokens, price))),
    }
}

/// The most output tokens (at most `want`) a bucket holding `available` can pay for on top of
/// `input` tokens; `None` when it cannot pay for `min` of them (`min` is lowered to `want`).
pub fn fit(
    unit: BudgetUnit,
    available: i64,
    input: u64,
    price: &Price,
    want: u64,
    min: u64,
) -> Option<u64> {
    let min = min.min(want);
    let max_output = match unit {
        BudgetUnit::Requests => {
            return (available >= 1).then_some(want);
        }
        BudgetUnit::Tokens => {
            let room = available.saturating_sub(to_level(u128::from(input)));
            u64::try_from(room).ok()?
        }
        BudgetUnit::MicroUsd => {
            let input_cost = amount(
                unit,
                &Tokens {
                    input,
                    ..Tokens::default()
                },
                price,
            );
            if available < input_cost {
                return None;
            }
            if price.output == 0 {
                want
            } else {
                // Largest n with ceil((in_pico + n × out) / 10⁶) <= available.
                let budget_pico = u128::try_from(available).unwrap_or(0) * 1_000_000;
                let in_pico = u128::from(input) * u128::from(price.input);
                let room = budget_pico.saturating_sub(in_pico) / u128::from(price.output);
                u64::try_from(room).unwrap_or(u64::MAX)
            }
        }
    };
    (max_output >= min).then(|| max_output.min(want))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: Price = Price {
        input: 150_000,
        output: 600_000,
        cached_input: 75_000,
    };

    #[test]
    fn a_million_tokens_cost_the_price_per_million() {
        let t = Tokens {
            input: 1_000_000,
            cached_input: 0,
            output: 1_000_000,
        };
        assert_eq!(micro_usd(&t, &MINI), 750_000); // $0.15 + $0.60
    }

    #[test]
    fn cached_input_is_priced_apart_and_fractions_round_up() {
        let t = Tokens {
            input: 10,
            cached_input: 4,
            output: 1,
        };
        // 6 × 0.15 + 4 × 0.075 + 1 × 0.6 = 1.8 micro-USD → 2.
        assert_eq!(micro_usd(&t, &MINI), 2);
    }

    #[test]
    fn tokens_buckets_count_input_and_output_and_request_buckets_count_one() {
        let t = Tokens {
            input: 10,
            cached_input: 4,
            output: 5,
        };
        assert_eq!(amount(BudgetUnit::Tokens, &t, &MINI), 15);
        assert_eq!(amount(BudgetUnit::Requests, &t, &MINI), 1);
    }

    #[test]
    fn a_token_bucket_clamps_the_output_to_what_is_left_after_the_input() {
        assert_eq!(
            fit(BudgetUnit::Tokens, 1_000, 300, &MINI, 4096, 1),
            Some(700)
        );
        assert_eq!(
            fit(BudgetUnit::Tokens, 1_000, 300, &MINI, 100, 1),
            Some(100)
        );
        assert_eq!(fit(BudgetUnit::Tokens, 300, 300, &MINI, 100, 1), None);
        assert_eq!(fit(BudgetUnit::Tokens, 310, 300, &MINI, 100, 16), None);
        assert_eq!(fit(BudgetUnit::Tokens, -5, 0, &MINI, 100, 1), None);
    }

    #[test]
    fn a_dollar_bucket_clamps_the_output_to_what_its_money_buys() {
        // 1000 input tokens = 150 micro-USD; 60 left buy 100 output tokens at 0.6 each.
        let out = fit(BudgetUnit::MicroUsd, 210, 1_000, &MINI, 4096, 1).unwrap();
        assert_eq!(out, 100);
        let cost = micro_usd(
            &Tokens {
                input: 1_000,
                cached_input: 0,
                output: out,
            },
            &MINI,
        );
        assert!(cost <= 210);
        assert_eq!(fit(BudgetUnit::MicroUsd, 149, 1_000, &MINI, 4096, 1), None);
    }

    #[test]
    fn free_models_never_clamp_a_dollar_bucket() {
        let free = Price::default();
        assert_eq!(
            fit(BudgetUnit::MicroUsd, 0, 1_000, &free, 4096, 1),
            Some(4096)
        );
    }

    #[test]
    fn unknown_models_are_reserved_at_the_dearest_price() {
        let table = vec![
            ModelPrice {
                model: "a".into(),
                input: 1,
                output: 9,
                cached_input: None,
            },
            ModelPrice {
                model: "b".into(),
                input: 5,
                output: 2,
                cached_input: Some(1),
            },
        ];
        assert_eq!(
            Price::dearest(&table),
            Price {
                input: 5,
                output: 9,
                cached_input: 1
            }
        );
        assert_eq!(Price::of(&table, "a").unwrap().cached_input, 1);
        assert_eq!(Price::of(&table, "c"), None);
        assert_eq!(Price::of(&table, "a-2024-07-18").unwrap().output, 9);
        assert_eq!(Price::of(&table, "ab"), None);
    }
}
