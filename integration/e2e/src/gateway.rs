//! A whole gateway for a test: the generator renders the given YAML inputs (guide blocks,
//! examples, test fixtures) with endpoints pointed at the test's mocks, and a real Envoy serves it.

use crate::{free_port, wasm_dir, workspace_root, Envoy, EnvoyError};
use std::collections::BTreeMap;
use tollgate_config::output::OutputOptions;
use tollgate_config::plan::PlanOptions;
use tollgate_config::render::{render, InputFile, OutputFile, RenderRequest};
use tollgate_config::secrets::{env_variable, parse_env_file, SecretStore, SECRETS_ENV_FILE};

/// What to render: inputs, endpoint overrides and secret values.
#[derive(Debug, Default, Clone)]
pub struct GatewaySpec {
    /// Input files, relative to the repository root (e.g. `envoy-config/examples/companion.yaml`).
    pub inputs: Vec<String>,
    /// Provider / Backend / host name -> URL (e.g. `local-llama` -> `http://127.0.0.1:4321`).
    pub endpoints: BTreeMap<String, String>,
    /// Secret name -> value of its default key (e.g. `openai-secret` -> `sk-test`).
    pub secrets: BTreeMap<String, String>,
    /// Health-check path for backends whose policy names none.
    pub health_check_path: Option<String>,
    /// Metric names (`--metrics-naming`).
    pub metrics_naming: tollgate_core::config::metrics::MetricNaming,
}

impl GatewaySpec {
    /// Every guide block plus the companion file, as the README's stack uses them.
    pub fn guide_and_companion() -> Self {
        let root = workspace_root();
        let mut inputs: Vec<String> = std::fs::read_dir(root.join("envoy-config/guide"))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| format!("envoy-config/guide/{}", e.file_name().to_string_lossy()))
                    .filter(|name| name.ends_with(".yaml"))
                    .collect()
            })
            .unwrap_or_default();
        inputs.sort();
        inputs.push("envoy-config/examples/companion.yaml".to_string());
        GatewaySpec {
            inputs,
            ..Default::default()
        }
    }

    /// Points a provider (or Backend, host, Service) at a URL.
    pub fn endpoint(mut self, name: &str, url: impl Into<String>) -> Self {
        self.endpoints.insert(name.to_string(), url.into());
        self
    }

    /// Gives a Secret's value.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.to_string(), value.to_string());
        self
    }
}

/// A running gateway: the generated config served by a real Envoy.
pub struct Gateway {
    /// The Envoy serving it (admin, stats, logs).
    pub envoy: Envoy,
    /// The listener port.
    pub port: u16,
    /// The stats listener's port (`/stats/prometheus`, `/ready`).
    pub stats_port: u16,
    /// Every file the generator wrote, by name (`envoy.yaml`, `secrets.env`, ...).
    pub files: BTreeMap<String, OutputFile>,
}

/// The loopback ports of one gateway.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Listener.
    pub listen: u16,
    /// Admin (fixed: the stats listener forwards to it).
    pub admin: u16,
    /// Stats listener.
    pub stats: u16,
}

impl Ports {
    /// Three distinct ports that were free a moment ago.
    pub fn free() -> Ports {
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            if port != 0 && !ports.contains(&port) {
                ports.push(port);
            }
        }
        Ports {
            listen: ports[0],
            admin: ports[1],
            stats: ports[2],
        }
    }
}

impl Gateway {
    /// Renders the spec and starts Envoy on free loopback ports, with the provider keys of
    /// `secrets.env` in its environment, as `scripts/up` and the container entrypoint do.
    pub fn start(spec: &GatewaySpec) -> Result<Gateway, EnvoyError> {
        let ports = Ports::free();
        let files = render_files(spec, ports)?;
        let yaml = &files
            .get("envoy.yaml")
            .ok_or_else(|| std::io::Error::other("the generator wrote no envoy.yaml"))?
            .text;
        let env = files
            .get(SECRETS_ENV_FILE)
            .map(|f| parse_env_file(&f.text))
            .unwrap_or_default();
        let envoy = Envoy::start_with_env(yaml, &[], &env)?;
        Ok(Gateway {
            envoy,
            port: ports.listen,
            stats_port: ports.stats,
            files,
        })
    }

