//! The metrics stage's section of [`super::DownstreamConfig`] (filled in by the metrics issue).

use serde::{Deserialize, Serialize};

/// Configuration of the metrics stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {}
