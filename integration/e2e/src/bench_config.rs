//! The benchmark's configs, from the generator: `scripts/bench/gateway.yaml` rendered for the
//! side-by-side benchmark (`src/bin/bench.rs`) and, as the pipeline's configuration alone, for
//! the host benchmark of the same chain (`filters/tollgate/benches/chain.rs`).

use crate::{wasm_dir, workspace_root};
use serde_json::Value;
use std::collections::BTreeMap;
use tollgate_config::output::{FilterForm, OutputOptions};
use tollgate_config::plan::PlanOptions;
use tollgate_config::render::{render, InputFile, RenderRequest};
use tollgate_config::secrets::{env_variable, parse_env_file, SecretStore, SECRETS_ENV_FILE};

type Error = Box<dyn std::error::Error>;

/// The benchmark's input: one OpenAI provider behind one route, every capability on.
pub const GATEWAY_INPUT: &str = "scripts/bench/gateway.yaml";

/// The route name Envoy gives the benchmark's one route (`xds.route_name`).
pub const ROUTE_NAME: &str = "bench-route/0/0";

/// The host calls one request of the benchmark chain makes (a cache miss that stores into an
/// empty slot), by name: held against tollgate.wasm by `pipeline_in_host.rs` and against the
/// probe filter's `replay` by `probe_replay.rs`, so the benchmark's `replay` row prices what the
/// chain does. 43 in all.
pub const CHAIN_HOST_CALLS: [(&str, u64); 10] = [
    ("proxy_set_property", 1),
    ("proxy_get_property", 2),
    ("proxy_get_shared_data", 4),
    ("proxy_set_shared_data", 4),
    ("proxy_get_header_map_pairs", 2),
    ("proxy_get_buffer_bytes", 2),
    ("proxy_replace_header_map_value", 4),
    ("proxy_increment_metric", 14),
    ("proxy_record_metric", 3),
    ("proxy_get_current_time_nanoseconds", 7),
];

/// Renders the benchmark input in one form on the given ports: (envoy.yaml as JSON, Envoy's
/// environment from secrets.env).
pub fn generate(
    form: FilterForm,
    mock_url: &str,
    ports: (u16, u16, u16),
) -> Result<(Value, Vec<(String, String)>), Error> {
    let root = workspace_root();
    let request = RenderRequest {
        inputs: vec![InputFile {
            name: GATEWAY_INPUT.to_string(),
            text: std::fs::read_to_string(root.join(GATEWAY_INPUT))?,
        }],
        plan: PlanOptions {
            secrets: SecretStore {
                dir: None,
                env: BTreeMap::from([(env_variable("bench-secret", None), "sk-bench".to_string())]),
            },
            endpoints: BTreeMap::from([("bench-openai".to_string(), mock_url.to_string())]),
            health_check_path: None,
        },
        output: OutputOptions {
            wasm_dir: wasm_dir().display().to_string(),
            listen_address: "127.0.0.1".to_string(),
            listen_port: ports.0,
            admin_address: "127.0.0.1".to_string(),
            admin_port: ports.1,
            stats_address: "127.0.0.1".to_string(),
            stats_port: Some(ports.2),
            filters: form,
            ..Default::default()
        },
        pricing: None,
    };
    let files = render(&request).map_err(|e| e.to_string())?;
    let envoy: Value =
        serde_norway::from_str(&files.get("envoy.yaml").ok_or("no envoy.yaml")?.text)?;
    let env = files
        .get(SECRETS_ENV_FILE)
        .map(|f| parse_env_file(&f.text))
        .unwrap_or_default();
    Ok((envoy, env))
}

/// The combined pipeline filter's configuration (`root_id: tollgate`) in the benchmark's
/// generated envoy.yaml, as the JSON text Envoy hands the plugin.
pub fn pipeline_configuration() -> Result<String, Error> {
    let (envoy, _) = generate(FilterForm::Combined, "http://127.0.0.1:9", (1, 2, 3))?;
    let mut found = None;
    find_root(&envoy, "tollgate", &mut found);
    let config = found.ok_or("no tollgate filter in the benchmark's envoy.yaml")?;
    match &config["configuration"]["value"] {
        Value::String(text) => Ok(text.clone()),
        other => Ok(other.to_string()),
    }
}

fn find_root<'a>(value: &'a Value, root_id: &str, found: &mut Option<&'a Value>) {
    match value {
        Value::Object(map) => {
            if map.get("root_id").and_then(Value::as_str) == Some(root_id)
                && map.contains_key("configuration")
            {
                *found = Some(value);
                return;
            }
            map.values().for_each(|v| find_root(v, root_id, found));
        }
        Value::Array(items) => items.iter().for_each(|v| find_root(v, root_id, found)),
        _ => {}
    }
}
