//! The cache stage's section of the pipeline configuration, from the plan (filled in by the
//! cache issue).

use crate::plan::Plan;
use tollgate_core::config::cache::{
    SemanticCachePolicy, DEFAULT_SEMANTIC_MAX_ENTRY_BYTES, DEFAULT_SEMANTIC_TIMEOUT_MS,
    DEFAULT_SEMANTIC_TTL_MS,
};
use tollgate_core::config::CacheConfig;

/// The section, or `None` when no policy asks for the cache stage (it then does not run).
pub fn section(plan: &Plan) -> Option<CacheConfig> {
    let mut config = CacheConfig::default();
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
