//! The budget stage's section from TrafficPolicies: the guide's `token-budget`, kgateway's
//! spelling, dollar buckets priced by the table, one budget across the routes a policy targets,
//! and descriptor values the stage cannot read refused with their path.

use tollgate_config::output::budget_section::section;
use tollgate_config::output::pricing;
use tollgate_config::plan::{Plan, PlanOptions};
use tollgate_config::render::{plan, InputFile, RenderRequest};
use tollgate_config::secrets::SecretStore;
use tollgate_core::config::budget::{BucketLimit, BudgetUnit};

fn input(path: &str) -> InputFile {
    InputFile {
        name: path.to_string(),
        text: std::fs::read_to_string(path).unwrap(),
    }
}

fn inline(name: &str, text: &str) -> InputFile {
    InputFile {
        name: name.to_string(),
        text: text.to_string(),
    }
}

fn request(inputs: Vec<InputFile>) -> RenderRequest {
    RenderRequest {
        inputs,
        plan: PlanOptions {
            secrets: SecretStore {
                dir: Some("tests/fixtures/secrets".into()),
                env: Default::default(),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

fn planned(inputs: Vec<InputFile>) -> Plan {
    let (_, _, mut plan) = plan(&request(inputs)).unwrap_or_else(|e| panic!("{e}"));
    plan.metrics.prices = pricing::parse("guide-prices.yaml", pricing::GUIDE_PRICES).unwrap();
    plan
}

fn guide_with_fixture() -> Vec<InputFile> {
    vec![
        input("guide/02-trafficpolicy-token-budget.yaml"),
        input("tests/fixtures/budget.yaml"),
    ]
}

const MINUTE: u64 = 60_000;

#[test]
fn the_guide_token_budget_is_two_token_buckets_per_jwt_subject_on_its_route() {
    let config = section(&planned(guide_with_fixture())).unwrap();
    let guide = config
        .policies
        .iter()
        .find(|p| p.name == "token-budget")
        .unwrap();
    assert_eq!(guide.routes, vec!["llm-routes"]);
    assert_eq!(guide.key, vec!["jwt.sub"]);
    assert!(
        !guide.anonymous,
        "the route requires a JWT: no anonymous budget"
    );
    assert_eq!(
        guide.buckets,
        vec![
            BucketLimit {
                unit: BudgetUnit::Tokens,
                max_tokens: 1_000_000,
                tokens_per_fill: 1_000_000,
                fill_interval_ms: 24 * 60 * MINUTE,
            },
            BucketLimit {
                unit: BudgetUnit::Tokens,
                max_tokens: 10_000,
                tokens_per_fill: 10_000,
                fill_interval_ms: MINUTE,
            },
        ]
    );
    tollgate_budget_accepts(&config);
}

/// What the generator writes, the stage loads.
fn tollgate_budget_accepts(config: &tollgate_core::config::BudgetConfig) {
    let json = serde_json::to_string(config).unwrap();
    let back: tollgate_core::config::BudgetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, config);
}

#[test]
fn an_optional_jwt_makes_callers_without_a_token_share_the_anonymous_budget() {
    let mut inputs: Vec<InputFile> = std::fs::read_dir("guide")
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .map(|p| input(&p))
        .collect();
    inputs.sort_by(|a, b| a.name.cmp(&b.name));
    inputs.push(input("examples/companion.yaml"));
    let config = section(&planned(inputs)).unwrap();
    assert_eq!(config.policies.len(), 1);
    assert!(config.policies[0].anonymous);
}

#[test]
fn a_cost_bucket_counts_micro_usd_priced_by_the_table() {
    let config = section(&planned(guide_with_fixture())).unwrap();
    let short = config
        .policies
        .iter()
        .find(|p| p.name == "short-budget")
        .unwrap();
    assert_eq!(short.buckets[1].unit, BudgetUnit::MicroUsd);
    assert_eq!(short.buckets[1].max_tokens, 5_000_000);
    let mini = config
        .prices
        .iter()
        .find(|p| p.model == "gpt-4o-mini")
        .unwrap();
    assert_eq!((mini.input, mini.output), (150_000, 600_000));
    let haiku = config
        .prices
        .iter()
        .find(|p| p.model == "claude-3-5-haiku-20241022")
        .unwrap();
    assert_eq!(
        (haiku.cached_input, haiku.cache_write),
        (Some(30_000), Some(300_000))
    );
}

const ROUTES: &str = r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: Backend
metadata: {name: chat}
spec:
  type: AI
  ai:
    priorityGroups:
      - providers:
          - name: gpt
            openai: {model: gpt-4o-mini, authToken: {kind: SecretRef, secretRef: {name: openai-secret}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  rules: [{matches: [{path: {value: /a}}], backendRefs: [{name: chat}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b}
spec:
  rules: [{matches: [{path: {value: /b}}], backendRefs: [{name: chat}]}]
"#;

fn with_policy(policy: &str) -> Vec<InputFile> {
    vec![inline("routes.yaml", ROUTES), inline("policy.yaml", policy)]
}

#[test]
fn kgateway_spelling_is_one_request_bucket_shared_by_the_route() {
    let config = section(&planned(with_policy(
        r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: kg}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: a}]
  rateLimit:
    local:
      tokenBucket: {maxTokens: 10, fillInterval: 1s}
"#,
    )))
    .unwrap();
    let p = &config.policies[0];
    assert_eq!(p.name, "kg");
    assert!(p.key.is_empty() && p.anonymous);
    assert_eq!(
        p.buckets,
        vec![BucketLimit {
            unit: BudgetUnit::Requests,
            max_tokens: 10,
            tokens_per_fill: 1,
            fill_interval_ms: 1_000,
        }]
    );
}

#[test]
fn one_policy_on_two_routes_is_one_budget_across_them() {
    let config = section(&planned(with_policy(
        r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: shared}
spec:
  targetRefs:
    - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: a}
    - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: b}
  rateLimit:
    local:
      - {maxTokens: 100, tokensPerFill: 100, fillInterval: 1m, type: tokens,
         descriptors: [{entries: [{key: team, value: header.x-team}]}]}
      - {maxTokens: 5, tokensPerFill: 5, fillInterval: 1m, type: requests,
         descriptors: [{entries: [{key: ip, value: source.address}]}]}
"#,
    )))
    .unwrap();
    assert_eq!(config.policies.len(), 2, "one budget per descriptor");
    for p in &config.policies {
        assert_eq!(p.routes, vec!["a", "b"]);
    }
    assert_eq!(config.policies[0].key, vec!["header.x-team"]);
    assert_eq!(config.policies[1].key, vec!["source.address"]);
    assert!(config.prices.is_empty(), "no cost bucket, no prices");
}

fn error_of(policy: &str) -> String {
    match plan(&request(with_policy(policy))) {
        Ok(_) => panic!("the policy must be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn descriptor_values_the_stage_cannot_read_are_refused_with_their_path() {
    let e = error_of(
        r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: bad}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: a}]
  rateLimit:
    local:
      - {maxTokens: 1, tokensPerFill: 1, fillInterval: 1m, type: tokens,
         descriptors: [{entries: [{key: s, value: cookie.session}]}]}
"#,
    );
    assert!(
        e.contains("spec.rateLimit.local[0].descriptors[0].entries[0].value"),
        "{e}"
    );
    assert!(e.contains("cookie.session"), "{e}");
}

