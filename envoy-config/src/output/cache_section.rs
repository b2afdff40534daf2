//! The cache stage's section of the pipeline configuration, from the plan (filled in by the
//! cache issue).

use crate::plan::Plan;
use tollgate_core::config::CacheConfig;

/// The section, or `None` when no policy asks for the cache stage (it then does not run).
pub fn section(_plan: &Plan) -> Option<CacheConfig> {
    None
}
