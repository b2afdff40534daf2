//! The budget's decisions on a virtual clock against the in-memory store.

use super::*;
use tollgate_core::config::budget::{BudgetPolicy, ModelPrice};
use tollgate_core::stage::MemoryStore;
use tollgate_core::usage::TokenUsage;

const MINUTE: u64 = 60_000;
const DAY: u64 = 24 * 60 * MINUTE;

fn tokens(max: u64, interval: u64) -> BucketLimit {
    BucketLimit {
        unit: BudgetUnit::Tokens,
        max_tokens: max,
        tokens_per_fill: max,
        fill_interval_ms: interval,
    }
}

/// The guide's policy: 1M tokens a day and 10K a minute per `jwt.sub`.
fn guide() -> BudgetConfig {
    BudgetConfig {
        policies: vec![BudgetPolicy {
            name: "token-budget".into(),
            routes: vec!["llm-routes".into()],
            key: vec!["jwt.sub".into()],
            anonymous: false,
            buckets: vec![tokens(1_000_000, DAY), tokens(10_000, MINUTE)],
        }],
        ..BudgetConfig::default()
    }
}

struct World {
    budget: Budget,
    store: MemoryStore,
}

impl World {
    fn new(config: BudgetConfig) -> Self {
        let budget = Budget::new(&config).unwrap();
        let store = MemoryStore::default();
        Ledger::new(&store, config.slots).prepare().unwrap();
        World { budget, store }
    }

    fn accounts(&self, user: &str) -> Vec<Account> {
        let policies = self.budget.applicable(Some("llm-routes/0/0"));
        self.budget
            .accounts(&policies, |p| match p {
                KeyPart::Jwt(c) if c == "sub" => Some(user.to_string()),
                KeyPart::Header(_) => Some("red".to_string()),
                _ => None,
            })
            .unwrap()
    }

    fn reserve(&self, user: &str, body: usize, out: Option<u64>, now: u64) -> Reserve {
        self.budget
            .reserve(&self.store, &self.accounts(user), None, body, out, now)
    }

    fn admitted(&self, user: &str, body: usize, out: Option<u64>, now: u64) -> Reservation {
        match self.reserve(user, body, out, now) {
            Reserve::Admitted(r) => r,
            other => panic!("expected admission, got {other:?}"),
        }
    }

    fn settle(&self, user: &str, r: &Reservation, outcome: Outcome, now: u64) -> Settlement {
        self.budget
            .settle(&self.store, &self.accounts(user), r, outcome, None, now)
    }

    /// Levels of the user's buckets.
    fn levels(&self, user: &str, now: u64) -> Vec<i64> {
        let accounts = self.accounts(user);
        let policy = &self.budget.policies[accounts[0].policy];
        Ledger::new(&self.store, self.budget.config.slots)
            .update(&accounts[0].name, &policy.buckets, now, |b| {
                (b.iter().map(|s| s.level).collect(), false)
            })
            .unwrap()
            .0
    }
}

fn usage(input: u64, output: u64) -> Outcome {
    Outcome::Usage(TokenUsage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
    })
}

#[test]
fn a_reservation_takes_input_estimate_plus_output_cap_from_every_bucket() {
    let w = World::new(guide());
    let r = w.admitted("alice", 300, Some(200), 0);
    assert_eq!(r.estimate.input, 300);
    assert_eq!(r.estimate.output, 200);
    assert_eq!(w.levels("alice", 0), vec![1_000_000 - 500, 10_000 - 500]);
    let h = r.headers.unwrap();
    assert_eq!((h.limit, h.remaining), (10_000, 9_500));
    assert_eq!(h.reset_ms, MINUTE);
}

#[test]
fn the_real_usage_replaces_the_reservation() {
    let w = World::new(guide());
    let r = w.admitted("alice", 300, Some(200), 0);
    let s = w.settle("alice", &r, usage(40, 60), 10);
    assert_eq!(s.charged.total(), 100);
    assert_eq!(s.overshoot, 0);
    assert_eq!(w.levels("alice", 10), vec![1_000_000 - 100, 10_000 - 100]);
}

#[test]
fn the_input_estimate_is_body_bytes_over_the_configured_ratio_rounded_up() {
    let mut config = guide();
    config.input_bytes_per_token = 3;
    let w = World::new(config);
    assert_eq!(w.budget.estimate(10, None), (4, 4096));
    assert_eq!(w.budget.estimate(9, Some(7)), (3, 7));
}

#[test]
fn without_a_client_cap_the_default_output_is_reserved() {
    let w = World::new(guide());
    let r = w.admitted("alice", 100, None, 0);
    assert_eq!(r.estimate.output, 4096);
}

