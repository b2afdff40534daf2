//! `EndpointOverrides` (ours, `tollgate.dev/v1alpha1`): points providers and services at other
//! addresses without editing the documented configs, e.g. the local mocks on
//! `http://127.0.0.1:PORT`. The `--endpoint NAME=URL` flag does the same from the command line.

use serde::Deserialize;
use std::collections::BTreeMap;

/// `spec` of EndpointOverrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointOverridesSpec {
    /// Provider name (in any Backend), static host, or Service name -> `http[s]://host:port[/prefix]`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Path for HTTP health checks of load-balanced Backends that name none (the mocks serve
    /// `/__mock/health`).
    #[serde(default)]
    pub health_check_path: Option<String>,
}
