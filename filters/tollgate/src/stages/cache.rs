//! The cache stage's glue (filled in by the cache issue; decisions in `tollgate-cache`).

use super::Stage;
use std::rc::Rc;
use tollgate_core::config::CacheConfig;

/// Per-VM state of the cache stage.
pub struct CacheRoot {
    #[allow(dead_code)]
    config: CacheConfig,
}

impl CacheRoot {
    /// The stage's root from its configuration section; an error fails plugin configuration.
    pub fn new(config: &CacheConfig) -> Result<Self, String> {
        Ok(Self {
            config: config.clone(),
        })
    }
}

/// Per-request state of the cache stage.
pub struct CacheStage {
    #[allow(dead_code)]
    root: Rc<CacheRoot>,
}

impl CacheStage {
    /// The stage's part of a new request.
    pub fn new(root: &Rc<CacheRoot>) -> Self {
        Self {
            root: Rc::clone(root),
        }
    }
}

impl Stage for CacheStage {}