#[test]
fn unknown_fields_in_kgateway_spelling_are_errors_with_their_path() {
    let e = error_of(
        r#"
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: bad}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: a}]
  rateLimit:
    local:
      tokenBucket: {maxTokens: 1, fillInterval: 1s, burst: 3}
"#,
    );
    assert!(e.contains("spec.rateLimit.local"), "{e}");
    assert!(e.contains("burst"), "{e}");
}

#[test]
fn a_global_budget_calls_the_budget_service_with_its_cluster_and_deployment() {
    let plan = planned(vec![input("tests/fixtures/budget-global.yaml")]);
    let config = section(&plan).unwrap();
    let global = config.global.unwrap();
    assert_eq!(global.cluster, "service/budget-service");
    assert_eq!(global.authority, "budget-service:8090");
    assert_eq!(global.timeout_ms, 500);
    assert!(!global.fail_open);
    let files =
        tollgate_config::render::render(&request(vec![input("tests/fixtures/budget-global.yaml")]))
            .unwrap();
    assert!(files["envoy.yaml"].text.contains("service/budget-service"));
    let k8s = &files["kubernetes/budget-service.yaml"].text;
    assert!(
        k8s.contains("kind: Deployment") && k8s.contains("kind: Service"),
        "{k8s}"
    );
    assert!(k8s.contains("TOLLGATE_BUDGET_REDIS"), "{k8s}");
}

#[test]
fn the_local_tier_has_no_budget_service() {
    let config = section(&planned(guide_with_fixture())).unwrap();
    assert_eq!(config.global, None);
    let files = tollgate_config::render::render(&request(guide_with_fixture())).unwrap();
    assert!(!files.contains_key("kubernetes/budget-service.yaml"));
}

#[test]
fn a_policy_naming_only_the_budget_service_moves_the_guide_budget_there() {
    let mut inputs = guide_with_fixture();
    inputs.push(input("examples/global-budget.yaml"));
    let config = section(&planned(inputs)).unwrap();
    let global = config.global.unwrap();
    assert_eq!(global.cluster, "service/budget-service");
    assert_eq!(global.timeout_ms, 250);
    assert!(config.policies.iter().any(|p| p.name == "token-budget"));
    assert!(
        config.policies.iter().all(|p| p.name != "global-budget"),
        "no buckets, no budget of its own"
    );
}
