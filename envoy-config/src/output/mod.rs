//! Rendering the plan: the Envoy bootstrap, Istio WasmPlugins, Prometheus rules and the
//! Kubernetes objects passed through.

pub mod budget_section;
pub mod cache_section;
pub mod compression;
pub mod envoy;
pub mod istio;
pub mod kubernetes;
pub mod metrics_section;
pub mod native_upstream;
pub mod pricing;
pub mod prometheus;

/// Default port of the stats listener (admin's 9901 + 1).
pub const DEFAULT_STATS_PORT: u16 = 9902;

/// Settings of the rendered files that the YAML does not carry.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    /// Folder holding `tollgate.wasm` etc., as Envoy will see it.
    pub wasm_dir: String,
    /// Listener address.
    pub listen_address: String,
    /// Listener port.
    pub listen_port: u16,
    /// Admin address (keep it on loopback).
    pub admin_address: String,
    /// Admin port (0 = any; then no stats listener can forward to it).
    pub admin_port: u16,
    /// Address of the stats listener, the only port Prometheus needs: it serves
    /// `/stats/prometheus` and `/ready` from admin and nothing else.
    pub stats_address: String,
    /// Port of the stats listener; `None`: no stats listener.
    pub stats_port: Option<u16>,
    /// Proxies in front of Envoy whose `x-forwarded-for` entries are trusted (HCM
    /// `xff_num_trusted_hops`); 0 when clients connect directly.
    pub xff_num_trusted_hops: u32,
    /// CA bundle for upstream TLS.
    pub ca_file: String,
    /// URL prefix of the .wasm files in Istio WasmPlugins (`oci://...` or `file:///...`).
    pub istio_wasm_url: String,
    /// One pipeline filter (the default) or one filter per capability.
    pub filters: FilterForm,
    /// Metric names: the guide's (`agentgateway_*`, default) or OpenTelemetry GenAI's.
    pub metrics_naming: tollgate_core::config::metrics::MetricNaming,
    /// gzip for clients that accept it, by Envoy's compressor (see [`compression`]); on by
    /// default, `--no-compression` leaves the filter out.
    pub compression: bool,
}

/// How the downstream capabilities are loaded into Envoy (and Istio).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilterForm {
    /// One wasm filter, `root_id: tollgate`, running every configured stage: one VM crossing
    /// per phase for the whole chain.
    #[default]
    Combined,
    /// One wasm filter per configured capability (`router`, `cache`, `budget`, `metrics`, in
    /// that order), for users who place or drop capabilities one by one.
    Separate,
}

impl std::str::FromStr for FilterForm {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "combined" => Ok(Self::Combined),
            "separate" => Ok(Self::Separate),
            other => Err(format!(
                "--filters wants combined or separate, got {other:?}"
            )),
        }
    }
}

impl Default for OutputOptions {
    fn default() -> Self {
        Self {
            wasm_dir: "build/wasm".to_string(),
            listen_address: "0.0.0.0".to_string(),
            listen_port: 10000,
            admin_address: "127.0.0.1".to_string(),
            admin_port: 9901,
            stats_address: "0.0.0.0".to_string(),
            stats_port: Some(DEFAULT_STATS_PORT),
            xff_num_trusted_hops: 0,
            ca_file: "/etc/ssl/certs/ca-certificates.crt".to_string(),
            istio_wasm_url: "file:///var/local/lib/tollgate/wasm/".to_string(),
            filters: FilterForm::Combined,
            metrics_naming: Default::default(),
            compression: true,
        }
    }
}

/// Serializes a JSON value as YAML.
pub fn to_yaml(value: &serde_json::Value) -> String {
    serde_norway::to_string(value).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::FilterForm;

    #[test]
    fn filters_flag_reads_combined_and_separate_and_names_the_choices_otherwise() {
        assert_eq!("combined".parse(), Ok(FilterForm::Combined));
        assert_eq!("separate".parse(), Ok(FilterForm::Separate));
        let error = "split".parse::<FilterForm>().unwrap_err();
        assert!(error.contains("combined or separate"), "{error}");
        assert!(error.contains("\"split\""), "{error}");
    }
}
