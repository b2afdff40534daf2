//! Rendering the plan: the Envoy bootstrap, Istio WasmPlugins, Prometheus rules and the
//! Kubernetes objects passed through.

pub mod envoy;
pub mod istio;
pub mod kubernetes;
pub mod pricing;
pub mod prometheus;

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
    /// Admin port (0 = any).
    pub admin_port: u16,
    /// CA bundle for upstream TLS.
    pub ca_file: String,
    /// URL prefix of the .wasm files in Istio WasmPlugins (`oci://...` or `file:///...`).
    pub istio_wasm_url: String,
}

impl Default for OutputOptions {
    fn default() -> Self {
        Self {
            wasm_dir: "build/wasm".to_string(),
            listen_address: "0.0.0.0".to_string(),
            listen_port: 10000,
            admin_address: "127.0.0.1".to_string(),
            admin_port: 9901,
            ca_file: "/etc/ssl/certs/ca-certificates.crt".to_string(),
            istio_wasm_url: "file:///var/local/lib/tollgate/wasm/".to_string(),
        }
    }
}

/// Serializes a JSON value as YAML.
pub fn to_yaml(value: &serde_json::Value) -> String {
    serde_norway::to_string(value).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
}