#[test]
fn the_output_is_clamped_to_what_the_tightest_bucket_has_left() {
    let w = World::new(guide());
    let first = w.admitted("alice", 1_000, Some(8_000), 0);
    assert_eq!(first.estimate.output, 8_000);
    // 1 000 left in the minute bucket: 400 input leaves 600 output.
    let second = w.admitted("alice", 400, Some(4_096), 1);
    assert_eq!(second.estimate.output, 600);
    assert_eq!(w.levels("alice", 1)[1], 0);
}

#[test]
fn a_request_that_cannot_fit_is_refused_with_when_it_will() {
    let w = World::new(guide());
    let _ = w.admitted("alice", 2_000, Some(8_000), 0);
    let Reserve::Refused(refusal) = w.reserve("alice", 500, Some(100), 20_000) else {
        panic!("expected a refusal")
    };
    assert_eq!(refusal.policy, "token-budget");
    assert_eq!(refusal.limit.max_tokens, 10_000);
    assert_eq!(refusal.retry_after_ms, Some(40_000));
    let h = refusal.headers.unwrap();
    assert_eq!((h.limit, h.remaining, h.reset_ms), (10_000, 0, 40_000));
    // Nothing was taken by the refused request.
    assert_eq!(w.levels("alice", 20_000), vec![1_000_000 - 10_000, 0]);
    // Another user is not affected.
    let _ = w.admitted("bob", 500, Some(100), 20_000);
}

#[test]
fn the_refusal_is_a_429_in_the_openai_format_with_the_headers() {
    let w = World::new(guide());
    let _ = w.admitted("alice", 2_000, Some(8_000), 0);
    let Reserve::Refused(refusal) = w.reserve("alice", 500, Some(100), 20_500) else {
        panic!("expected a refusal")
    };
    let reply = refusal_reply(&refusal);
    assert_eq!(reply.status, 429);
    let header = |n: &str| {
        reply
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("retry-after"), Some("40")); // 39.5 s, rounded up
    assert_eq!(header("x-ratelimit-limit-tokens"), Some("10000"));
    assert_eq!(header("x-ratelimit-remaining-tokens"), Some("0"));
    assert_eq!(header("x-ratelimit-reset-tokens"), Some("39.5s"));
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["type"], "tokens");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[test]
fn a_refused_user_is_admitted_again_on_the_interval_edge() {
    let w = World::new(guide());
    let _ = w.admitted("alice", 2_000, Some(8_000), 0);
    assert!(matches!(
        w.reserve("alice", 500, Some(100), MINUTE - 1),
        Reserve::Refused(_)
    ));
    let _ = w.admitted("alice", 500, Some(100), MINUTE);
}

#[test]
fn a_request_larger_than_a_bucket_has_no_retry_after() {
    let w = World::new(guide());
    let Reserve::Refused(refusal) = w.reserve("alice", 10_001, Some(10), 0) else {
        panic!("expected a refusal")
    };
    assert_eq!(refusal.retry_after_ms, None);
    let reply = refusal_reply(&refusal);
    assert!(reply.headers.iter().all(|(k, _)| k != "retry-after"));
}

#[test]
fn the_daily_bucket_refuses_once_spent_and_refills_after_24_hours() {
    let mut config = guide();
    config.policies[0].buckets = vec![tokens(1_000, DAY)];
    let w = World::new(config);
    let r = w.admitted("alice", 100, Some(900), 0);
    w.settle("alice", &r, usage(100, 900), 1);
    assert!(matches!(
        w.reserve("alice", 10, Some(1), DAY - 1),
        Reserve::Refused(Refusal {
            retry_after_ms: Some(1),
            ..
        })
    ));
    let _ = w.admitted("alice", 10, Some(1), DAY);
}

#[test]
fn refunds_give_the_whole_reservation_back() {
    let w = World::new(guide());
    let r = w.admitted("alice", 300, Some(200), 0);
    let s = w.settle("alice", &r, Outcome::Refund, 5);
    assert_eq!(s.dropped, 0);
    assert_eq!(w.levels("alice", 5), vec![1_000_000, 10_000]);
}

#[test]
fn an_answer_without_usage_stays_charged_its_reservation() {
    let w = World::new(guide());
    let r = w.admitted("alice", 300, Some(200), 0);
    let s = w.settle("alice", &r, Outcome::Unreconciled, 5);
    assert_eq!(s.charged.total(), 500);
    assert_eq!(w.levels("alice", 5), vec![1_000_000 - 500, 10_000 - 500]);
}

