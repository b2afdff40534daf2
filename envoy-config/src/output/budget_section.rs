//! The budget stage's section of the pipeline configuration, from the plan: one budget policy
//! per TrafficPolicy `spec.rateLimit.local` and descriptor, shared by every HTTPRoute the
//! TrafficPolicy targets (a user's budget is one, whichever of those routes they call).

use crate::model::traffic_policy::{BucketUnit, TokenBucket};
use crate::plan::Plan;
use std::collections::BTreeMap;
use tollgate_core::config::budget::{BucketLimit, BudgetPolicy, BudgetUnit, ModelPrice};
use tollgate_core::config::BudgetConfig;

/// The section, or `None` when no policy asks for the budget stage (it then does not run).
pub fn section(plan: &Plan) -> Option<BudgetConfig> {
    // TrafficPolicy name -> (its buckets, the routes it targets), in name order.
    let mut by_policy: BTreeMap<&str, (&[TokenBucket], Vec<&str>)> = BTreeMap::new();
    for (route, policies) in &plan.route_policies {
        for (name, buckets) in &policies.token_budgets {
            let entry = by_policy
                .entry(name.as_str())
                .or_insert((buckets.as_slice(), Vec::new()));
            entry.1.push(route.as_str());
        }
    }
    if by_policy.is_empty() {
        return None;
    }
    let mut config = BudgetConfig::default();
    for (name, (buckets, routes)) in by_policy {
        // A caller without the claim is anonymous only where the route lets a request without
        // a token in (an optional JWT requirement); elsewhere such a request is a 401.
        let anonymous = routes.iter().any(|route| {
            plan.route_policies
                .get(*route)
                .and_then(|p| p.jwt.as_ref())
                .and_then(|requirement| plan.jwt_requirements.get(requirement))
                .is_some_and(|r| r.optional)
        });
        // Buckets keyed alike share one account (reserved in one atomic update).
        let mut groups: Vec<(Vec<String>, Vec<BucketLimit>)> = Vec::new();
        for bucket in buckets {
            let limit = BucketLimit {
                unit: match bucket.unit {
                    BucketUnit::Tokens => BudgetUnit::Tokens,
                    BucketUnit::Requests => BudgetUnit::Requests,
                    BucketUnit::Cost => BudgetUnit::MicroUsd,
                },
                max_tokens: bucket.max_tokens,
                tokens_per_fill: bucket.tokens_per_fill,
                fill_interval_ms: bucket.fill_interval.millis,
            };
            let keys: Vec<Vec<String>> = if bucket.descriptors.is_empty() {
                vec![Vec::new()]
            } else {
                bucket
                    .descriptors
                    .iter()
                    .map(|d| d.entries.iter().map(|e| e.value.clone()).collect())
                    .collect()
            };
            for key in keys {
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, limits)) => limits.push(limit),
                    None => groups.push((key, vec![limit])),
                }
            }
        }
        let several = groups.len() > 1;
        for (i, (key, buckets)) in groups.into_iter().enumerate() {
            config.policies.push(BudgetPolicy {
                name: if several {
                    format!("{name}-{i}")
                } else {
                    name.to_string()
                },
                routes: routes.iter().map(|r| r.to_string()).collect(),
                // No descriptor: one budget shared by every caller of the routes.
                anonymous: anonymous || key.is_empty(),
                key,
                buckets,
            });
        }
    }
    let priced = config
        .policies
        .iter()
        .flat_map(|p| &p.buckets)
        .any(|b| b.unit == BudgetUnit::MicroUsd);
    if priced {
        config.prices = prices(plan);
    }
    Some(config)
}

/// The pricing table in micro-USD per million tokens, one row per model (the dearest when
/// two providers price one model).
fn prices(plan: &Plan) -> Vec<ModelPrice> {
    let micro = |usd: f64| (usd * 1_000_000.0).round().max(0.0) as u64;
    let mut by_model: BTreeMap<String, ModelPrice> = BTreeMap::new();
    for price in &plan.metrics.prices {
        let row = ModelPrice {
            model: price.model.clone(),
            input: micro(price.input),
            output: micro(price.output),
            cached_input: price.cached_input.map(micro),
        };
        by_model
            .entry(price.model.clone())
            .and_modify(|known| {
                known.input = known.input.max(row.input);
                known.output = known.output.max(row.output);
                known.cached_input = match (known.cached_input, row.cached_input) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            })
            .or_insert(row);
    }
    by_model.into_values().collect()
}
