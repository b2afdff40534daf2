//! The added latency of the global budget tier at a fixed rate: the same gateway
//! (`envoy-config/tests/fixtures/budget-global.yaml`, budgets too large to refuse) with its
//! buckets in the budget service + a real `redis-server` (global tier), and with the `global`
//! block removed (local tier: shared data), both answered by the OpenAI mock. oha sends
//! RATE req/s for SECONDS and prints p50/p99 of each (latency correction on).
//!
//!   cargo build --release -p tollgate-budget-service -p tollgate-e2e --bin budget_global_latency
//!   target/release/budget_global_latency [RATE] [SECONDS]
//!
//! Needs redis-server (scripts/setup installs it) and oha (`.tools/bin/oha`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_config::secrets::{parse_env_file, SECRETS_ENV_FILE};
use tollgate_e2e::gateway::{render_files, GatewaySpec, Ports};
use tollgate_e2e::{free_port, workspace_root, Envoy};
use tollgate_mock::{spawn, Kind, MockConfig};

type Error = Box<dyn std::error::Error>;

const KEY: &str = "sk-global-latency";

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{what} did not start on {port}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn gateway(input: &Path, mock_url: &str, service: Option<u16>) -> Result<(Envoy, u16), Error> {
    let mut spec = GatewaySpec {
        inputs: vec![input.display().to_string()],
        ..Default::default()
    }
    .endpoint("gpt", mock_url)
    .secret("openai-secret", KEY);
    if let Some(port) = service {
        spec = spec.endpoint("budget-service", format!("http://127.0.0.1:{port}"));
    }
    let ports = Ports::free();
    let files = render_files(&spec, ports)?;
    let env = parse_env_file(&files[SECRETS_ENV_FILE].text);
    let envoy = Envoy::start_with_env(&files["envoy.yaml"].text, &["--concurrency", "2"], &env)?;
    Ok((envoy, ports.listen))
}

/// (p50, p99) in ms at `rate` req/s, and the count of answers that were not 200.
fn oha(port: u16, rate: u32, seconds: u32) -> Result<(f64, f64, u64), Error> {
    let oha = workspace_root().join(".tools/bin/oha");
    let body = r#"{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Say hello"}]}"#;
    let out = Command::new(oha)
        .args([
            "--no-tui",
            "--output-format",
            "json",
            "--latency-correction",
        ])
        .args([
            "-z",
            &format!("{seconds}s"),
            "-c",
            "32",
            "-q",
            &rate.to_string(),
        ])
        .args([
            "-m",
            "POST",
            "-H",
            "content-type: application/json",
            "-H",
            "x-user: alice",
        ])
        .args(["-d", body])
        .arg(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .output()?;
    if !out.status.success() {
        return Err(format!("oha failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let pct = |k: &str| {
        report["latencyPercentiles"][k]
            .as_f64()
            .map_or(f64::NAN, |s| s * 1000.0)
    };
    let not_ok: u64 = report["statusCodeDistribution"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(code, _)| code.as_str() != "200")
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    Ok((pct("p50"), pct("p99"), not_ok))
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let rate: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let root = workspace_root();

    // Budgets that never refuse, in both tiers.
    let global_text =
        std::fs::read_to_string(root.join("envoy-config/tests/fixtures/budget-global.yaml"))?
            .replace("maxTokens: 10000", "maxTokens: 1000000000000")
            .replace("tokensPerFill: 10000", "tokensPerFill: 1000000000000");
    let local_text: String = {
        let start = global_text.find("    global:").ok_or("no global block")?;
        global_text[..start].to_string()
    };
    let dir: PathBuf = root.join("target/budget-global-latency");
    std::fs::create_dir_all(&dir)?;
    let (global_file, local_file) = (dir.join("global.yaml"), dir.join("local.yaml"));
    std::fs::write(&global_file, &global_text)?;
    std::fs::write(&local_file, &local_text)?;

    let redis_port = free_port();
    let _redis = Process(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_for_port(redis_port, "redis-server")?;
    let service_port = free_port();
    let service_bin = root.join("target/release/tollgate-budget-service");
    let _service = Process(
        Command::new(&service_bin)
            .args(["--listen", &format!("127.0.0.1:{service_port}")])
            .args(["--redis", &format!("redis://127.0.0.1:{redis_port}")])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "{}: {e} (cargo build --release -p tollgate-budget-service)",
                    service_bin.display()
                )
            })?,
    );
    wait_for_port(service_port, "the budget service")?;
    let mut config = MockConfig::new(Kind::Openai, "127.0.0.1:0".parse()?);
    config.api_key = Some(KEY.to_string());
    let mock = spawn(config)?;

    println!("budget tier latency at {rate} req/s for {seconds} s (oha -c 32, latency correction; one user)");
    println!("| tier | p50 ms | p99 ms | non-200 |");
    println!("|---|---:|---:|---:|");
    let mut results = Vec::new();
    let tiers = [
        ("local (shared data)", &local_file, None),
        (
            "global (budget service + Redis)",
            &global_file,
            Some(service_port),
        ),
    ];
    for (tier, file, service) in tiers {
        let (_envoy, port) = gateway(file, &mock.base_url(), service)?;
        oha(port, rate, 1)?; // warm-up: connections, VMs
        let (p50, p99, not_ok) = oha(port, rate, seconds)?;
        println!("| {tier} | {p50:.3} | {p99:.3} | {not_ok} |");
        results.push((p50, p99));
    }
    if let [(l50, l99), (g50, g99)] = results.as_slice() {
        println!(
            "global − local: p50 {:+.3} ms, p99 {:+.3} ms",
            g50 - l50,
            g99 - l99
        );
    }
    Ok(())
}