#[test]
fn usage_above_the_reservation_is_charged_as_a_debt_and_reported() {
    let mut config = guide();
    config.input_bytes_per_token = 4;
    let w = World::new(config);
    let r = w.admitted("alice", 400, Some(100), 0); // reserves 100 + 100
    let s = w.settle("alice", &r, usage(150, 100), 1);
    assert_eq!(s.overshoot, 50);
    assert_eq!(w.levels("alice", 1)[1], 10_000 - 250);
}

#[test]
fn which_answers_refund_which_charge_and_which_stay_charged() {
    let base = ResponseFacts {
        status: 200,
        ttfb_ms: Some(5),
        complete: true,
        ..ResponseFacts::default()
    };
    let u = TokenUsage {
        input_tokens: 1,
        output_tokens: 2,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
    };
    let cases: Vec<(&str, ResponseFacts, Outcome)> = vec![
        (
            "usage",
            ResponseFacts {
                usage: Some(u),
                ..base.clone()
            },
            Outcome::Usage(u),
        ),
        (
            "cache hit",
            ResponseFacts {
                answered_by: Answerer::Cache,
                usage: Some(u),
                ..base.clone()
            },
            Outcome::Refund,
        ),
        (
            "gateway reply",
            ResponseFacts {
                answered_by: Answerer::Gateway,
                status: 400,
                ..base.clone()
            },
            Outcome::Refund,
        ),
        (
            "reset before any answer",
            ResponseFacts {
                status: 0,
                ttfb_ms: None,
                complete: false,
                ..base.clone()
            },
            Outcome::Refund,
        ),
        (
            "timeout (Envoy's 504)",
            ResponseFacts {
                status: 504,
                complete: false,
                ..base.clone()
            },
            Outcome::Refund,
        ),
        (
            "a reset stream after usage",
            ResponseFacts {
                usage: Some(u),
                complete: false,
                ..base.clone()
            },
            Outcome::Usage(u),
        ),
        (
            "a stream that ended without usage",
            base.clone(),
            Outcome::Unreconciled,
        ),
    ];
    for (name, facts, expected) in cases {
        assert_eq!(Outcome::of(&facts), expected, "{name}");
    }
}

#[test]
fn several_buckets_must_all_pass() {
    let mut config = guide();
    config.policies[0].buckets = vec![
        tokens(1_000, MINUTE),
        BucketLimit {
            unit: BudgetUnit::Requests,
            max_tokens: 2,
            tokens_per_fill: 2,
            fill_interval_ms: MINUTE,
        },
    ];
    let w = World::new(config);
    let _ = w.admitted("alice", 10, Some(10), 0);
    let _ = w.admitted("alice", 10, Some(10), 0);
    let Reserve::Refused(refusal) = w.reserve("alice", 10, Some(10), 0) else {
        panic!("the request bucket must refuse the third request")
    };
    assert_eq!(refusal.limit.unit, BudgetUnit::Requests);
    assert_eq!(refusal_reason(&refusal), "requests");
}

fn mini() -> ModelPrice {
    ModelPrice {
        model: "gpt-4o-mini".into(),
        input: 150_000,
        output: 600_000,
        cached_input: Some(75_000),
        cache_write: None,
    }
}

fn dollars(micro: u64) -> BudgetConfig {
    BudgetConfig {
        policies: vec![BudgetPolicy {
            name: "spend".into(),
            routes: vec![],
            key: vec!["client".into()],
            anonymous: false,
            buckets: vec![BucketLimit {
                unit: BudgetUnit::MicroUsd,
                max_tokens: micro,
                tokens_per_fill: micro,
                fill_interval_ms: DAY,
            }],
        }],
        prices: vec![
            mini(),
            ModelPrice {
                model: "gpt-4o".into(),
                input: 2_500_000,
                output: 10_000_000,
                cached_input: None,
                cache_write: None,
            },
        ],
        ..BudgetConfig::default()
    }
}

fn client_accounts(w: &World) -> Vec<Account> {
    w.budget
        .accounts(&w.budget.applicable(None), |p| {
            (*p == KeyPart::Client).then(|| "team-a".to_string())
        })
        .unwrap()
}

