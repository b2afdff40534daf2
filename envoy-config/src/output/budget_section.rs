//! The budget stage's section of the pipeline configuration, from the plan: one budget policy
//! per TrafficPolicy `spec.rateLimit.local` and descriptor, shared by every HTTPRoute the
//! TrafficPolicy targets (a user's budget is one, whichever of those routes they call).

use crate::model::traffic_policy::{BucketUnit, TokenBucket};
use crate::plan::Plan;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tollgate_core::config::budget::{
    BucketLimit, BudgetPolicy, BudgetUnit, GlobalBudget, ModelPrice,
};
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
    config.global = plan.budget_service.as_ref().and_then(|b| {
        let service = plan.services.get(&b.service)?;
        Some(GlobalBudget {
            cluster: service.cluster.clone(),
            authority: service.address.authority(),
            timeout_ms: b.timeout.map_or(DEFAULT_SERVICE_TIMEOUT_MS, |t| t.millis),
            fail_open: b.fail_open,
        })
    });
    Some(config)
}

/// Budget service call timeout when `spec.rateLimit.global.timeout` sets none.
pub const DEFAULT_SERVICE_TIMEOUT_MS: u64 = 200;

/// Port the budget service listens on in its container.
pub const SERVICE_PORT: u16 = 8090;

/// The budget service's Deployment and Service (`kubernetes/budget-service.yaml`), when a
/// policy keeps its budgets in it: stateless, so it scales like the gateway; the Redis it
/// uses comes from `TOLLGATE_BUDGET_REDIS` (any Redis or Valkey; set it to yours).
pub fn service_manifests(plan: &Plan) -> Option<Vec<Value>> {
    let budget = plan.budget_service.as_ref()?;
    let port = plan.services.get(&budget.service)?.address.port;
    let name = &budget.service;
    let labels = json!({"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "tollgate"});
    Some(vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "budget-service",
                        "image": "tollgate-budget-service:latest",
                        "args": ["--listen", format!("0.0.0.0:{SERVICE_PORT}")],
                        "env": [{"name": "TOLLGATE_BUDGET_REDIS", "value": "redis://redis:6379"}],
                        "ports": [{"name": "http", "containerPort": SERVICE_PORT}],
                        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "failureThreshold": 6},
                        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                    }]},
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "selector": {"app.kubernetes.io/name": name},
                "ports": [{"name": "http", "port": port, "targetPort": "http"}],
            },
        }),
    ])
}

/// The pricing table in micro-USD per million tokens, one row per model (the dearest when
/// two providers price one model), made by core so the budget charges what the metrics count.
fn prices(plan: &Plan) -> Vec<ModelPrice> {
    let rows: Vec<_> = plan
        .metrics
        .prices
        .iter()
        .map(|p| p.to_model_price())
        .collect();
    tollgate_core::pricing::budget_prices(&rows)
}
