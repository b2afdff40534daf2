//! The cache stage's section of the pipeline configuration, from the plan: the guide's
//! `response-cache` (a `caching` TrafficPolicy on an LLM HTTPRoute), `tool-cache` (`caching`
//! with `rules` on an MCP HTTPRoute) and `semantic-cache` (`ai.semanticCache`), per targeted
//! HTTPRoute.

use crate::error::{ConfigError, Location};
use crate::model::traffic_policy::Caching;
use crate::plan::Plan;
use tollgate_cache::key::JsonPath;
use tollgate_core::config::cache::{
    CacheMode, KeyConfig, ResponseCachePolicy, StoreLimits, ToolCachePolicy, ToolCacheRule,
    DEFAULT_MAX_SIZE_BYTES, DEFAULT_TOOL_TTL_MS, DEFAULT_TTL_MS,
};
use tollgate_core::config::cache::{
    SemanticCachePolicy, DEFAULT_SEMANTIC_MAX_ENTRY_BYTES, DEFAULT_SEMANTIC_TIMEOUT_MS,
    DEFAULT_SEMANTIC_TTL_MS,
};
use tollgate_core::config::{CacheConfig, RouteKind};

/// The section, or `None` when no policy asks for the cache stage (it then does not run).
pub fn section(plan: &Plan) -> Option<CacheConfig> {
    let mut config = CacheConfig::default();
    add_caching(plan, &mut config);
    add_semantic(plan, &mut config);
    (config != CacheConfig::default()).then_some(config)
}

/// The semantic cache of every HTTPRoute an enabled `spec.ai.semanticCache` targets: calls to
/// the cluster the plan made for its Service (`plan.services`), the guide's threshold and ttl.
fn add_semantic(plan: &Plan, config: &mut CacheConfig) {
    for (route, policies) in &plan.route_policies {
        let Some(semantic) = policies.semantic_cache.as_ref().filter(|s| s.enabled) else {
            continue;
        };
        // The plan made a service for every semanticCache backend it accepted.
        let Some(service) = plan.services.get(&semantic.backend.name) else {
            continue;
        };
        config.routes.entry(route.clone()).or_default().semantic = Some(SemanticCachePolicy {
            cluster: service.cluster.clone(),
            authority: service.address.authority(),
            timeout_ms: DEFAULT_SEMANTIC_TIMEOUT_MS,
            similarity_threshold: semantic.similarity_threshold,
            ttl_ms: semantic.ttl.map_or(DEFAULT_SEMANTIC_TTL_MS, |d| d.millis),
            max_entry_bytes: DEFAULT_SEMANTIC_MAX_ENTRY_BYTES,
        });
    }
}

/// The response or tool-result cache of every HTTPRoute an enabled `spec.caching` targets: a
/// tool-result cache on MCP routes (or when the policy has `rules`), a response cache else.
fn add_caching(plan: &Plan, config: &mut CacheConfig) {
    use crate::model::traffic_policy::CacheMode as GuideMode;
    for (route, policies) in &plan.route_policies {
        let Some(caching) = policies.caching.as_ref().filter(|c| c.enabled) else {
            continue;
        };
        let kind = plan
            .routes
            .iter()
            .find(|r| &r.name == route)
            .map(|r| r.scope.kind);
        let store = StoreLimits {
            max_size_bytes: caching
                .max_size
                .map_or(DEFAULT_MAX_SIZE_BYTES, |q| {
                    u64::try_from(q.units()).unwrap_or(u64::MAX)
                })
                .max(1),
            ..StoreLimits::default()
        };
        let entry = config.routes.entry(route.clone()).or_default();
        if kind == Some(RouteKind::Mcp) || !caching.rules.is_empty() {
            entry.tools = Some(ToolCachePolicy {
                rules: caching
                    .rules
                    .iter()
                    .map(|rule| {
                        let enabled = rule.enabled.unwrap_or(true);
                        ToolCacheRule {
                            json_path: rule.matcher.json_path.clone(),
                            values: rule.matcher.values.clone(),
                            ttl_ms: enabled
                                .then(|| rule.ttl.map_or(DEFAULT_TOOL_TTL_MS, |d| d.millis)),
                            enabled,
                        }
                    })
                    .collect(),
                headers: caching
                    .key_generator
                    .as_ref()
                    .map(|k| k.headers.clone())
                    .unwrap_or_default(),
                store,
            });
        } else {
            let key = caching.key_generator.as_ref();
            entry.response = Some(ResponseCachePolicy {
                mode: match caching.mode {
                    Some(GuideMode::Aggressive) => CacheMode::Aggressive,
                    Some(GuideMode::Safe) | None => CacheMode::Safe,
                },
                ttl_ms: caching.ttl.map_or(DEFAULT_TTL_MS, |d| d.millis),
                key: KeyConfig {
                    headers: key.map(|k| k.headers.clone()).unwrap_or_default(),
                    json_paths: key
                        .and_then(|k| k.body.as_ref())
                        .map(|b| b.json_paths.clone())
                        .unwrap_or_default(),
                },
                store,
            });
        }
    }
}

/// Checks a `spec.caching` section as the filter will read it: JSON paths it can select
/// (`$.a`, `$['a.b']`, `$.a[0]`), header names, positive sizes and lifetimes.
pub fn check(caching: &Caching, at: &Location, errors: &mut Vec<ConfigError>) {
    let mut path_error = |field: String, path: &str| {
        if let Err(e) = JsonPath::parse(path) {
            errors.push(ConfigError::new(
                at.at(field),
                format!("{} (got {path:?})", e.reason),
            ));
        }
    };
    if let Some(key) = &caching.key_generator {
        if let Some(body) = &key.body {
            for (i, path) in body.json_paths.iter().enumerate() {
                path_error(
                    format!("spec.caching.keyGenerator.body.jsonPaths[{i}]"),
                    path,
                );
            }
        }
    }
    for (i, rule) in caching.rules.iter().enumerate() {
        path_error(
            format!("spec.caching.rules[{i}].match.jsonPath"),
            &rule.matcher.json_path,
        );
    }
    if let Some(key) = &caching.key_generator {
        for (i, name) in key.headers.iter().enumerate() {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                errors.push(ConfigError::new(
                    at.at(format!("spec.caching.keyGenerator.headers[{i}]")),
                    format!("expected a header name, got {name:?}"),
                ));
            }
        }
    }
    if caching.max_size.is_some_and(|q| q.units() == 0) {
        errors.push(ConfigError::new(
            at.at("spec.caching.maxSize"),
            "must be above 0",
        ));
    }
    if caching.ttl.is_some_and(|d| d.millis == 0) {
        errors.push(ConfigError::new(
            at.at("spec.caching.ttl"),
            "must be longer than 0s",
        ));
    }
}
