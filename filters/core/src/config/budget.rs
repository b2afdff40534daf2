//! The budget stage's section of [`super::DownstreamConfig`] (filled in by the budget issue).

use serde::{Deserialize, Serialize};

/// Configuration of the budget stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {}
