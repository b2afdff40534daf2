//! The metrics stage's section of the pipeline configuration, from the plan (filled in by the
//! metrics issue).

use crate::plan::Plan;
use tollgate_core::config::MetricsConfig;

/// The section, or `None` when no policy asks for the metrics stage (it then does not run).
pub fn section(_plan: &Plan) -> Option<MetricsConfig> {
    None
}
