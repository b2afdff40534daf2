//! The budget stage's decisions natively (no VM): one request's reservation and reconciliation
//! against the in-memory store (the guide's two buckets), and the cap spliced into a body.
//!
//! `cargo bench -p tollgate-budget --bench decisions`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tollgate_budget::ledger::Ledger;
use tollgate_budget::{body, Budget, KeyPart, Outcome, Reserve};
use tollgate_core::config::budget::{BucketLimit, BudgetConfig, BudgetPolicy, BudgetUnit};
use tollgate_core::stage::MemoryStore;
use tollgate_core::usage::TokenUsage;

fn decisions(c: &mut Criterion) {
    let bucket = |interval| BucketLimit {
        unit: BudgetUnit::Tokens,
        max_tokens: 1 << 60,
        tokens_per_fill: 1 << 60,
        fill_interval_ms: interval,
    };
    let config = BudgetConfig {
        policies: vec![BudgetPolicy {
            name: "token-budget".into(),
            routes: vec![],
            key: vec!["jwt.sub".into()],
            anonymous: false,
            buckets: vec![bucket(86_400_000), bucket(60_000)],
        }],
        ..BudgetConfig::default()
    };
    let budget = Budget::new(&config).unwrap();
    let store = MemoryStore::default();
    Ledger::new(&store, config.slots).prepare().unwrap();
    let usage = TokenUsage {
        input_tokens: 10,
        output_tokens: 2,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
    };
    let mut group = c.benchmark_group("budget");
    group.bench_function("reserve_and_settle", |b| {
        let mut now = 0u64;
        b.iter(|| {
            now += 1;
            let policies = budget.applicable(None);
            let accounts = budget
                .accounts(&policies, |p| {
                    matches!(p, KeyPart::Jwt(_)).then(|| "alice".to_string())
                })
                .unwrap();
            let Reserve::Admitted(r) = budget.reserve(&store, &accounts, None, 120, None, now)
            else {
                panic!("admitted")
            };
            black_box(budget.settle(&store, &accounts, &r, Outcome::Usage(usage), None, now));
        })
    });
    let chat = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}"#;
    group.bench_function("cap_output", |b| {
        b.iter(|| black_box(body::cap_output(black_box(chat), 4096)))
    });
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
