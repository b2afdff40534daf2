//! The side-by-side load benchmark (issue 9): in one run on loopback, a fast mock provider (an
//! Envoy `direct_response` behind `envoy.filters.http.buffer`, so it reads each body and keeps
//! its connections), plain Envoy (the generated config minus every wasm filter), each capability
//! alone (the separate form with only that filter), the adapter alone, the separate form whole,
//! the combined pipeline (the generator's default) and, with `AGENTGATEWAY_BIN`, agentgateway's
//! LLM route. Every proxy runs with `--concurrency 2`; every config it measures is written to the
//! run folder. Results: printed, and written to `bench/results-<date>.md` and `bench/latest.md`.
//!
//!     cargo run --release -p tollgate-e2e --bin bench          (or scripts/bench-load)
//!     cargo run --release -p tollgate-e2e --bin bench -- stack (the local stack for scripts/bench-k6)
//!
//! Knobs (environment): BENCH_SECONDS (10, each saturated and fixed-rate run), BENCH_ROUNDS (2,
//! saturated 1 KB rounds, setups interleaved), BENCH_CONNECTIONS (32), BENCH_RATE (1000 req/s
//! for the fixed-rate latency run), BENCH_TTFB_REQUESTS (200), BENCH_RSS_REQUESTS (1000000),
//! BENCH_SETUPS (comma list, default all), BENCH_OUT (bench), BENCH_NOTE (a line for the table),
//! AGENTGATEWAY_BIN, BENCH_PROBES, BENCH_NATIVE_PROBES. Tools: wrk (Debian), oha
//! (`.tools/bin/oha`, scripts/setup).

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_config::output::FilterForm;
use tollgate_e2e::bench_config::{self, GATEWAY_INPUT};
use tollgate_e2e::bootstrap::{Bootstrap, HttpFilter, Listener, Route};
use tollgate_e2e::{envoy_bin, free_port, http, native, workspace_root};

type Error = Box<dyn std::error::Error>;

/// The mock's answer to a chat completion (usage included, so budget and metrics count it).
const MOCK_JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Benchmarks measure what they measure."},"finish_reason":"stop"}],"usage":{"prompt_tokens":240,"completion_tokens":9,"total_tokens":249}}"#;
/// Requests carrying this header get the streamed answer.
const STREAM_HEADER: &str = "x-bench-stream";

/// Settings from the environment.
struct Knobs {
    seconds: u64,
    rounds: usize,
    connections: u32,
    rate: u32,
    ttfb_requests: usize,
    rss_requests: u64,
    setups: Option<Vec<String>>,
    out: PathBuf,
    note: String,
    agentgateway: Option<PathBuf>,
    /// Probe filter configurations (`BENCH_PROBES`, e.g. `empty,buffer,get_header*100`):
    /// plain Envoy + the probe filter, saturated 1 KB runs only.
    probes: Vec<String>,
    /// Native probe modes (`BENCH_NATIVE_PROBES=empty,buffer,replay`): plain Envoy + the
    /// dynamic-module filter of integration/native-probe, saturated 1 KB runs only.
    native_probes: Vec<String>,
}

/// `BENCH_PROBES=default`: the floor of a wasm filter and the price of each call the pipeline
/// makes (integration/probe-filter says what each does).
const DEFAULT_PROBES: &str = "empty,buffer,get_header*100,get_headers*100,get_property*100,clock*100,get_body*100,set_header,set_header*100,remove_header,set_property*100,set_properties*11,set_properties*100,increment*100,get_shared*100,set_shared*100,replay";

fn knob<T: std::str::FromStr>(name: &str, default: T) -> Result<T, Error> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a number").into()),
        Err(_) => Ok(default),
    }
}