#[test]
fn a_dollar_bucket_reserves_at_the_model_price_and_charges_cached_input_apart() {
    let w = World::new(dollars(1_000_000)); // $1
    let accounts = client_accounts(&w);
    let Reserve::Admitted(r) = w.budget.reserve(
        &w.store,
        &accounts,
        Some("gpt-4o-mini"),
        1_000,
        Some(1_000),
        0,
    ) else {
        panic!("expected admission")
    };
    // 1000 × 0.15 + 1000 × 0.6 = 750 micro-USD.
    assert_eq!(r.holds[0].amounts, vec![750]);
    let s = w.budget.settle(
        &w.store,
        &accounts,
        &r,
        Outcome::Usage(TokenUsage {
            input_tokens: 1_000,
            output_tokens: 100,
            cached_input_tokens: 600,
            cache_write_tokens: 0,
        }),
        Some("gpt-4o-mini"),
        1,
    );
    // 400 × 0.15 + 600 × 0.075 + 100 × 0.6 = 60 + 45 + 60 = 165.
    assert_eq!(s.charged_usd, 165);
    assert_eq!(s.reserved_usd, 750);
}

#[test]
fn dated_snapshots_take_their_models_price_and_other_variants_the_dearest() {
    let b = Budget::new(&dollars(1_000)).unwrap();
    let mini = b.price_of(Some("gpt-4o-mini"));
    assert_eq!((mini.input, mini.cached_input), (150_000, 75_000));
    assert_eq!(b.price_of(Some("gpt-4o-mini-2024-07-18")), mini);
    // Not a snapshot of gpt-4o (nor of gpt-4o-mini): priced as the dearest row, never less.
    let dearest = b.price_of(None);
    assert_eq!((dearest.input, dearest.output), (2_500_000, 10_000_000));
    assert_eq!(b.price_of(Some("gpt-4o-mini-tts")), dearest);
}

#[test]
fn a_model_priced_twice_is_refused_with_its_row() {
    let mut config = dollars(1_000);
    config.prices.push(mini());
    let e = Budget::new(&config).unwrap_err();
    assert_eq!(
        e.to_string(),
        "budget.prices[2].model: model \"gpt-4o-mini\" is priced twice"
    );
}

#[test]
fn a_dollar_bucket_clamps_the_output_to_what_is_left() {
    let w = World::new(dollars(1_000)); // $0.001
    let accounts = client_accounts(&w);
    let Reserve::Admitted(r) = w.budget.reserve(
        &w.store,
        &accounts,
        Some("gpt-4o-mini"),
        2_000,
        Some(4_096),
        0,
    ) else {
        panic!("expected admission")
    };
    // 2000 input = 300 micro-USD; 700 left buy 1166 output tokens.
    assert_eq!(r.estimate.output, 1_166);
    assert!(r.holds[0].amounts[0] <= 1_000);
}

#[test]
fn an_unpriced_model_is_reserved_at_the_dearest_price() {
    let w = World::new(dollars(1_000_000));
    let accounts = client_accounts(&w);
    let Reserve::Admitted(r) = w.budget.reserve(
        &w.store,
        &accounts,
        Some("cost-optimized"),
        1_000,
        Some(1_000),
        0,
    ) else {
        panic!("expected admission")
    };
    assert_eq!(r.holds[0].amounts, vec![2_500 + 10_000]);
}

#[test]
fn a_later_policy_that_clamps_harder_lowers_what_the_earlier_one_holds() {
    let mut config = guide();
    config.policies.push(BudgetPolicy {
        name: "team".into(),
        routes: vec![],
        key: vec!["header.x-team".into()],
        anonymous: false,
        buckets: vec![tokens(600, MINUTE)],
    });
    let w = World::new(config);
    let policies = w.budget.applicable(Some("llm-routes/0/0"));
    assert_eq!(policies, vec![0, 1]);
    let accounts = w
        .budget
        .accounts(&policies, |p| match p {
            KeyPart::Jwt(_) => Some("alice".into()),
            KeyPart::Header(h) if h == "x-team" => Some("red".into()),
            _ => None,
        })
        .unwrap();
    let Reserve::Admitted(r) = w
        .budget
        .reserve(&w.store, &accounts, None, 100, Some(4_096), 0)
    else {
        panic!("expected admission")
    };
    assert_eq!(r.estimate.output, 500);
    assert_eq!(w.levels("alice", 0), vec![1_000_000 - 600, 10_000 - 600]);
}

#[test]
fn a_refusal_by_a_later_policy_gives_back_what_the_earlier_took() {
    let mut config = guide();
    config.policies.push(BudgetPolicy {
        name: "team".into(),
        routes: vec![],
        key: vec!["header.x-team".into()],
        anonymous: false,
        buckets: vec![tokens(50, MINUTE)],
    });
    let w = World::new(config);
    let policies = w.budget.applicable(Some("llm-routes/0/0"));
    let accounts = w
        .budget
        .accounts(&policies, |p| match p {
            KeyPart::Jwt(_) => Some("alice".into()),
            _ => Some("red".into()),
        })
        .unwrap();
    assert!(matches!(
        w.budget
            .reserve(&w.store, &accounts, None, 100, Some(10), 0),
        Reserve::Refused(_)
    ));
    assert_eq!(w.levels("alice", 0), vec![1_000_000, 10_000]);
}

