//! `tollgate-config`: the generator's command line.
//!
//! ```text
//! tollgate-config render   -f a.yaml [-f b.yaml ...] -o OUT [options]
//! tollgate-config validate -f a.yaml [-f b.yaml ...] [options]
//! tollgate-config explain  -f a.yaml [-f b.yaml ...] [options]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tollgate_config::output::OutputOptions;
use tollgate_config::plan::PlanOptions;
use tollgate_config::render::{self, InputFile, RenderRequest};
use tollgate_config::secrets::SecretStore;
use tollgate_config::{envoy_check, explain};

const USAGE: &str = "usage: tollgate-config <render|validate|explain> -f FILE [-f FILE ...] [options]

  -f, --file FILE            input YAML (multi-document; repeat for several files)
  -o, --out DIR              render: output folder (envoy.yaml, secrets.env 0600 with the provider keys
                             Envoy must have in its environment, istio/, prometheus-rules.yaml, kubernetes/)
      --wasm-dir DIR         folder of tollgate_*.wasm as Envoy sees it (default build/wasm)
      --secrets-dir DIR      mounted Secrets: DIR/<secret-name>/<key> (default key Authorization);
                             else $TOLLGATE_SECRET_<NAME>[_<KEY>]
      --endpoint NAME=URL    point provider/host/Backend/Service NAME at URL (http://127.0.0.1:PORT = no TLS)
      --health-check-path P  HTTP health-check path where a healthCheck names none
      --listen HOST:PORT     listener (default 0.0.0.0:10000)
      --admin HOST:PORT      admin (default 127.0.0.1:9901; keep it on loopback)
      --stats HOST:PORT      stats listener for Prometheus: /stats/prometheus and /ready only (default 0.0.0.0:9902)
      --no-stats             no stats listener
      --xff-trusted-hops N   proxies in front of Envoy whose x-forwarded-for is trusted (default 0)
      --ca-file FILE         CA bundle for upstream TLS (default /etc/ssl/certs/ca-certificates.crt)
      --pricing FILE         pricing table (default: the guide's model matrix)
      --metrics-naming N     agentgateway (default: the guide's agentgateway_* series) or genai
                             (OpenTelemetry GenAI names); the rules follow
      --istio-wasm-url URL   prefix of module URLs in WasmPlugins
      --filters FORM         combined (default: one pipeline filter) or separate (one filter per
                             capability: router, cache, budget, metrics), in envoy.yaml and istio/
      --no-compression       no gzip of JSON answers for clients that accept it (Envoy's compressor)
  validate runs `envoy --mode validate` too when $TOLLGATE_ENVOY, .tools/bin/envoy or envoy on PATH exists,
  and `promtool check rules` when promtool is on PATH.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

struct Command {
    name: String,
    request: RenderRequest,
    out: Option<PathBuf>,
}

fn run(args: &[String]) -> Result<(), String> {
    let command = parse_args(args)?;
    match command.name.as_str() {
        "render" => {
            let out = command.out.ok_or("render needs -o DIR")?;
            let files = render::render(&command.request).map_err(|e| e.to_string())?;
            print_warnings(&command.request)?;
            for (name, file) in &files {
                write_file(&out.join(name), &file.text, file.secret)?;
            }
            eprintln!("wrote {} files to {}", files.len(), out.display());
            Ok(())
        }
        "validate" => {
            let files = render::render(&command.request).map_err(|e| e.to_string())?;
            eprintln!("configuration: ok");
            let Some(envoy) = envoy_check::find_envoy() else {
                eprintln!("envoy: not found ($TOLLGATE_ENVOY, .tools/bin/envoy, PATH); skipped --mode validate");
                return Ok(());
            };
            let text = files
                .get("envoy.yaml")
                .map(|f| f.text.as_str())
                .unwrap_or_default();
            let env = files
                .get(tollgate_config::secrets::SECRETS_ENV_FILE)
                .map(|f| tollgate_config::secrets::parse_env_file(&f.text))
                .unwrap_or_default();
            envoy_check::validate_with_env(&envoy, text, &env)?;
            eprintln!("envoy --mode validate ({}): ok", envoy.display());
            let rules = files
                .get("prometheus-rules.yaml")
                .map(|f| f.text.as_str())
                .unwrap_or_default();
            match envoy_check::promtool_check_rules(rules) {
                Some(result) => {
                    result?;
                    eprintln!("promtool check rules: ok");
                }
                None => eprintln!("promtool: not found; skipped the rules check"),
            }
            Ok(())
        }
        "explain" => {
            let (_, documents, plan) = render::plan(&command.request).map_err(|e| e.to_string())?;
            for warning in explain::warnings(&plan, &command.request.output) {
                println!("{warning}");
            }
            print!(
                "{}",
                explain::format(&explain::explain(&documents, &command.request.plan.secrets))
            );
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// The generator's warnings (e.g. provider keys with no client authentication), on stderr.
fn print_warnings(request: &RenderRequest) -> Result<(), String> {
    let (_, _, plan) = render::plan(request).map_err(|e| e.to_string())?;
    for warning in explain::warnings(&plan, &request.output) {
        eprintln!("{warning}");
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut iter = args.iter();
    let name = match iter.next() {
        Some(name) if name != "-h" && name != "--help" => name.clone(),
        _ => return Err(USAGE.to_string()),
    };
    let mut output = OutputOptions::default();
    let mut inputs = Vec::new();
    let mut out = None;
    let mut secrets_dir = None;
    let mut endpoints = BTreeMap::new();
    let mut health_check_path = None;
    let mut pricing = None;
    while let Some(flag) = iter.next() {
        let mut value = || {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "-f" | "--file" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                inputs.push(InputFile { name: path, text });
            }
            "-o" | "--out" => out = Some(PathBuf::from(value()?)),
            "--wasm-dir" => output.wasm_dir = absolute(&value()?),
            "--secrets-dir" => secrets_dir = Some(PathBuf::from(value()?)),
            "--endpoint" => {
                let pair = value()?;
                let (name, url) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--endpoint wants NAME=URL, got {pair:?}"))?;
                endpoints.insert(name.to_string(), url.to_string());
            }
            "--health-check-path" => health_check_path = Some(value()?),
            "--listen" => (output.listen_address, output.listen_port) = host_port(&value()?)?,
            "--admin" => (output.admin_address, output.admin_port) = host_port(&value()?)?,
            "--stats" => {
                let (address, port) = host_port(&value()?)?;
                output.stats_address = address;
                output.stats_port = Some(port);
            }
            "--no-stats" => output.stats_port = None,
            "--xff-trusted-hops" => {
                let text = value()?;
                output.xff_num_trusted_hops = text
                    .parse()
                    .map_err(|_| format!("--xff-trusted-hops wants a number, got {text:?}"))?;
            }
            "--ca-file" => output.ca_file = value()?,
            "--istio-wasm-url" => output.istio_wasm_url = value()?,
            "--filters" => output.filters = value()?.parse()?,
            "--no-compression" => output.compression = false,
            "--metrics-naming" => {
                output.metrics_naming = match value()?.as_str() {
                    "agentgateway" => tollgate_core::config::metrics::MetricNaming::Agentgateway,
                    "genai" => tollgate_core::config::metrics::MetricNaming::Genai,
                    other => {
                        return Err(format!(
                            "--metrics-naming wants agentgateway or genai, got {other:?}"
                        ))
                    }
                }
            }
            "--pricing" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                pricing = Some(InputFile { name: path, text });
            }
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    if inputs.is_empty() {
        return Err(format!("no input files (-f)\n{USAGE}"));
    }
    let plan = PlanOptions {
        secrets: SecretStore::from_process_env(secrets_dir),
        endpoints,
        health_check_path,
    };
    Ok(Command {
        name,
        request: RenderRequest {
            inputs,
            plan,
            output,
            pricing,
        },
        out,
    })
}

fn host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT, got {text:?}"))?;
    let port = port.parse().map_err(|_| format!("bad port in {text:?}"))?;
    Ok((host.to_string(), port))
}

/// Envoy resolves module paths against its own working directory: make them absolute.
fn absolute(path: &str) -> String {
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mode = if secret { 0o600 } else { 0o644 };
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))
    }
    #[cfg(not(unix))]
    {
        let _ = secret;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
