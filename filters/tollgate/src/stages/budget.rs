//! The budget stage's glue (filled in by the budget issue; decisions in `tollgate-budget`).

use super::Stage;
use std::rc::Rc;
use tollgate_core::config::BudgetConfig;

/// Per-VM state of the budget stage.
pub struct BudgetRoot {
    #[allow(dead_code)]
    config: BudgetConfig,
}

impl BudgetRoot {
    /// The stage's root from its configuration section; an error fails plugin configuration.
    pub fn new(config: &BudgetConfig) -> Result<Self, String> {
        Ok(Self {
            config: config.clone(),
        })
    }
}

/// Per-request state of the budget stage.
pub struct BudgetStage {
    #[allow(dead_code)]
    root: Rc<BudgetRoot>,
}

impl BudgetStage {
    /// The stage's part of a new request.
    pub fn new(root: &Rc<BudgetRoot>) -> Self {
        Self {
            root: Rc::clone(root),
        }
    }
}

impl Stage for BudgetStage {}