#[test]
fn a_caller_without_the_identity_gets_a_401_or_the_anonymous_budget() {
    let w = World::new(guide());
    let missing = w
        .budget
        .accounts(&w.budget.applicable(Some("llm-routes/0/0")), |_| None)
        .unwrap_err();
    assert_eq!(missing.part, "jwt.sub");
    let reply = missing_identity_reply(&missing);
    assert_eq!(reply.status, 401);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");

    let mut config = guide();
    config.policies[0].anonymous = true;
    let w = World::new(config);
    let policies = w.budget.applicable(Some("llm-routes/0/0"));
    let a = w.budget.accounts(&policies, |_| None).unwrap();
    let b = w
        .budget
        .accounts(&policies, |_| Some(String::new()))
        .unwrap();
    assert_eq!(a, b, "every caller without an identity shares one account");
    assert!(a[0].name.ends_with(ANONYMOUS.as_bytes()));
}

#[test]
fn policies_apply_only_to_their_routes() {
    let w = World::new(guide());
    assert_eq!(w.budget.applicable(Some("llm-routes/1/0")), vec![0]);
    assert!(w.budget.applicable(Some("other/0/0")).is_empty());
    assert!(w.budget.applicable(None).is_empty());
}

#[test]
fn bad_configurations_are_refused_with_the_field_path() {
    let cases: Vec<(BudgetConfig, &str)> = vec![
        (
            {
                let mut c = guide();
                c.policies[0].key = vec!["cookie.session".into()];
                c
            },
            "budget.policies[0].key[0]",
        ),
        (
            {
                let mut c = guide();
                c.policies[0].buckets[1].fill_interval_ms = 0;
                c
            },
            "budget.policies[0].buckets[1].fill_interval_ms",
        ),
        (
            {
                let mut c = guide();
                c.policies[0].buckets[0].max_tokens = 0;
                c
            },
            "budget.policies[0].buckets[0].max_tokens",
        ),
        (
            {
                let mut c = guide();
                c.policies[0].buckets[0].unit = BudgetUnit::MicroUsd;
                c
            },
            "budget.policies[0].buckets[0].unit",
        ),
        (
            {
                let mut c = guide();
                c.policies.push(c.policies[0].clone());
                c
            },
            "budget.policies[1].name",
        ),
        (
            BudgetConfig {
                input_bytes_per_token: 0,
                ..guide()
            },
            "budget.input_bytes_per_token",
        ),
    ];
    for (config, path) in cases {
        let e = Budget::new(&config).unwrap_err().to_string();
        assert!(e.starts_with(path), "{e} should start with {path}");
    }
}

#[test]
fn unknown_fields_of_the_section_are_errors() {
    let e = serde_json::from_str::<BudgetConfig>(r#"{"policies":[],"slotz":3}"#).unwrap_err();
    assert!(e.to_string().contains("slotz"), "{e}");
}

#[test]
fn durations_are_spelled_as_openai_does() {
    for (ms, text) in [
        (0, "0ms"),
        (250, "250ms"),
        (6_000, "6s"),
        (39_500, "39.5s"),
        (90_000, "1m30s"),
        (DAY, "24h0m0s"),
    ] {
        assert_eq!(format_duration(ms), text);
    }
}

/// Many interleaved requests never hold more than the budget, whatever the order of their
/// reservations and settlements: the sum charged stays within the bucket.
#[test]
fn interleaved_requests_never_spend_more_than_the_budget() {
    let mut config = guide();
    config.policies[0].buckets = vec![tokens(10_000, DAY)];
    let w = World::new(config);
    let mut open = Vec::new();
    let mut served = 0u64;
    let mut seed = 7u64;
    for step in 0..400u64 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if !seed.is_multiple_of(3) || open.is_empty() {
            if let Reserve::Admitted(r) = w.reserve("alice", 50, Some(400), step) {
                open.push(r);
            }
        } else {
            let r = open.remove((seed as usize / 3) % open.len());
            // The provider uses at most what was reserved (the cap is in the request).
            let out = (seed >> 20) % (r.estimate.output + 1);
            served += 20 + out;
            w.settle("alice", &r, usage(20, out), step);
        }
    }
    for r in open {
        served += 20 + r.estimate.output;
        w.settle("alice", &r, usage(20, r.estimate.output), 500);
    }
    assert!(served <= 10_000, "served {served}");
    assert_eq!(w.levels("alice", 500)[0], 10_000 - served as i64);
}
