//! The cache stage's section of [`super::DownstreamConfig`] (filled in by the cache issue).

use serde::{Deserialize, Serialize};

/// Configuration of the cache stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {}
