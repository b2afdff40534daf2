//! `tollgate-mock`: serves several mock providers from one process until SIGINT or SIGTERM.
//!
//! Prints one line per mock, `tollgate-mock: <kind> <name> listening on http://<addr>`, once
//! every mock accepts connections.

use std::net::SocketAddr;
use std::process::ExitCode;

use tollgate_mock::{spawn, Kind, MockConfig, MockHandle};

const USAGE: &str = "\
Usage: tollgate-mock (--openai|--anthropic|--gemini|--ollama ADDR [OPTIONS])...

Serves one mock LLM provider per --<kind> ADDR (e.g. 127.0.0.1:18001; port 0 picks a free port)
until SIGINT or SIGTERM. Options apply to the mock named just before them:

  --name NAME               name used in answers and the x-mock-name header (default mock-<kind>)
  --api-key KEY             require this key (default: any request is accepted)
  --api-key-env VAR         require the key held by environment variable VAR (keeps it out of ps)
  --status CODE             answer with this error status (400-599): every request, or only the
                            first N with --fail-first N
  --reset-after-chunks N    abort streams after N chunks (whole answers after half the body):
                            every request, or only the first N with --fail-first N
  --reset-before-headers    drop the connection (HTTP/2: reset the stream) without answering:
                            every request, or only the first N with --fail-first N
  --fail-first N            apply --status and the resets to the first N requests only
                            (with none of them, fail those N with 503)
  --gzip                    gzip answers when the request's accept-encoding allows it
  --gzip-regardless         gzip answers whatever the request's accept-encoding says
  --retry-after SECS        Retry-After on injected errors (429 always has one, default 1)
  --latency-ms MS           wait before answering
  --chunk-delay-ms MS       wait between stream chunks

Every mock also serves GET /__mock/health, GET /__mock/received, GET|POST /__mock/faults and
POST /__mock/reset. Per-request faults: header x-mock-fault: status=429;retry-after=2 (also
latency-ms, chunk-delay-ms, reset-after-chunks, reset-before-headers, gzip, gzip-regardless).

Example:
  tollgate-mock --openai 127.0.0.1:18001 --api-key-env OPENAI_KEY \\
                --anthropic 127.0.0.1:18002 --gemini 127.0.0.1:18003 \\
                --ollama 127.0.0.1:18004 --fail-first 2 --status 503
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let configs = match parse_args(&args, |var| std::env::var(var).ok()) {
        Ok(configs) => configs,
        Err(message) => {
            eprintln!("tollgate-mock: {message}\nRun `tollgate-mock --help` for usage.");
            return ExitCode::from(2);
        }
    };

    let mut mocks: Vec<MockHandle> = Vec::new();
    for config in configs {
        let (kind, name) = (config.kind, config.name.clone());
        match spawn(config) {
            Ok(mock) => mocks.push(mock),
            Err(error) => {
                eprintln!("tollgate-mock: cannot start {kind} mock {name}: {error}");
                return ExitCode::FAILURE; // dropping `mocks` stops the ones already started
            }
        }
    }
    for mock in &mocks {
        println!(
            "tollgate-mock: {} {} listening on {}",
            mock.kind(),
            mock.name(),
            mock.base_url()
        );
    }

    if let Err(error) = wait_for_termination() {
        eprintln!("tollgate-mock: cannot wait for signals: {error}");
        return ExitCode::FAILURE;
    }
    for mock in &mut mocks {
        mock.stop();
    }
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_termination() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    })
}

/// Reads the command line into one config per mock. `env` looks up environment variables.
fn parse_args(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<MockConfig>, String> {
    let mut configs: Vec<MockConfig> = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .map(String::as_str)
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        if let Some(kind) = flag.strip_prefix("--").and_then(|k| k.parse::<Kind>().ok()) {
            let addr: SocketAddr = value()?
                .parse()
                .map_err(|_| format!("{flag}: expected an address like 127.0.0.1:18001"))?;
            configs.push(MockConfig::new(kind, addr));
            continue;
        }
        let Some(config) = configs.last_mut() else {
            return Err(format!(
                "{flag} must follow the mock it applies to (--openai ADDR, ...)"
            ));
        };
        let faults = &mut config.faults;
        match flag.as_str() {
            "--name" => config.name = value()?.to_string(),
            "--api-key" => config.api_key = Some(value()?.to_string()),
            "--api-key-env" => {
                let var = value()?;
                let key = env(var).ok_or_else(|| format!("--api-key-env: {var} is not set"))?;
                config.api_key = Some(key);
            }
            "--status" => faults.status = Some(number(flag, value()?)?),
            "--fail-first" => faults.fail_first = number(flag, value()?)?,
            "--retry-after" => faults.retry_after_secs = Some(number(flag, value()?)?),
            "--latency-ms" => faults.latency_ms = number(flag, value()?)?,
            "--chunk-delay-ms" => faults.chunk_delay_ms = number(flag, value()?)?,
            "--reset-after-chunks" => faults.reset_after_chunks = Some(number(flag, value()?)?),
            "--reset-before-headers" => faults.reset_before_headers = true,
            "--gzip" => faults.gzip = true,
            "--gzip-regardless" => faults.gzip_regardless = true,
            _ => return Err(format!("unknown option {flag}")),
        }
        faults
            .validate()
            .map_err(|error| format!("{flag}: {error}"))?;
    }
    if configs.is_empty() {
        return Err("no mock to serve: give at least one --<kind> ADDR".to_string());
    }
    Ok(configs)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: `{value}` is not a valid number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn options_apply_to_the_mock_named_before_them() {
        let configs = parse_args(
            &args(
                "--openai 127.0.0.1:18001 --api-key sk-1 --latency-ms 5 \
                 --ollama 127.0.0.1:0 --fail-first 2 --status 429 --name local \
                 --anthropic 127.0.0.1:0 --reset-before-headers --fail-first 1",
            ),
            no_env,
        )
        .unwrap();
        assert_eq!(configs.len(), 3);
        assert_eq!(configs[0].kind, Kind::Openai);
        assert_eq!(configs[0].api_key.as_deref(), Some("sk-1"));
        assert_eq!(configs[0].faults.latency_ms, 5);
        assert_eq!(configs[0].faults.fail_first, 0);
        assert_eq!(configs[1].kind, Kind::Ollama);
        assert_eq!(configs[1].name, "local");
        assert_eq!(configs[1].faults.fail_first, 2);
        assert_eq!(configs[1].faults.status, Some(429));
        assert!(!configs[1].faults.reset_before_headers);
        assert!(configs[2].faults.reset_before_headers);
        assert_eq!(configs[2].faults.fail_first, 1);
    }

    #[test]
    fn api_key_can_come_from_the_environment() {
        let configs = parse_args(
            &args("--gemini 127.0.0.1:0 --api-key-env GEMINI_KEY"),
            |var| (var == "GEMINI_KEY").then(|| "g-1".to_string()),
        )
        .unwrap();
        assert_eq!(configs[0].api_key.as_deref(), Some("g-1"));
    }

    #[test]
    fn bad_command_lines_are_rejected_with_a_reason() {
        for line in [
            "",
            "--latency-ms 5 --openai 127.0.0.1:0",
            "--openai localhost",
            "--openai",
            "--openai 127.0.0.1:0 --status 200",
            "--openai 127.0.0.1:0 --fail-first many",
            "--openai 127.0.0.1:0 --colour blue",
            "--openai 127.0.0.1:0 --api-key-env MISSING",
        ] {
            assert!(parse_args(&args(line), no_env).is_err(), "accepted: {line}");
        }
    }
}
