//! The metrics stage's glue (filled in by the metrics issue; decisions in `tollgate-metrics`).

use super::Stage;
use std::rc::Rc;
use tollgate_core::config::MetricsConfig;

/// Per-VM state of the metrics stage.
pub struct MetricsRoot {
    #[allow(dead_code)]
    config: MetricsConfig,
}

impl MetricsRoot {
    /// The stage's root from its configuration section; an error fails plugin configuration.
    pub fn new(config: &MetricsConfig) -> Result<Self, String> {
        Ok(Self {
            config: config.clone(),
        })
    }
}

/// Per-request state of the metrics stage.
pub struct MetricsStage {
    #[allow(dead_code)]
    root: Rc<MetricsRoot>,
}

impl MetricsStage {
    /// The stage's part of a new request.
    pub fn new(root: &Rc<MetricsRoot>) -> Self {
        Self {
            root: Rc::clone(root),
        }
    }
}

impl Stage for MetricsStage {}