impl Knobs {
    fn from_env() -> Result<Self, Error> {
        let root = workspace_root();
        Ok(Self {
            seconds: knob("BENCH_SECONDS", 10)?,
            rounds: knob("BENCH_ROUNDS", 2)?,
            connections: knob("BENCH_CONNECTIONS", 32)?,
            rate: knob("BENCH_RATE", 1000)?,
            ttfb_requests: knob("BENCH_TTFB_REQUESTS", 200)?,
            rss_requests: knob("BENCH_RSS_REQUESTS", 1_000_000)?,
            setups: std::env::var("BENCH_SETUPS")
                .ok()
                .map(|s| s.split(',').map(|p| p.trim().to_string()).collect()),
            out: std::env::var("BENCH_OUT")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root.join("bench")),
            note: std::env::var("BENCH_NOTE").unwrap_or_default(),
            agentgateway: std::env::var("AGENTGATEWAY_BIN").ok().map(PathBuf::from),
            probes: match std::env::var("BENCH_PROBES").ok().as_deref() {
                None | Some("") => Vec::new(),
                Some("default") => DEFAULT_PROBES.split(',').map(str::to_string).collect(),
                Some(list) => list.split(',').map(|p| p.trim().to_string()).collect(),
            },
            native_probes: std::env::var("BENCH_NATIVE_PROBES")
                .ok()
                .map(|list| {
                    list.split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// A child process killed when dropped (and by the kernel if this process dies).
struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `cmd` with its stderr (Envoy's own log) in `log`; stdout (where the generated
    /// access log goes) is discarded: a million JSON lines per setup would only fill the disk.
    fn spawn(mut cmd: Command, log: &Path) -> Result<Self, Error> {
        let log = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl is async-signal-safe; the kernel stops the child if we die.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        Ok(Self {
            child: cmd.spawn()?,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self, name: &str) -> Result<(), Error> {
        match self.child.try_wait()? {
            Some(status) => Err(format!("{name} exited with {status}").into()),
            None => Ok(()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time the process has used (all its threads).
fn cpu_time(pid: u32) -> Result<Duration, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Resident set size in MB.
fn rss_mb(pid: u32) -> Result<f64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no VmRSS")?;
    Ok(kb / 1024.0)
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            return Err(format!("{what}: not ready after {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// GET on an admin endpoint.
fn admin(port: u16, path: &str) -> Option<String> {
    http::get(&format!("http://127.0.0.1:{port}{path}"))
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

/// Sum of the counters whose names match `re` (Envoy `/stats?filter=`).
fn stat_sum(admin_port: u16, filter: &str) -> u64 {
    admin(admin_port, &format!("/stats?filter={filter}"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
        .sum()
}

fn envoy_command(config: &Path, base_id: u32, concurrency: u32) -> Result<Command, Error> {
    let mut cmd = Command::new(envoy_bin()?);
    cmd.arg("-c")
        .arg(config)
        .args(["--disable-hot-restart", "-l", "error"])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--base-id", &base_id.to_string()]);
    Ok(cmd)
}

// ---------------------------------------------------------------------------------------------
// The fast mock: Envoy answering every POST from `direct_response`, after reading the body.

fn sse_body() -> String {
    let mut body = String::new();
    for word in ["Bench", "marks ", "measure ", "what ", "they ", "measure."] {
        let chunk = json!({"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",
            "choices":[{"index":0,"delta":{"content":word},"finish_reason":null}]});
        let _ = write!(body, "data: {chunk}\n\n");
    }
    let last = json!({"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",
        "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    let usage = json!({"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",
        "choices":[],"usage":{"prompt_tokens":240,"completion_tokens":6,"total_tokens":246}});
    let _ = write!(body, "data: {last}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
    body
}

/// The mock's bootstrap: JSON answers, SSE when the request has [`STREAM_HEADER`]. The buffer
/// filter reads the whole request first, so the answer does not race the body and Envoy keeps
/// the connection (DESIGN.md §2, benchmark pitfall).
fn mock_bootstrap(port: u16, admin_port: u16) -> Bootstrap {
    let answer = |content_type: &str, body: &str| {
        Route::direct(200, body).response_header("content-type", content_type)
    };
    Bootstrap::new().admin_port(admin_port).listener(
        Listener::new("mock", port)
            .route(answer("text/event-stream", &sse_body()).header_present(STREAM_HEADER))
            .route(answer("application/json", MOCK_JSON))
            .filter(HttpFilter::buffer(4_194_304)),
    )
}

// ---------------------------------------------------------------------------------------------
// The measured configs, all from the generator.

fn is_wasm(filter: &Value) -> bool {
    filter["name"] == "envoy.filters.http.wasm"
}

fn root_id(filter: &Value) -> &str {
    filter["typed_config"]["config"]["root_id"]
        .as_str()
        .unwrap_or_default()
}

/// The listener's HTTP filters of a generated bootstrap.
fn downstream_filters(bootstrap: &mut Value) -> Option<&mut Vec<Value>> {
    bootstrap["static_resources"]["listeners"]
        .as_array_mut()?
        .iter_mut()
        .find(|l| l["name"] == "tollgate")?["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"]
        .as_array_mut()
}

/// Root ids of the downstream wasm filters.
fn downstream_roots(bootstrap: &Value) -> Vec<String> {
    let mut copy = bootstrap.clone();
    downstream_filters(&mut copy)
        .map(|f| {
            f.iter()
                .filter(|f| is_wasm(f))
                .map(|f| root_id(f).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a downstream filter runs `stage` (`cache`, `metrics`, ...): the stage's filter
/// alone, or the pipeline with the stage's section.
fn stage_runs(bootstrap: &Value, stage: &str) -> bool {
    let mut copy = bootstrap.clone();
    downstream_filters(&mut copy).is_some_and(|filters| {
        filters.iter().filter(|f| is_wasm(f)).any(|f| {
            let config: Value = f["typed_config"]["config"]["configuration"]["value"]
                .as_str()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default();
            (root_id(f) == stage || root_id(f) == "tollgate") && !config[stage].is_null()
        })
    })
}

/// Removes the listener's access log: the generator emits it for the metrics stage (it logs
/// what the stage leaves in filter state), so a setup without that stage has none.
fn drop_access_log(bootstrap: &mut Value) {
    if let Some(listener) = bootstrap["static_resources"]["listeners"]
        .as_array_mut()
        .and_then(|l| l.iter_mut().find(|l| l["name"] == "tollgate"))
    {
        if let Some(hcm) =
            listener["filter_chains"][0]["filters"][0]["typed_config"].as_object_mut()
        {
            hcm.remove("access_log");
        }
    }
}

/// Keeps only the downstream wasm filters whose root id `keep` accepts.
fn keep_downstream(bootstrap: &mut Value, keep: impl Fn(&str) -> bool) {
    if let Some(filters) = downstream_filters(bootstrap) {
        filters.retain(|f| !is_wasm(f) || keep(root_id(f)));
    }
}

/// Whether any cluster has an upstream wasm filter (the adapter).
fn has_upstream_wasm(bootstrap: &Value) -> bool {
    bootstrap.to_string().contains("\"root_id\":\"adapter\"")
}

/// Removes the upstream wasm filters of every cluster (what is left is Envoy's own codec).
fn drop_upstream_wasm(bootstrap: &mut Value) {
    let Some(clusters) = bootstrap["static_resources"]["clusters"].as_array_mut() else {
        return;
    };
    for cluster in clusters {
        let Some(options) = cluster["typed_extension_protocol_options"].as_object_mut() else {
            continue;
        };
        for protocol in options.values_mut() {
            if let Some(filters) = protocol["http_filters"].as_array_mut() {
                filters.retain(|f| !is_wasm(f));
                if filters
                    .iter()
                    .all(|f| f["name"] == "envoy.filters.http.upstream_codec")
                {
                    if let Some(p) = protocol.as_object_mut() {
                        p.remove("http_filters");
                    }
                }
            }
        }
    }
}

/// Puts the probe filter (build/wasm/tollgate_probe_filter.wasm) just before the router.
fn add_probe(bootstrap: &mut Value, probe: &str) -> Result<(), Error> {
    let module = tollgate_e2e::wasm_path("tollgate_probe_filter")?;
    let filter = serde_json::json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "probe",
                "root_id": "probe",
                "allow_on_headers_stop_iteration": true,
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": probe,
                },
                "vm_config": {
                    "vm_id": "probe",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": module.display().to_string()}},
                },
            },
        },
    });
    let filters = downstream_filters(bootstrap).ok_or("no tollgate listener")?;
    let router = filters.len().saturating_sub(1);
    filters.insert(router, filter);
    Ok(())
}

/// Puts the native probe (integration/native-probe, built and copied into the run folder) just
/// before the router; returns the folder Envoy must get as its module search path.
fn add_native_probe(bootstrap: &mut Value, mode: &str, run_dir: &Path) -> Result<PathBuf, Error> {
    let dir = native::module_dir(&run_dir.join("native"))?;
    let filter = json!({"name": native::FILTER_NAME, "typed_config": native::typed_config(mode)});
    let filters = downstream_filters(bootstrap).ok_or("no tollgate listener")?;
    let router = filters.len().saturating_sub(1);
    filters.insert(router, filter);
    Ok(dir)
}

/// What is measured: a name, how to start it, what it costs us.
#[derive(Clone)]
struct SetupSpec {
    name: String,
    what: String,
    /// `None`: the direct mock; `Some(transform)`: a generated Envoy config.
    kind: SetupKind,
}

#[derive(Clone)]
enum SetupKind {
    DirectMock,
    Envoy {
        form: FilterForm,
        /// Downstream root ids kept (`None`: all of the form's).
        keep: Option<Vec<String>>,
        adapter: bool,
    },
    /// Plain Envoy + the probe filter with this configuration.
    Probe(String),
    /// Plain Envoy + the native probe (a dynamic module) in this mode.
    NativeProbe(String),
    Agentgateway(PathBuf),
}

impl SetupSpec {
    /// Measured in the saturated 1 KB rounds only (wasm or native probe).
    fn is_probe(&self) -> bool {
        matches!(self.kind, SetupKind::Probe(_) | SetupKind::NativeProbe(_))
    }

    fn is_wasm_probe(&self) -> bool {
        matches!(self.kind, SetupKind::Probe(_))
    }
}

/// Every setup of the run, in table order; capabilities the generator does not emit for the
/// benchmark input are listed in `skipped` with the reason.
fn setups(knobs: &Knobs, separate: &Value, combined: &Value) -> (Vec<SetupSpec>, Vec<String>) {
    let envoy = |name: &str, what: &str, form, keep: Option<Vec<&str>>, adapter| SetupSpec {
        name: name.to_string(),
        what: what.to_string(),
        kind: SetupKind::Envoy {
            form,
            keep: keep.map(|k| k.into_iter().map(str::to_string).collect()),
            adapter,
        },
    };
    let mut list = vec![
        SetupSpec {
            name: "direct-mock".into(),
            what: "the mock itself (Envoy direct_response + buffer, 1 worker), no proxy".into(),
            kind: SetupKind::DirectMock,
        },
        envoy(
            "plain-envoy",
            "generated config minus every wasm filter",
            FilterForm::Combined,
            Some(vec![]),
            false,
        ),
    ];
    let mut skipped = Vec::new();
    let roots = downstream_roots(separate);
    for capability in ["router", "cache", "budget", "metrics"] {
        if roots.iter().any(|r| r == capability) {
            list.push(envoy(
                capability,
                &format!("plain + the `{capability}` filter alone (separate form)"),
                FilterForm::Separate,
                Some(vec![capability]),
                false,
            ));
        } else {
            skipped.push(format!(
                "`{capability}` alone: the generator emits no `{capability}` filter for {GATEWAY_INPUT} (its section is not configured)"
            ));
        }
    }
    let adapter = has_upstream_wasm(combined);
    if adapter {
        list.push(envoy(
            "adapter",
            "plain + the upstream adapter alone",
            FilterForm::Combined,
            Some(vec![]),
            true,
        ));
    } else {
        skipped.push(
            "`adapter` alone: the generator emits no upstream wasm filter for this Backend".into(),
        );
    }
    list.push(envoy(
        "separate",
        &format!(
            "separate form: {} + {}",
            roots.join(" → "),
            if adapter { "adapter" } else { "no adapter" }
        ),
        FilterForm::Separate,
        None,
        adapter,
    ));
    list.push(envoy(
        "tollgate",
        &format!(
            "combined pipeline (default){}",
            if adapter { " + adapter" } else { "" }
        ),
        FilterForm::Combined,
        None,
        adapter,
    ));
    if let Some(bin) = &knobs.agentgateway {
        list.push(SetupSpec {
            name: "agentgateway".into(),
            what: "agentgateway's LLM route (scripts/bench/agentgateway.yaml)".into(),
            kind: SetupKind::Agentgateway(bin.clone()),
        });
    }
    if let Some(only) = &knobs.setups {
        list.retain(|s| s.name == "plain-envoy" || only.contains(&s.name));
    }
    for probe in &knobs.probes {
        list.push(SetupSpec {
            name: format!("probe {probe}"),
            what: format!("plain + the probe filter configured `{probe}`"),
            kind: SetupKind::Probe(probe.clone()),
        });
    }
    for mode in &knobs.native_probes {
        list.push(SetupSpec {
            name: format!("native {mode}"),
            what: format!("plain + the native probe (Envoy dynamic module) in mode `{mode}`"),
            kind: SetupKind::NativeProbe(mode.clone()),
        });
    }
    (list, skipped)
}

/// A running setup.
struct Running {
    spec: SetupSpec,
    port: u16,
    /// The process whose CPU and memory are measured.
    proc: Option<Proc>,
    /// Whether the cache stage runs (then a cache-hit run is measured).
    cache: bool,
}

impl Running {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1/chat/completions", self.port)
    }

    fn pid(&self, mock: &Proc) -> u32 {
        self.proc
            .as_ref()
            .map(Proc::pid)
            .unwrap_or_else(|| mock.pid())
    }
}

fn start(spec: &SetupSpec, mock_port: u16, run_dir: &Path, base_id: u32) -> Result<Running, Error> {
    let mock_url = format!("http://127.0.0.1:{mock_port}");
    match &spec.kind {
        SetupKind::DirectMock => Ok(Running {
            spec: spec.clone(),
            port: mock_port,
            proc: None,
            cache: false,
        }),
        SetupKind::Envoy { .. } | SetupKind::Probe(_) | SetupKind::NativeProbe(_) => {
            let plain = (FilterForm::Combined, Some(Vec::new()), false);
            let (form, keep, adapter) = match &spec.kind {
                SetupKind::Envoy {
                    form,
                    keep,
                    adapter,
                } => (*form, keep.clone(), *adapter),
                _ => plain,
            };
            let ports = (free_port(), free_port(), free_port());
            let (mut bootstrap, env) = bench_config::generate(form, &mock_url, ports)?;
            if let Some(keep) = keep {
                keep_downstream(&mut bootstrap, |root| keep.iter().any(|k| k == root));
            }
            if !adapter {
                drop_upstream_wasm(&mut bootstrap);
            }
            if let SetupKind::Probe(probe) = &spec.kind {
                add_probe(&mut bootstrap, probe)?;
            }
            let native_dir = match &spec.kind {
                SetupKind::NativeProbe(mode) => {
                    Some(add_native_probe(&mut bootstrap, mode, run_dir)?)
                }
                _ => None,
            };
            if !stage_runs(&bootstrap, "metrics") {
                drop_access_log(&mut bootstrap);
            }
            let cache = stage_runs(&bootstrap, "cache");
            let config = run_dir.join(format!("{}.yaml", spec.name));
            std::fs::write(&config, serde_norway::to_string(&bootstrap)?)?;
            let mut cmd = envoy_command(&config, base_id, 2)?;
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            if let Some(dir) = &native_dir {
                cmd.env(native::SEARCH_PATH_VAR, dir);
            }
            let mut proc = Proc::spawn(cmd, &run_dir.join(format!("{}.log", spec.name)))?;
            let admin_port = ports.1;
            wait_until(&spec.name, Duration::from_secs(30), || {
                proc.check_alive(&spec.name).is_err()
                    || admin(admin_port, "/ready").is_some_and(|b| b.trim() == "LIVE")
            })?;
            proc.check_alive(&spec.name).map_err(|e| {
                format!(
                    "{e}: see {}",
                    run_dir.join(format!("{}.log", spec.name)).display()
                )
            })?;
            Ok(Running {
                spec: spec.clone(),
                port: ports.0,
                proc: Some(proc),
                cache,
            })
        }
        SetupKind::Agentgateway(bin) => {
            let (port, admin_port, ready, stats) =
                (free_port(), free_port(), free_port(), free_port());
            let template =
                std::fs::read_to_string(workspace_root().join("scripts/bench/agentgateway.yaml"))?;
            let config = template
                .replace("__PORT__", &port.to_string())
                .replace("__ADMIN__", &admin_port.to_string())
                .replace("__READY__", &ready.to_string())
                .replace("__STATS__", &stats.to_string())
                .replace("__UPSTREAM__", &mock_port.to_string());
            let path = run_dir.join("agentgateway.yaml");
            std::fs::write(&path, config)?;
            let mut cmd = Command::new(bin);
            cmd.arg("-f").arg(&path);
            let mut proc = Proc::spawn(cmd, &run_dir.join("agentgateway.log"))?;
            wait_until("agentgateway", Duration::from_secs(30), || {
                proc.check_alive("agentgateway").is_err()
                    || http::get(&format!("http://127.0.0.1:{ready}/healthz/ready"))
                        .is_ok_and(|r| r.status == 200)
            })?;
            proc.check_alive("agentgateway")?;
            Ok(Running {
                spec: spec.clone(),
                port,
                proc: Some(proc),
                cache: false,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies and load tools.

/// A chat completion of about `bytes` bytes; `temperature: 0` so that the cache may store it.
fn chat_body(bytes: usize, stream: bool) -> String {
    let sentence = "Summarize the following paragraph in one sentence please. ";
    let frame = 160;
    let content = sentence.repeat(bytes.saturating_sub(frame) / sentence.len() + 1);
    let content = &content[..bytes.saturating_sub(frame).max(1)];
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0,"max_tokens":64,"stream":{stream},"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{content}"}}]}}"#
    )
}

/// A wrk script POSTing `body`; with `unique`, a counter is spliced into every request's first
/// message so that each one is a cache miss.
fn wrk_script(body: &str, unique: bool) -> String {
    let (head, tail) = body.split_once("You are terse.").unwrap_or((body, ""));
    let lua = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut script = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"content-type\"] = \"application/json\"\nlocal head = \"{}You are terse.\"\nlocal tail = \"{}\"\nwrk.body = head .. tail\n",
        lua(head),
        lua(tail)
    );
    if unique {
        script.push_str(
            "local n = 0\nlocal id = os.getenv(\"BENCH_RUN_ID\")\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, nil, nil, head .. \" \" .. id .. \"-\" .. n .. tail)\nend\n",
        );
    }
    script
}

/// One wrk run's results.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    rps: f64,
    non2xx: u64,
    errors: u64,
    cpu_us: f64,
    upstream_cx: u64,
}

fn parse_wrk(out: &str) -> Result<(f64, u64, u64, u64), Error> {
    let rps = out
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("wrk printed no Requests/sec:\n{out}"))?;
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let non2xx = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let errors = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().last())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok((rps, requests, non2xx, errors))
}

fn wrk(script: &Path, url: &str, connections: u32, seconds: u64) -> Result<String, Error> {
    // A fresh id per run, spliced into the unique bodies: no run repeats an earlier one's.
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = Command::new("wrk")
        .env("BENCH_RUN_ID", format!("{}-{run}", std::process::id()))
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("wrk: {e} (scripts/setup installs it)"))?;
    if !out.status.success() {
        return Err(format!("wrk failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Connections the proxy opened to the mock so far (the mock's accepted connections).
fn mock_connections(mock_admin: u16) -> u64 {
    stat_sum(mock_admin, "^http\\.mock\\.downstream_cx_total$")
}

/// A saturated run: wrk for `seconds`, the proxy's CPU over it, and the mock's new connections.
fn saturated(
    setup: &Running,
    pid: u32,
    script: &Path,
    knobs: &Knobs,
    mock_admin: u16,
) -> Result<Load, Error> {
    wrk(script, &setup.url(), knobs.connections, 1)?; // warm-up
    let cx_before = mock_connections(mock_admin);
    let cpu_before = cpu_time(pid)?;
    let out = wrk(script, &setup.url(), knobs.connections, knobs.seconds)?;
    let cpu = cpu_time(pid)? - cpu_before;
    let cx = mock_connections(mock_admin) - cx_before;
    let (rps, requests, non2xx, errors) = parse_wrk(&out)?;
    Ok(Load {
        rps,
        non2xx,
        errors,
        cpu_us: cpu.as_secs_f64() * 1e6 / requests.max(1) as f64,
        upstream_cx: cx,
    })
}

fn oha_bin() -> PathBuf {
    let local = workspace_root().join(".tools/bin/oha");
    if local.exists() {
        local
    } else {
        PathBuf::from("oha")
    }
}

/// p50 and p99 (ms) at a fixed request rate, with oha's latency correction (latency counted
/// from when each request was due, as wrk2 does). The bodies come from `body_lines`, one unique
/// body a line (`oha -Z`), so the cache misses (and stores) as in the saturated runs.
fn fixed_rate(
    setup: &Running,
    body_lines: &Path,
    warm_lines: &Path,
    knobs: &Knobs,
) -> Result<(f64, f64, u64), Error> {
    oha_at_rate(setup, warm_lines, knobs, 1)?;
    oha_at_rate(setup, body_lines, knobs, knobs.seconds)
}

fn oha_at_rate(
    setup: &Running,
    body_lines: &Path,
    knobs: &Knobs,
    seconds: u64,
) -> Result<(f64, f64, u64), Error> {
    let out = Command::new(oha_bin())
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
            &knobs.connections.to_string(),
        ])
        .args(["-q", &knobs.rate.to_string(), "-m", "POST"])
        .args(["-H", "content-type: application/json"])
        .arg("-Z")
        .arg(body_lines)
        .arg(setup.url())
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => return Err(format!("oha: {e} (scripts/setup installs it in .tools/bin)").into()),
    };
    if !out.status.success() {
        return Err(format!("oha failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let pct = |k: &str| report["latencyPercentiles"][k].as_f64().map(|s| s * 1000.0);
    let non2xx: u64 = report["statusCodeDistribution"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(code, _)| !code.starts_with('2'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    Ok((
        pct("p50").ok_or("oha: no p50")?,
        pct("p99").ok_or("oha: no p99")?,
        non2xx,
    ))
}

/// Median of `n` sequential requests' time to first byte (ms), after 10 warm-up requests.
/// Without `want` (a cache status every request after the first must have), the requests say
/// `cache-control: no-store`, so the cache never answers them.
fn ttfb(url: &str, body: &str, stream: bool, n: usize, want: Option<&str>) -> Result<f64, Error> {
    let mut headers = vec![("content-type", "application/json")];
    if stream {
        headers.push((STREAM_HEADER, "1"));
    }
    if want.is_none() {
        headers.push(("cache-control", "no-store"));
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let response = http::post_timed(url, &headers, body)?;
        if response.status != 200 {
            return Err(format!("{url}: status {}: {}", response.status, response.body()).into());
        }
        if let Some(want) = want {
            let status = response
                .headers
                .iter()
                .find(|(k, _)| k == "x-cache-status")
                .map(|(_, v)| v.as_str());
            if i > 0 && status != Some(want) {
                return Err(format!("{url}: x-cache-status {status:?}, wanted {want}").into());
            }
        }
        if i >= 10 {
            samples.push(response.first_byte().ok_or("empty body")?);
        }
    }
    samples.sort();
    Ok(samples[n / 2].as_secs_f64() * 1000.0)
}

/// One chat completion and one stream must come back right before any load.
fn check(setup: &Running) -> Result<(), Error> {
    let headers = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];
    let response = http::post(&setup.url(), &headers, &chat_body(1024, false))?;
    if response.status != 200 || !response.body.contains("\"chat.completion\"") {
        return Err(format!(
            "{}: a chat completion answered {}: {}",
            setup.spec.name, response.status, response.body
        )
        .into());
    }
    let mut stream_headers = headers.to_vec();
    stream_headers.push((STREAM_HEADER, "1"));
    let response = http::post(&setup.url(), &stream_headers, &chat_body(1024, true))?;
    if response.status != 200 || !response.body.contains("data: [DONE]") {
        return Err(format!(
            "{}: a stream answered {}: {}",
            setup.spec.name, response.status, response.body
        )
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run.

#[derive(Default)]
struct Row {
    small: Vec<Load>,
    large: Option<Load>,
    p50: Option<f64>,
    p99: Option<f64>,
    fixed_non2xx: u64,
    ttfb_json: Option<f64>,
    ttfb_stream: Option<f64>,
    cache_hit: Option<f64>,
    /// (MB before, MB after, requests served in between).
    rss: Option<(f64, f64, u64)>,
    failed: Vec<String>,
}

impl Row {
    fn rps(&self) -> Option<f64> {
        (!self.small.is_empty())
            .then(|| self.small.iter().map(|l| l.rps).sum::<f64>() / self.small.len() as f64)
    }
    fn cpu(&self) -> Option<f64> {
        (!self.small.is_empty())
            .then(|| self.small.iter().map(|l| l.cpu_us).sum::<f64>() / self.small.len() as f64)
    }
}

fn tool_version(cmd: &Path, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("unavailable ({e})"))
}

fn main() -> Result<(), Error> {
    match std::env::args().nth(1).as_deref() {
        None | Some("load") => load(),
        Some("stack") => stack(),
        Some(other) => Err(format!("usage: bench [load|stack], got {other:?}").into()),
    }
}

/// The local stack of `scripts/up` through the harness, on free loopback ports: the guide's
/// YAML plus the companion file, the mock providers (no key checks), Envoy. Prints one line,
/// `url=<gateway> pid=<envoy pid> admin=<admin address>`, then serves until killed.
fn stack() -> Result<(), Error> {
    use tollgate_e2e::gateway::{Gateway, GatewaySpec};
    use tollgate_mock::{spawn, Kind, MockConfig};
    let mock = |kind| {
        let mut config = MockConfig::new(kind, "127.0.0.1:0".parse().map_err(|_| "addr")?);
        config.api_key = None;
        spawn(config).map_err(|e| Error::from(e.to_string()))
    };
    let (openai, anthropic, gemini, ollama) = (
        mock(Kind::Openai)?,
        mock(Kind::Anthropic)?,
        mock(Kind::Gemini)?,
        mock(Kind::Ollama)?,
    );
    let spec = GatewaySpec::guide_and_companion()
        .endpoint("openai", openai.base_url())
        .endpoint("gpt-4o-mini", openai.base_url())
        .endpoint("claude-haiku", anthropic.base_url())
        .endpoint("gemini-flash", gemini.base_url())
        .endpoint("local-llama", ollama.base_url())
        // Not part of the load test; port 9 refuses connections.
        .endpoint("mcp-tools", "http://127.0.0.1:9")
        .endpoint("semantic-cache-service", "http://127.0.0.1:9")
        .secret("openai-secret", "sk-stack-openai")
        .secret("anthropic-secret", "sk-stack-anthropic")
        .secret("google-ai-secret", "stack-google");
    let gateway = Gateway::start(&spec).map_err(|e| e.to_string())?;
    let pid = envoy_pid(gateway.envoy.run_dir()).ok_or("cannot find the Envoy process")?;
    println!(
        "url=http://127.0.0.1:{} pid={pid} admin={}",
        gateway.port,
        gateway.envoy.admin_addr()
    );
    use std::io::Write as _;
    std::io::stdout().flush()?;
    loop {
        std::thread::park();
    }
}

/// The pid of the Envoy whose config sits in `run_dir` (the harness does not expose it).
fn envoy_pid(run_dir: &Path) -> Option<u32> {
    let config = run_dir.join("envoy.yaml").display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_envoy =
                args.contains(&config.as_bytes()) && !args.contains(&b"validate".as_slice());
            is_envoy.then_some(pid)
        })
}

/// The side-by-side load benchmark.
fn load() -> Result<(), Error> {
    let knobs = Knobs::from_env()?;
    let run_dir = workspace_root().join("target/bench").join(chrono_stamp());
    std::fs::create_dir_all(&run_dir)?;
    let started = Instant::now();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // The mock.
    let (mock_port, mock_admin) = (free_port(), free_port());
    let mock_config = run_dir.join("mock.yaml");
    std::fs::write(&mock_config, mock_bootstrap(mock_port, mock_admin).render())?;
    let mut mock = Proc::spawn(
        envoy_command(&mock_config, 40, 1)?,
        &run_dir.join("mock.log"),
    )?;
    wait_until("mock", Duration::from_secs(30), || {
        mock.check_alive("mock").is_err()
            || admin(mock_admin, "/ready").is_some_and(|b| b.trim() == "LIVE")
    })?;
    mock.check_alive("mock")?;

    // Which setups the generator's output allows.
    let mock_url = format!("http://127.0.0.1:{mock_port}");
    let (separate, _) = bench_config::generate(FilterForm::Separate, &mock_url, (1, 2, 3))?;
    let (combined, _) = bench_config::generate(FilterForm::Combined, &mock_url, (1, 2, 3))?;
    let (specs, skipped) = setups(&knobs, &separate, &combined);

    let mut running = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let setup = start(spec, mock_port, &run_dir, 41 + i as u32)?;
        check(&setup)?;
        running.push(setup);
    }
    eprintln!(
        "bench: {} setups up; configs and logs in {}",
        running.len(),
        run_dir.display()
    );

    let small = chat_body(1024, false);
    let large = chat_body(32 * 1024, false);
    let small_script = run_dir.join("small.lua");
    let large_script = run_dir.join("large.lua");
    let small_lines = run_dir.join("small.lines");
    std::fs::write(&small_script, wrk_script(&small, true))?;
    std::fs::write(&large_script, wrk_script(&large, true))?;
    let warm_lines = run_dir.join("warm.lines");
    let body_lines = |tag: &str, seconds: u64| {
        let lines = (u64::from(knobs.rate) * seconds * 3 / 2).max(100);
        let mut text = String::new();
        for i in 0..lines {
            text.push_str(&small.replacen(
                "You are terse.",
                &format!("You are terse. {tag}-{i}"),
                1,
            ));
            text.push('\n');
        }
        text
    };
    std::fs::write(&small_lines, body_lines("fixed", knobs.seconds))?;
    std::fs::write(&warm_lines, body_lines("warm", 1))?;

    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    // Saturated 1 KB: rounds, setups interleaved, so that a burst of other load hits all.
    for round in 0..knobs.rounds {
        for setup in &running {
            let load = saturated(setup, setup.pid(&mock), &small_script, &knobs, mock_admin)?;
            eprintln!(
                "bench: round {} {:<14} {:>9.0} req/s {:>6.1} µs/req  cx {}",
                round + 1,
                setup.spec.name,
                load.rps,
                load.cpu_us,
                load.upstream_cx
            );
            rows.entry(setup.spec.name.clone())
                .or_default()
                .small
                .push(load);
        }
    }
    for setup in running.iter().filter(|s| !s.spec.is_probe()) {
        let name = setup.spec.name.clone();
        let pid = setup.pid(&mock);
        let row = rows.entry(name.clone()).or_default();
        match saturated(setup, pid, &large_script, &knobs, mock_admin) {
            Ok(load) => row.large = Some(load),
            Err(e) => row.failed.push(format!("32 KB: {e}")),
        }
        match fixed_rate(setup, &small_lines, &warm_lines, &knobs) {
            Ok((p50, p99, non2xx)) => {
                row.p50 = Some(p50);
                row.p99 = Some(p99);
                row.fixed_non2xx = non2xx;
            }
            Err(e) => row.failed.push(format!("fixed rate: {e}")),
        }
        let unique = |tag: &str| {
            chat_body(1024, false).replacen("You are terse.", &format!("You are terse. {tag}"), 1)
        };
        match ttfb(&setup.url(), &small, false, knobs.ttfb_requests, None) {
            Ok(v) => row.ttfb_json = Some(v),
            Err(e) => row.failed.push(format!("ttfb json: {e}")),
        }
        let stream_body = chat_body(1024, true);
        match ttfb(&setup.url(), &stream_body, true, knobs.ttfb_requests, None) {
            Ok(v) => row.ttfb_stream = Some(v),
            Err(e) => row.failed.push(format!("ttfb stream: {e}")),
        }
        if setup.cache {
            // The same cacheable request again and again: every one after the first is a hit.
            match ttfb(
                &setup.url(),
                &unique("cache-hit"),
                false,
                knobs.ttfb_requests,
                Some("HIT"),
            ) {
                Ok(v) => row.cache_hit = Some(v),
                Err(e) => row.failed.push(format!("cache hit: {e}")),
            }
        }
        eprintln!("bench: {name} latency done");
    }
    // A probe's memory: its RSS after its saturated runs (a V8 VM of a 57 KB module).
    for setup in running.iter().filter(|s| s.spec.is_probe()) {
        let rss = rss_mb(setup.pid(&mock))?;
        rows.entry(setup.spec.name.clone()).or_default().rss = Some((rss, rss, 0));
    }
    // Memory: RSS before and after many requests (unique bodies: the cache fills to its bound).
    for setup in running.iter().filter(|s| !s.spec.is_probe()) {
        if setup.proc.is_none() {
            continue;
        }
        let pid = setup.pid(&mock);
        let before = rss_mb(pid)?;
        // wrk runs for a time, not a count (a Lua `wrk.thread:stop()` still waits out the
        // duration): long enough for the count at the rate this setup just sustained.
        let rps = rows
            .get(&setup.spec.name)
            .and_then(Row::rps)
            .unwrap_or(1000.0)
            .max(100.0);
        let seconds = (knobs.rss_requests as f64 / rps).ceil() as u64 + 1;
        match wrk(&small_script, &setup.url(), knobs.connections, seconds) {
            Ok(out) => {
                let served = parse_wrk(&out).map(|p| p.1).unwrap_or(0);
                let after = rss_mb(pid)?;
                rows.entry(setup.spec.name.clone()).or_default().rss =
                    Some((before, after, served));
                eprintln!(
                    "bench: {} RSS {before:.0} → {after:.0} MB over {served} requests",
                    setup.spec.name
                );
            }
            Err(e) => rows
                .entry(setup.spec.name.clone())
                .or_default()
                .failed
                .push(format!("rss: {e}")),
        }
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let report = table(
        &knobs,
        &running,
        &rows,
        &skipped,
        &load_before,
        &load_after,
        started.elapsed(),
        &run_dir,
    );
    print!("{report}");
    std::fs::create_dir_all(&knobs.out)?;
    let dated = knobs.out.join(format!("results-{}.md", chrono_stamp()));
    std::fs::write(&dated, &report)?;
    std::fs::write(knobs.out.join("latest.md"), &report)?;
    eprintln!(
        "bench: wrote {} and {}",
        dated.display(),
        knobs.out.join("latest.md").display()
    );
    Ok(())
}

/// `YYYY-MM-DD-HHMM` (UTC) from the system clock, without a date crate.
fn chrono_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}-{h:02}{m:02}")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

#[allow(clippy::too_many_arguments)]
fn table(
    knobs: &Knobs,
    running: &[Running],
    rows: &BTreeMap<String, Row>,
    skipped: &[String],
    load_before: &str,
    load_after: &str,
    took: Duration,
    run_dir: &Path,
) -> String {
    let plain = rows.get("plain-envoy");
    let plain_rps = plain.and_then(Row::rps);
    let plain_cpu = plain.and_then(Row::cpu);
    let plain_large = plain.and_then(|r| r.large.map(|l| l.rps));
    let plain_p99 = plain.and_then(|r| r.p99);
    let plain_ttfb = plain.and_then(|r| r.ttfb_stream);
    let plain_rss = plain.and_then(|r| r.rss.map(|r| r.1));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    };
    let delta = |a: Option<f64>, b: Option<f64>, digits: usize| match (a, b) {
        (Some(a), Some(b)) => format!("{:+.digits$}", a - b),
        _ => "–".into(),
    };
    let mut s = String::new();
    let _ = writeln!(s, "# tollgate side-by-side benchmark, {}\n", chrono_stamp());
    let _ = writeln!(
        s,
        "Command: `scripts/bench-load` (BENCH_SECONDS={} BENCH_ROUNDS={} BENCH_CONNECTIONS={} BENCH_RATE={} BENCH_TTFB_REQUESTS={} BENCH_RSS_REQUESTS={}{}). Took {:.0} s.",
        knobs.seconds, knobs.rounds, knobs.connections, knobs.rate, knobs.ttfb_requests, knobs.rss_requests,
        if knobs.agentgateway.is_some() { " AGENTGATEWAY_BIN=…" } else { "" },
        took.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "Machine: {} cores shared by wrk/oha, the mock and the proxy; load average {} at the start, {} at the end.{}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        if knobs.note.is_empty() { String::new() } else { format!(" **{}**", knobs.note) }
    );
    let _ = writeln!(
        s,
        "Tools: {}; {}; {}. Proxies: `--concurrency 2`, all on 127.0.0.1; the mock is an Envoy `direct_response` behind a buffer filter (1 worker). Configs: {}.\n",
        tool_version(&envoy_bin().unwrap_or_else(|_| "envoy".into()), "--version").replace("envoy  version: ", "envoy "),
        tool_version(Path::new("wrk"), "-v").split(" Copyright").next().unwrap_or(""),
        tool_version(&oha_bin(), "--version"),
        run_dir.display()
    );
    let _ = writeln!(s, "## Throughput (saturated: `wrk -t1 -c{}`, {} s per run; every body unique, so the cache misses and stores)\n", knobs.connections, knobs.seconds);
    let _ = writeln!(s, "| setup | 1 KB req/s | × plain | Envoy CPU µs/req | +µs vs plain | 32 KB req/s | × plain | non-2xx/errors | mock cx opened |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for setup in running.iter().filter(|s| !s.spec.is_probe()) {
        let Some(row) = rows.get(&setup.spec.name) else {
            continue;
        };
        let rps = row.rps();
        let cpu = row.cpu();
        let spread = if row.small.len() > 1 {
            let lo = row.small.iter().map(|l| l.rps).fold(f64::MAX, f64::min);
            let hi = row.small.iter().map(|l| l.rps).fold(0.0, f64::max);
            format!(" ({lo:.0}–{hi:.0})")
        } else {
            String::new()
        };
        let bad: u64 = row.small.iter().map(|l| l.non2xx + l.errors).sum::<u64>()
            + row.large.map(|l| l.non2xx + l.errors).unwrap_or(0);
        let cx: u64 = row.small.iter().map(|l| l.upstream_cx).sum::<u64>()
            + row.large.map(|l| l.upstream_cx).unwrap_or(0);
        let direct = setup.spec.name == "direct-mock";
        let _ = writeln!(
            s,
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} |",
            setup.spec.name,
            opt(rps, 0),
            spread,
            if direct {
                "–".into()
            } else {
                ratio(rps, plain_rps)
            },
            opt(cpu, 1),
            if direct {
                "–".into()
            } else {
                delta(cpu, plain_cpu, 1)
            },
            opt(row.large.map(|l| l.rps), 0),
            if direct {
                "–".into()
            } else {
                ratio(row.large.map(|l| l.rps), plain_large)
            },
            bad,
            if direct {
                "(wrk's own)".into()
            } else {
                cx.to_string()
            },
        );
    }
    let _ = writeln!(s, "\nCPU is the measured process's user+system time (`/proc/<pid>/stat`) over the run, per request; for direct-mock it is the mock's. \"mock cx opened\": connections the mock accepted during the runs (wrk's own excluded for proxies): a proxy that reuses its upstream connections opens ~0.\n");
    let _ = writeln!(s, "## Latency\n");
    let _ = writeln!(s, "| setup | p50 @{0}/s ms | p99 @{0}/s ms | p99 +ms vs plain | TTFB JSON p50 ms | TTFB stream p50 ms | stream +ms vs plain | cache hit p50 ms |", knobs.rate);
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for setup in running.iter().filter(|s| !s.spec.is_probe()) {
        let Some(row) = rows.get(&setup.spec.name) else {
            continue;
        };
        let direct = setup.spec.name == "direct-mock";
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            setup.spec.name,
            opt(row.p50, 3),
            opt(row.p99, 3),
            if direct {
                "–".into()
            } else {
                delta(row.p99, plain_p99, 3)
            },
            opt(row.ttfb_json, 3),
            opt(row.ttfb_stream, 3),
            if direct {
                "–".into()
            } else {
                delta(row.ttfb_stream, plain_ttfb, 3)
            },
            opt(row.cache_hit, 3),
        );
    }
    let _ = writeln!(s, "\nFixed rate: `oha -q {} -c {} --latency-correction`, {} s, unique 1 KB bodies (`oha -Z`: the cache misses and stores). TTFB: {} sequential requests each on a new connection, median; stream = the mock's SSE answer through the proxy. Cache hit: the same cacheable request repeated, `x-cache-status: HIT` checked on every one.\n", knobs.rate, knobs.connections, knobs.seconds, knobs.ttfb_requests);
    let _ = writeln!(s, "## Memory (RSS of the proxy, MB)\n");
    let _ = writeln!(
        s,
        "| setup | before | after | requests in between | growth | after − plain after |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for setup in running.iter().filter(|s| !s.spec.is_probe()) {
        let Some((before, after, served)) = rows.get(&setup.spec.name).and_then(|r| r.rss) else {
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {before:.1} | {after:.1} | {served} | {:+.1} | {} |",
            setup.spec.name,
            after - before,
            delta(Some(after), plain_rss, 1)
        );
    }
    let _ = writeln!(s, "\nBefore = after the throughput and latency runs above; the requests (wrk for the time the count takes at the setup's saturated rate) have unique bodies (the cache fills to its configured bound, 16 MiB in {GATEWAY_INPUT}).\n");
    let _ = writeln!(s, "## Against the goals of issue 9\n");
    let full = rows.get("tollgate");
    let goal = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let full_ratio = full.and_then(Row::rps).zip(plain_rps).map(|(a, b)| a / b);
    let _ = writeln!(
        s,
        "- full chain ≥ 0.85 of plain req/s (1 KB): {} ({})",
        opt(full_ratio, 2),
        goal(full_ratio.map(|r| r >= 0.85))
    );
    for capability in ["router", "cache", "budget", "metrics", "adapter"] {
        if let Some(r) = rows
            .get(capability)
            .and_then(Row::rps)
            .zip(plain_rps)
            .map(|(a, b)| a / b)
        {
            let _ = writeln!(
                s,
                "- `{capability}` alone ≥ 0.90: {r:.2} ({})",
                goal(Some(r >= 0.90))
            );
        }
    }
    let p99 = full.and_then(|r| r.p99).zip(plain_p99).map(|(a, b)| a - b);
    let _ = writeln!(
        s,
        "- p99 at {}/s within 0.1 ms of plain: {} ms ({})",
        knobs.rate,
        opt(p99, 3),
        goal(p99.map(|d| d <= 0.1))
    );
    let ttfb = full
        .and_then(|r| r.ttfb_stream)
        .zip(plain_ttfb)
        .map(|(a, b)| a - b);
    let _ = writeln!(
        s,
        "- streaming TTFB within 0.5 ms of plain: {} ms ({})",
        opt(ttfb, 3),
        goal(ttfb.map(|d| d <= 0.5))
    );
    let hit = full.and_then(|r| r.cache_hit);
    let _ = writeln!(
        s,
        "- cache hit ≤ 0.3 ms p50: {} ms ({})",
        opt(hit, 3),
        goal(hit.map(|h| h <= 0.3))
    );
    let rss = full
        .and_then(|r| r.rss)
        .zip(plain_rss)
        .map(|((_, after, _), p)| after - p);
    let _ = writeln!(
        s,
        "- RSS ≤ plain + 25 MB: {} MB ({})",
        opt(rss, 1),
        goal(rss.map(|d| d <= 25.0))
    );
    let growth = full.and_then(|r| r.rss).map(|(b, a, _)| a - b);
    let _ = writeln!(s, "- RSS flat over the run: {} MB growth", opt(growth, 1));
    if !skipped.is_empty() || rows.values().any(|r| !r.failed.is_empty()) {
        let _ = writeln!(s, "\n## Not measured\n");
        for line in skipped {
            let _ = writeln!(s, "- {line}");
        }
        for (name, row) in rows {
            for failure in &row.failed {
                let _ = writeln!(s, "- {name}: {failure}");
            }
        }
    }
    if running.iter().any(|r| r.spec.is_wasm_probe()) {
        probe_table(&mut s, running, rows, plain_cpu);
    }
    if running
        .iter()
        .any(|r| matches!(r.spec.kind, SetupKind::NativeProbe(_)))
    {
        native_table(&mut s, running, rows, plain_cpu);
    }
    let _ = writeln!(s, "\n## Setups\n");
    for setup in running {
        let _ = writeln!(s, "- `{}`: {}", setup.spec.name, setup.spec.what);
    }
    s
}

/// The probe rows: what a wasm filter costs by being there, and each host call's price, from
/// `n` calls per request: (CPU − CPU of `buffer`) / n, or against plain Envoy for `empty` and
/// `buffer` themselves.
fn probe_table(
    s: &mut String,
    running: &[Running],
    rows: &BTreeMap<String, Row>,
    plain_cpu: Option<f64>,
) {
    let cpu_of = |probe: &str| rows.get(&format!("probe {probe}")).and_then(Row::cpu);
    let buffer_cpu = cpu_of("buffer");
    let _ = writeln!(
        s,
        "\n## What one host call costs (probe filter, `BENCH_PROBES`)\n"
    );
    let plain_rss = rows
        .get("plain-envoy")
        .and_then(|r| r.rss)
        .map(|(before, _, _)| before);
    let _ = writeln!(s, "| probe | 1 KB req/s | Envoy CPU µs/req | +µs vs plain | +µs vs `buffer` | calls/request | µs per call | RSS MB (− plain) |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for setup in running.iter().filter(|r| r.spec.is_wasm_probe()) {
        let Some(row) = rows.get(&setup.spec.name) else {
            continue;
        };
        let probe = setup.spec.name.trim_start_matches("probe ");
        let (call, n) = match probe {
            "replay" => (probe, REPLAY_CALLS),
            _ => probe
                .split_once('*')
                .map_or((probe, 1.0), |(c, n)| (c, n.parse().unwrap_or(1.0))),
        };
        let cpu = row.cpu();
        let base = if matches!(call, "empty" | "buffer") {
            plain_cpu
        } else {
            buffer_cpu
        };
        let per_call = cpu.zip(base).map(|(c, b)| (c - b) / n);
        let rss = row.rss.map(|(r, _, _)| r);
        let _ = writeln!(
            s,
            "| `{probe}` | {} | {} | {} | {} | {n} | {} | {} ({}) |",
            opt(row.rps(), 0),
            opt(cpu, 1),
            opt(cpu.zip(plain_cpu).map(|(c, p)| c - p), 1),
            opt(cpu.zip(buffer_cpu).map(|(c, b)| c - b), 1),
            opt(per_call, 2),
            opt(rss, 1),
            opt(rss.zip(plain_rss).map(|(r, p)| r - p), 1),
        );
    }
    let _ = writeln!(s, "\n`empty` continues every callback; `buffer` holds the headers until the whole body is in (as the pipeline does); every other probe is `buffer` plus its call made n times per request. A first request-header change makes Envoy clear its route cache and route again, so `set_header` (n = 1) prices that and `set_header*100` the calls after it.");
    if rows.contains_key("probe replay") {
        let _ = writeln!(s, "\n`replay` makes the {REPLAY_CALLS} host calls of one request through the benchmark chain, in the chain's phases and with its value sizes (header maps, both bodies, route and JWT properties, cache slot, ledger and budget bucket read and written with CAS, 4 response headers, 14 metric increments and 3 records, the access-log filter state, 7 clock reads), results dropped: its +µs vs `buffer` is what Envoy spends serving the chain's calls; the chain's CPU over `replay` is the chain's own code running in V8.");
    }
}

/// Host calls per request of `BENCH_PROBES=replay`: the benchmark chain's, as
/// integration/host/tests/probe_replay.rs holds them.
const REPLAY_CALLS: f64 = 43.0;

/// The native probe rows: a filter Envoy runs as native code (a dynamic module), next to the
/// wasm probe in the same mode when that ran too: what leaving V8 would buy.
fn native_table(
    s: &mut String,
    running: &[Running],
    rows: &BTreeMap<String, Row>,
    plain_cpu: Option<f64>,
) {
    let _ = writeln!(
        s,
        "\n## A native filter's floor (Envoy dynamic module, `BENCH_NATIVE_PROBES`)\n"
    );
    let plain_rss = rows
        .get("plain-envoy")
        .and_then(|r| r.rss)
        .map(|(before, _, _)| before);
    let native_buffer = rows.get("native buffer").and_then(Row::cpu);
    let _ = writeln!(s, "| native probe | 1 KB req/s | Envoy CPU µs/req | +µs vs plain | +µs vs native `buffer` | wasm probe +µs vs plain | RSS MB (− plain) |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for setup in running
        .iter()
        .filter(|r| matches!(r.spec.kind, SetupKind::NativeProbe(_)))
    {
        let Some(row) = rows.get(&setup.spec.name) else {
            continue;
        };
        let mode = setup.spec.name.trim_start_matches("native ");
        let cpu = row.cpu();
        let wasm = rows.get(&format!("probe {mode}")).and_then(Row::cpu);
        let rss = row.rss.map(|(r, _, _)| r);
        let _ = writeln!(
            s,
            "| `{mode}` | {} | {} | {} | {} | {} | {} ({}) |",
            opt(row.rps(), 0),
            opt(cpu, 1),
            opt(cpu.zip(plain_cpu).map(|(c, p)| c - p), 1),
            opt(cpu.zip(native_buffer).map(|(c, b)| c - b), 1),
            opt(wasm.zip(plain_cpu).map(|(w, p)| w - p), 1),
            opt(rss, 1),
            opt(rss.zip(plain_rss).map(|(r, p)| r - p), 1),
        );
    }
    let _ = writeln!(s, "\nThe same behaviours as the wasm probe's `empty` and `buffer`, compiled to a `.so` Envoy calls directly (integration/native-probe): no VM, no host-call ABI, no copy into a sandbox.");
    if rows.contains_key("native replay") {
        let _ = writeln!(s, "\n`replay` does the benchmark chain's host work of one request as a native module would: the wasm `replay`'s calls through the dynamic-module ABI (header maps, both bodies, route attribute and JWT metadata, 4 response headers, 12 counters, 3 gauge changes and 2 histograms, the access-log filter state), the shared data as a mutex-guarded map in the module with the same value sizes and CAS, 7 clock reads. Its +µs vs native `buffer` is what the chain's host calls would cost a native tollgate; the wasm column is the same work through V8.");
    }
}