    /// URL of a path on the gateway's listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// URL of a path on the stats listener.
    pub fn stats_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.stats_port)
    }
}

/// A JWT the companion's `jwt-auth` policy accepts (issuer `https://auth.tollgate.dev`,
/// audience `tollgate`, `sub: e2e-edges`, expires in 2100), signed with the development key
/// `envoy-config/tests/fixtures/dev-jwt-private.pem`. Minted once with
/// `openssl dgst -sha256 -sign dev-jwt-private.pem` over `base64url(header).base64url(claims)`
/// and kept in `integration/e2e/tests/fixtures/dev-jwt.txt`.
pub fn dev_jwt() -> Result<String, EnvoyError> {
    let path = workspace_root().join("integration/e2e/tests/fixtures/dev-jwt.txt");
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

/// An RS256 JWT for `sub` and `audience`, valid for `expires_in` seconds from now (negative:
/// already expired), signed with the companion's development key
/// (`envoy-config/tests/fixtures/dev-jwt-private.pem`, the fixtures' JWKS) by
/// `openssl dgst -sha256 -sign`.
pub fn mint_dev_jwt(sub: &str, audience: &str, expires_in: i64) -> Result<String, EnvoyError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let header = base64url(br#"{"alg":"RS256","typ":"JWT","kid":"tollgate-dev"}"#);
    let claims = base64url(
        format!(
            r#"{{"iss":"https://auth.tollgate.dev","aud":"{audience}","sub":"{sub}","iat":{now},"exp":{}}}"#,
            now + expires_in
        )
        .as_bytes(),
    );
    let signing_input = format!("{header}.{claims}");
    let key = workspace_root().join("envoy-config/tests/fixtures/dev-jwt-private.pem");
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = openssl.stdin.take() {
        stdin.write_all(signing_input.as_bytes())?;
    }
    let signed = openssl.wait_with_output()?;
    if !signed.status.success() {
        return Err(std::io::Error::other("openssl dgst -sha256 -sign failed").into());
    }
    Ok(format!("{signing_input}.{}", base64url(&signed.stdout)))
}

/// Unpadded base64url (JWT segments).
fn base64url(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Renders the spec's envoy.yaml with the listener on `port` (admin and stats on free ports).
pub fn render_envoy_yaml(spec: &GatewaySpec, port: u16) -> Result<String, EnvoyError> {
    let ports = Ports {
        listen: port,
        ..Ports::free()
    };
    let files = render_files(spec, ports)?;
    files
        .get("envoy.yaml")
        .map(|f| f.text.clone())
        .ok_or_else(|| std::io::Error::other("the generator wrote no envoy.yaml").into())
}

/// Renders every file of the spec on the given loopback ports.
pub fn render_files(
    spec: &GatewaySpec,
    ports: Ports,
) -> Result<BTreeMap<String, OutputFile>, EnvoyError> {
    let root = workspace_root();
    // The module the config loads, rebuilt first if it is older than its sources.
    crate::wasm_path("tollgate")?;
    let mut inputs = Vec::new();
    for name in &spec.inputs {
        inputs.push(InputFile {
            name: name.clone(),
            text: std::fs::read_to_string(root.join(name))?,
        });
    }
    let env = spec
        .secrets
        .iter()
        .map(|(name, value)| (env_variable(name, None), value.clone()))
        .collect();
    let request = RenderRequest {
        inputs,
        plan: PlanOptions {
            secrets: SecretStore { dir: None, env },
            endpoints: spec.endpoints.clone(),
            health_check_path: spec.health_check_path.clone(),
        },
        output: OutputOptions {
            wasm_dir: wasm_dir().display().to_string(),
            listen_address: "127.0.0.1".to_string(),
            listen_port: ports.listen,
            admin_address: "127.0.0.1".to_string(),
            admin_port: ports.admin,
            stats_address: "127.0.0.1".to_string(),
            stats_port: Some(ports.stats),
            metrics_naming: spec.metrics_naming,
            ..Default::default()
        },
        pricing: None,
    };
    Ok(render(&request).map_err(|e| std::io::Error::other(e.to_string()))?)
}
