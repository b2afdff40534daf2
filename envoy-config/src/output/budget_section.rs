//! The budget stage's section of the pipeline configuration, from the plan (filled in by the
//! budget issue).

use crate::plan::Plan;
use tollgate_core::config::BudgetConfig;

/// The section, or `None` when no policy asks for the budget stage (it then does not run).
pub fn section(_plan: &Plan) -> Option<BudgetConfig> {
    None
}
