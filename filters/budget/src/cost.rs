//! What a request costs in each bucket's unit, and how much output a bucket can still pay for.
//!
//! Built on core's pricing (`tollgate_core::pricing`), which the metrics stage counts with: the
//! same table lookup, the same split of usage into billed categories and the same exact cost in
//! pico-USD. The budget's one rule on top: a charge is that cost rounded **up** to whole
//! micro-USD, so a bucket never undercounts.

use tollgate_core::config::budget::BudgetUnit;
use tollgate_core::pricing::{cost_pico_usd, BilledTokens, PicoPrices, PriceTable, PICO_PER_MICRO};

/// The dearest of each price in `table`: what a request is reserved at when its model has no
/// price (an alias, a model a failover may change), so the reservation covers any of them.
pub fn dearest(table: &PriceTable) -> PicoPrices {
    table.rows().fold(PicoPrices::default(), PicoPrices::max)
}

fn to_level(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Micro-USD for `tokens` at `price`: core's exact cost, rounded up.
pub fn micro_usd(tokens: &BilledTokens, price: &PicoPrices) -> u64 {
    u64::try_from(cost_pico_usd(price, tokens).div_ceil(PICO_PER_MICRO)).unwrap_or(u64::MAX)
}

/// What `tokens` cost in a bucket of `unit`.
pub fn amount(unit: BudgetUnit, tokens: &BilledTokens, price: &PicoPrices) -> i64 {
    match unit {
        BudgetUnit::Tokens => to_level(u128::from(tokens.total())),
        BudgetUnit::Requests => 1,
        BudgetUnit::MicroUsd => to_level(u128::from(micro_usd(tokens, price))),
    }
}

/// The most output tokens (at most `want`) a bucket holding `available` can pay for on top of
/// `input` (uncached) tokens; `None` when it cannot pay for `min` of them (`min` is lowered to
/// `want`).
pub fn fit(
    unit: BudgetUnit,
    available: i64,
    input: u64,
    price: &PicoPrices,
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
            let prompt = BilledTokens {
                input,
                ..BilledTokens::default()
            };
            if available < amount(unit, &prompt, price) {
                return None;
            }
            if price.output == 0 {
                want
            } else {
                // Largest n with ceil((prompt + n × out) / 10⁶) <= available.
                let budget_pico = u128::try_from(available).unwrap_or(0) * PICO_PER_MICRO;
                let room = budget_pico.saturating_sub(cost_pico_usd(price, &prompt))
                    / u128::from(price.output);
                u64::try_from(room).unwrap_or(u64::MAX)
            }
        }
    };
    (max_output >= min).then(|| max_output.min(want))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::budget::ModelPrice;
    use tollgate_core::usage::TokenUsage;

    const MINI: PicoPrices = PicoPrices {
        input: 150_000,
        output: 600_000,
        cached_input: 75_000,
        cache_write: 150_000,
    };

    fn billed(input: u64, cached: u64, written: u64, output: u64) -> BilledTokens {
        BilledTokens::from_usage(&TokenUsage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_tokens: written,
        })
    }

    #[test]
    fn a_million_tokens_cost_the_price_per_million() {
        let t = billed(1_000_000, 0, 0, 1_000_000);
        assert_eq!(micro_usd(&t, &MINI), 750_000); // $0.15 + $0.60
    }

    #[test]
    fn cached_input_is_priced_apart_and_fractions_round_up() {
        // 6 × 0.15 + 4 × 0.075 + 1 × 0.6 = 1.8 micro-USD → 2.
        assert_eq!(micro_usd(&billed(10, 4, 0, 1), &MINI), 2);
    }

    #[test]
    fn tokens_buckets_count_input_and_output_and_request_buckets_count_one() {
        let t = billed(10, 4, 3, 5);
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
        assert!(micro_usd(&billed(1_000, 0, 0, out), &MINI) <= 210);
        assert_eq!(fit(BudgetUnit::MicroUsd, 149, 1_000, &MINI, 4096, 1), None);
    }

    #[test]
    fn free_models_never_clamp_a_dollar_bucket() {
        let free = PicoPrices::default();
        assert_eq!(
            fit(BudgetUnit::MicroUsd, 0, 1_000, &free, 4096, 1),
            Some(4096)
        );
    }

    #[test]
    fn unknown_models_are_reserved_at_the_dearest_price() {
        let table = PriceTable::of_models(&[
            ModelPrice {
                model: "a".into(),
                input: 1,
                output: 9,
                cached_input: None,
                cache_write: Some(7),
            },
            ModelPrice {
                model: "b".into(),
                input: 5,
                output: 2,
                cached_input: Some(1),
                cache_write: None,
            },
        ])
        .unwrap();
        assert_eq!(
            dearest(&table),
            PicoPrices {
                input: 5,
                output: 9,
                cached_input: 1,
                cache_write: 7,
            }
        );
        assert_eq!(table.price_of_model("a").unwrap().cached_input, 1);
        assert_eq!(table.price_of_model("c"), None);
        assert_eq!(table.price_of_model("a-2024-07-18").unwrap().output, 9);
        assert_eq!(table.price_of_model("ab"), None);
    }
}
