//! The budget charges what the metrics stage counts: for the same usage, the micro-USD a
//! dollar bucket loses is the metrics stage's exact pico-USD cost rounded up, with the budget's
//! price rows made from the metrics table as the generator makes them.

use std::collections::BTreeMap;
use tollgate_budget::ledger::Ledger;
use tollgate_budget::{Budget, KeyPart, Outcome, Reserve};
use tollgate_core::config::budget::{BucketLimit, BudgetConfig, BudgetPolicy, BudgetUnit};
use tollgate_core::config::MetricsConfig;
use tollgate_core::facts::{Answerer, RequestFacts, ResponseFacts};
use tollgate_core::names::metric::Metric;
use tollgate_core::pricing::{self, cost_pico_usd, BilledTokens};
use tollgate_core::stage::MemoryStore;
use tollgate_core::usage::TokenUsage;
use tollgate_metrics::Recorder;

struct Vector {
    what: &'static str,
    /// Provider name (as the Backend names it) and model that served.
    provider: &'static str,
    model: &'static str,
    /// Prompt (reads and writes included), output, cache reads, cache writes.
    usage: [u64; 4],
    /// The exact cost.
    pico: u128,
    /// What the dollar bucket is charged (rounded up).
    charge: u64,
    /// What the metrics cost counter adds for this first request (rounded down, the rest
    /// carried to the next).
    counted: u64,
}

const VECTORS: &[Vector] = &[
    // Anthropic reported input 1000, cache_read 2000, cache_creation 500, output 200:
    // 1000 × 3 + 2000 × 0.30 + 500 × 3.75 + 200 × 15 = 8475 µUSD (7975 with writes as input).
    Vector {
        what: "anthropic cache reads and writes",
        provider: "claude",
        model: "claude-3-5-sonnet-20241022",
        usage: [3_500, 200, 2_000, 500],
        pico: 8_475_000_000,
        charge: 8_475,
        counted: 8_475,
    },
    // 12 × 0.25 + 20 × 0.03 + 3 × 0.30 + 4 × 1.25 = 9.5 µUSD.
    Vector {
        what: "a fraction of a micro-USD",
        provider: "claude",
        model: "claude-3-5-haiku-20241022",
        usage: [35, 4, 20, 3],
        pico: 9_500_000,
        charge: 10,
        counted: 9,
    },
    // A dated snapshot is priced as its model: 600 × 0.15 + 400 × 0.075 + 100 × 0.6 = 180.
    Vector {
        what: "openai cached input, dated snapshot",
        provider: "openai",
        model: "gpt-4o-mini-2024-07-18",
        usage: [1_000, 100, 400, 0],
        pico: 180_000_000,
        charge: 180,
        counted: 180,
    },
    // 10 × 0.075 = 0.75 µUSD.
    Vector {
        what: "less than a micro-USD",
        provider: "gemini-flash",
        model: "gemini-1.5-flash",
        usage: [10, 0, 0, 0],
        pico: 750_000,
        charge: 1,
        counted: 0,
    },
];

const BUDGET: u64 = 1_000_000;

fn budget_config() -> BudgetConfig {
    BudgetConfig {
        policies: vec![BudgetPolicy {
            name: "spend".into(),
            routes: vec![],
            key: vec!["client".into()],
            anonymous: false,
            buckets: vec![BucketLimit {
                unit: BudgetUnit::MicroUsd,
                max_tokens: BUDGET,
                tokens_per_fill: BUDGET,
                fill_interval_ms: 86_400_000,
            }],
        }],
        // As the generator writes them from the (built-in) pricing table.
        prices: pricing::budget_prices(&pricing::guide_prices()),
        ..BudgetConfig::default()
    }
}

fn recorder() -> Recorder {
    Recorder::new(&MetricsConfig {
        providers: BTreeMap::from([
            ("claude".to_string(), "anthropic".to_string()),
            ("openai".to_string(), "openai".to_string()),
            ("gemini-flash".to_string(), "gemini".to_string()),
        ]),
        ..MetricsConfig::default()
    })
    .unwrap()
}

#[test]
fn a_dollar_bucket_is_charged_the_metrics_cost_rounded_up() {
    for v in VECTORS {
        let [input, output, cached, written] = v.usage;
        let usage = TokenUsage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_tokens: written,
        };

        // The metrics stage: its price table and its cost counter.
        let mut metrics = recorder();
        let response = ResponseFacts {
            status: 200,
            provider: Some(v.provider.into()),
            model: Some(v.model.into()),
            usage: Some(usage),
            answered_by: Answerer::Upstream,
            ttfb_ms: Some(10),
            complete: true,
            finishes: None,
        };
        let kind = metrics.provider_label(&response);
        let prices = metrics.prices().price(&kind, v.model).unwrap();
        let pico = cost_pico_usd(&prices, &BilledTokens::from_usage(&usage));
        assert_eq!(pico, v.pico, "{}: metrics cost", v.what);
        let request = RequestFacts {
            model: Some(v.model.into()),
            ..RequestFacts::default()
        };
        let counted: u64 = metrics
            .finish(&request, &response, 1)
            .iter()
            .filter(|o| o.metric == Metric::Cost)
            .map(|o| o.value)
            .sum();
        assert_eq!(counted, v.counted, "{}: cost counter", v.what);

        // The budget stage: reserve, then settle the same usage.
        let config = budget_config();
        let budget = Budget::new(&config).unwrap();
        let store = MemoryStore::default();
        Ledger::new(&store, config.slots).prepare().unwrap();
        let accounts = budget
            .accounts(&budget.applicable(None), |p| {
                (*p == KeyPart::Client).then(|| "team".to_string())
            })
            .unwrap();
        let Reserve::Admitted(r) =
            budget.reserve(&store, &accounts, Some(v.model), 100, Some(100), 0)
        else {
            panic!("{}: not admitted", v.what)
        };
        let s = budget.settle(
            &store,
            &accounts,
            &r,
            Outcome::Usage(usage),
            Some(v.model),
            1,
        );
        assert_eq!(s.charged_usd, v.charge, "{}: budget charge", v.what);
        assert_eq!(
            u128::from(s.charged_usd),
            pico.div_ceil(1_000_000),
            "{}: the charge is the metrics cost rounded up",
            v.what
        );
        let level = Ledger::new(&store, config.slots)
            .update(&accounts[0].name, &config.policies[0].buckets, 1, |b| {
                (b[0].level, false)
            })
            .unwrap()
            .0;
        assert_eq!(
            level,
            (BUDGET - v.charge) as i64,
            "{}: bucket level",
            v.what
        );
    }
}
