//! The host: plugins started the way Envoy starts them (base VM, canary, one VM per worker),
//! the virtual clock, HTTP callouts answered by the test, and what a test inspects afterwards.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use wasmtime::{Linker, Module};

use crate::abi::LogLevel;
use crate::error::HostError;
use crate::headers::Headers;
use crate::imports;
use crate::metrics::{self, MetricKind, StatsTag};
use crate::property::Value;
use crate::stream::Stream;
use crate::vm::{self, CalloutResponse, ContextKind, PluginInfo, Vm, VmData, VmSpec};
use crate::world::{Event, HttpCall, LogEntry, TrapReport, World};

/// What happens to a stream when the plugin's VM has failed (trapped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Envoy's default: a 503 local reply (details `wasm_fail_stream`).
    #[default]
    FailClosed,
    /// The filter is passed over: the stream goes on as if it were not configured.
    FailOpen,
    /// The failed stream gets the 503; the worker's VM is started afresh for the next stream
    /// (Envoy 1.33+; its reload backoff is not modelled: the next stream always reloads).
    FailReload,
}

/// One plugin (one `envoy.filters.http.wasm` entry) as the builder collects it.
#[derive(Debug, Clone)]
struct PluginSpec {
    source: ModuleSource,
    name: Option<String>,
    vm_id: String,
    root_id: String,
    configuration: Vec<u8>,
    vm_configuration: Vec<u8>,
    environment: Vec<(String, String)>,
    allow_on_headers_stop_iteration: bool,
    failure_policy: FailurePolicy,
}

#[derive(Debug, Clone)]
enum ModuleSource {
    Path(String),
    Bytes(Vec<u8>),
}

/// A started plugin.
pub(crate) struct Plugin {
    pub allow_on_headers_stop_iteration: bool,
    pub failure_policy: FailurePolicy,
}

/// Builds a [`Host`]: `.module(path)` starts a plugin, the methods after it configure that plugin;
/// call `.module(..)` again for the next filter of the chain (request order).
#[derive(Debug, Clone)]
pub struct HostBuilder {
    plugins: Vec<PluginSpec>,
    workers: usize,
    clusters: Vec<String>,
    stats_tags: Vec<(String, String)>,
    properties: Vec<(Vec<String>, Value)>,
    buffer_limit: usize,
    log_level: LogLevel,
    cpu_limit: Duration,
    error: Option<String>,
}

impl Default for HostBuilder {
    fn default() -> Self {
        Self {
            plugins: Vec::new(),
            workers: 1,
            clusters: Vec::new(),
            stats_tags: Vec::new(),
            properties: Vec::new(),
            buffer_limit: 1 << 20,
            log_level: LogLevel::Info,
            cpu_limit: Duration::from_secs(10),
            error: None,
        }
    }
}

impl HostBuilder {
    fn push(mut self, source: ModuleSource) -> Self {
        self.plugins.push(PluginSpec {
            source,
            name: None,
            vm_id: String::new(),
            root_id: String::new(),
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            environment: Vec::new(),
            allow_on_headers_stop_iteration: false,
            failure_policy: FailurePolicy::FailClosed,
        });
        self
    }

    fn last(mut self, f: impl FnOnce(&mut PluginSpec)) -> Self {
        match self.plugins.last_mut() {
            Some(plugin) => f(plugin),
            None => self.error = Some("configure a plugin after .module(..)".into()),
        }
        self
    }

    /// Adds a filter to the chain, loading the `.wasm` at `path`.
    pub fn module(self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().display().to_string();
        self.push(ModuleSource::Path(path))
    }

    /// Adds a filter to the chain from module bytes.
    pub fn module_bytes(self, bytes: impl Into<Vec<u8>>) -> Self {
        self.push(ModuleSource::Bytes(bytes.into()))
    }

    /// The plugin name (`plugin_name` property, log prefix); defaults to the root_id.
    pub fn name(self, name: &str) -> Self {
        self.last(|p| p.name = Some(name.to_string()))
    }

    /// `vm_config.vm_id`: plugins with the same vm_id and code share VMs and shared data.
    pub fn vm_id(self, vm_id: &str) -> Self {
        self.last(|p| p.vm_id = vm_id.to_string())
    }

    /// The plugin's `root_id`.
    pub fn root_id(self, root_id: &str) -> Self {
        self.last(|p| p.root_id = root_id.to_string())
    }

    /// Plugin configuration bytes (a `StringValue`'s content).
    pub fn configuration(self, bytes: impl AsRef<[u8]>) -> Self {
        self.last(|p| p.configuration = bytes.as_ref().to_vec())
    }

    /// VM configuration bytes (`vm_config.configuration`), passed to `on_vm_start`.
    pub fn vm_configuration(self, bytes: impl AsRef<[u8]>) -> Self {
        self.last(|p| p.vm_configuration = bytes.as_ref().to_vec())
    }

    /// Adds a variable to the VM's WASI environment (`environ_get`), as Envoy's
    /// `vm_config.environment_variables` (`key_values`, or `host_env_keys` with the variable
    /// set in Envoy's environment) does. Empty by default, as in Envoy.
    pub fn env(self, name: &str, value: &str) -> Self {
        self.last(|p| p.environment.push((name.to_string(), value.to_string())))
    }

    /// `allow_on_headers_stop_iteration`: Pause on headers becomes StopIteration (bodies still come).
    pub fn allow_on_headers_stop_iteration(self, allow: bool) -> Self {
        self.last(|p| p.allow_on_headers_stop_iteration = allow)
    }

    /// `failure_policy` of the plugin.
    pub fn failure_policy(self, policy: FailurePolicy) -> Self {
        self.last(|p| p.failure_policy = policy)
    }

    /// The number of worker threads, hence of VMs per plugin (Envoy `--concurrency`).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// A cluster `dispatch_http_call` may target (others get BadArgument, as in Envoy).
    pub fn cluster(mut self, name: &str) -> Self {
        self.clusters.push(name.to_string());
        self
    }

    /// A `stats_config.stats_tags` entry, used by [`Host::prometheus_lines`].
    pub fn stats_tag(mut self, tag_name: &str, regex: &str) -> Self {
        self.stats_tags
            .push((tag_name.to_string(), regex.to_string()));
        self
    }

    /// An attribute every context sees (e.g. `xds.cluster_name`); streams may override it.
    pub fn property(mut self, path: &[&str], value: Value) -> Self {
        self.properties
            .push((path.iter().map(|s| s.to_string()).collect(), value));
        self
    }

    /// The per-stream buffer limit (default 1 MiB): beyond it a buffered request gets 413, a
    /// buffered response 500.
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// What `proxy_get_log_level` answers (Envoy's `wasm` logger level, default info).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// How long one callback may run before it is interrupted (default 10 s).
    pub fn cpu_limit(mut self, limit: Duration) -> Self {
        self.cpu_limit = limit;
        self
    }

    /// Loads every module, starts the base VM, the canary and the worker VMs.
    pub fn build(self) -> Result<Host, HostError> {
        if let Some(error) = self.error {
            return Err(HostError::Config(error));
        }
        if self.plugins.is_empty() {
            return Err(HostError::Config("no module: call .module(path)".into()));
        }
        let stats_tags = self
            .stats_tags
            .iter()
            .map(|(name, regex)| StatsTag::new(name, regex))
            .collect::<Result<Vec<_>, _>>()?;
        let mut world = World {
            buffer_limit: self.buffer_limit,
            log_level: Some(self.log_level),
            clusters: self.clusters.iter().cloned().collect(),
            host_properties: Value::Map(Vec::new()),
            ..World::default()
        };
        for (path, value) in self.properties {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            world.host_properties.insert(&path, value);
        }
        let world = Rc::new(RefCell::new(world));
        let mut linker = Linker::new(vm::engine()?);
        imports::define(&mut linker).map_err(|e| HostError::Config(format!("{e:#}")))?;

        let mut modules = Vec::new();
        let mut codes = Vec::new();
        for spec in &self.plugins {
            let bytes = match &spec.source {
                ModuleSource::Path(path) => {
                    std::fs::read(path).map_err(|source| HostError::Read {
                        path: path.clone(),
                        source,
                    })?
                }
                ModuleSource::Bytes(bytes) => bytes.clone(),
            };
            let module = vm::compile(&bytes)?;
            vm::validate_exports(&module)?;
            modules.push(module);
            codes.push(bytes);
        }
        let infos: Rc<Vec<PluginInfo>> = Rc::new(
            self.plugins
                .iter()
                .map(|p| PluginInfo {
                    name: p.name.clone().unwrap_or_else(|| p.root_id.clone()),
                    root_id: p.root_id.clone(),
                    vm_id: p.vm_id.clone(),
                })
                .collect(),
        );
        // Plugins with the same vm_id and code share one VM per worker (Envoy's VM key).
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (index, spec) in self.plugins.iter().enumerate() {
            let same = groups.iter_mut().find(|g| {
                let first = g[0];
                self.plugins[first].vm_id == spec.vm_id && codes[first] == codes[index]
            });
            match same {
                Some(group) => group.push(index),
                None => groups.push(vec![index]),
            }
        }
        let starter = Starter {
            linker,
            world: world.clone(),
            infos: infos.clone(),
            specs: self.plugins.clone(),
            modules,
            cpu_limit: self.cpu_limit,
            groups: groups.clone(),
        };
        for group in &groups {
            starter.start_vm(group[0], usize::MAX, None)?; // the base VM: _initialize only
        }
        for plugin in 0..self.plugins.len() {
            let mut canary = starter.start_vm(plugin, usize::MAX, None)?;
            starter.start_root(&mut canary, plugin)?; // killed when dropped
        }
        let mut vms = Vec::new();
        let mut worker_vms = vec![vec![0; self.plugins.len()]; self.workers];
        let mut root_contexts = vec![vec![0; self.plugins.len()]; self.workers];
        for worker in 0..self.workers {
            for group in &groups {
                let mut vm = starter.start_vm(group[0], vms.len(), Some(worker))?;
                for &plugin in group {
                    root_contexts[worker][plugin] = starter.start_root(&mut vm, plugin)?;
                    worker_vms[worker][plugin] = vms.len();
                }
                vms.push(vm);
            }
        }
        let plugins = self
            .plugins
            .iter()
            .map(|spec| Plugin {
                allow_on_headers_stop_iteration: spec.allow_on_headers_stop_iteration,
                failure_policy: spec.failure_policy,
            })
            .collect();
        let inner = HostInner {
            world,
            vms,
            plugins,
            worker_vms,
            root_contexts,
            next_worker: 0,
            next_stream: 0,
            stats_tags,
            starter,
        };
        let host = Host {
            inner: Rc::new(RefCell::new(inner)),
        };
        host.inner.borrow_mut().run_events();
        Ok(host)
    }
}

/// Starts VMs and root contexts for the builder.
pub(crate) struct Starter {
    linker: Linker<VmData>,
    world: Rc<RefCell<World>>,
    infos: Rc<Vec<PluginInfo>>,
    specs: Vec<PluginSpec>,
    modules: Vec<Module>,
    cpu_limit: Duration,
    /// Plugins sharing one VM per worker (same vm_id and code), in chain order.
    groups: Vec<Vec<usize>>,
}

impl Starter {
    fn start_vm(
        &self,
        plugin: usize,
        vm_index: usize,
        worker: Option<usize>,
    ) -> Result<Vm, HostError> {
        let spec = &self.specs[plugin];
        Vm::start(VmSpec {
            module: &self.modules[plugin],
            linker: &self.linker,
            world: self.world.clone(),
            plugins: self.infos.clone(),
            vm_index,
            vm_id: spec.vm_id.clone(),
            worker,
            vm_configuration: spec.vm_configuration.clone(),
            environment: spec.environment.clone(),
            cpu_limit: self.cpu_limit,
        })
        .map_err(|e| match e {
            HostError::StartTrap { phase, message, .. } => HostError::StartTrap {
                root_id: spec.root_id.clone(),
                phase,
                message,
            },
            other => other,
        })
    }

    /// `proxy_on_context_create(root, 0)`, `proxy_on_vm_start`, `proxy_on_configure`.
    fn start_root(&self, vm: &mut Vm, plugin: usize) -> Result<u32, HostError> {
        let spec = &self.specs[plugin];
        let root = vm.alloc_context(ContextKind::Root { plugin });
        let trap = |vm: &Vm, phase: &str| HostError::StartTrap {
            root_id: spec.root_id.clone(),
            phase: phase.to_string(),
            message: last_trap_text(vm),
        };
        vm.call(
            |c| c.context_create.as_ref(),
            "proxy_on_context_create",
            root,
            (root as i32, 0),
        )
        .map_err(|_| trap(vm, "proxy_on_context_create"))?;
        let vm_config_len = spec.vm_configuration.len() as i32;
        let started = vm
            .call(
                |c| c.vm_start.as_ref(),
                "proxy_on_vm_start",
                root,
                (root as i32, vm_config_len),
            )
            .map_err(|_| trap(vm, "proxy_on_vm_start"))?;
        if started == Some(0) {
            return Err(HostError::ConfigureFailed {
                root_id: spec.root_id.clone(),
                callback: "proxy_on_vm_start",
                log: error_logs(vm),
            });
        }
        vm.store.data_mut().plugin_configuration = Some(spec.configuration.clone());
        let configured = vm.call(
            |c| c.configure.as_ref(),
            "proxy_on_configure",
            root,
            (root as i32, spec.configuration.len() as i32),
        );
        vm.store.data_mut().plugin_configuration = None;
        if configured.map_err(|_| trap(vm, "proxy_on_configure"))? == Some(0) {
            return Err(HostError::ConfigureFailed {
                root_id: spec.root_id.clone(),
                callback: "proxy_on_configure",
                log: error_logs(vm),
            });
        }
        vm.take_actions();
        Ok(root)
    }
}

/// The module's error-level log lines so far, as `: a; b` (empty when there are none).
fn error_logs(vm: &Vm) -> String {
    let world = vm.store.data().world.borrow();
    let lines: Vec<&str> = world
        .logs
        .iter()
        .filter(|l| matches!(l.level, LogLevel::Error | LogLevel::Critical))
        .map(|l| l.message.as_str())
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join("; "))
    }
}

fn last_trap_text(vm: &Vm) -> String {
    let world = vm.store.data().world.borrow();
    world
        .traps
        .last()
        .map(|t| match &t.panic_message {
            Some(panic) => format!("{} ({panic})", t.message),
            None => t.message.clone(),
        })
        .unwrap_or_default()
}

/// The host's state behind the `Rc` that [`Host`] and every [`Stream`] share.
pub(crate) struct HostInner {
    pub world: Rc<RefCell<World>>,
    pub vms: Vec<Vm>,
    pub plugins: Vec<Plugin>,
    pub worker_vms: Vec<Vec<usize>>,
    pub root_contexts: Vec<Vec<u32>>,
    pub next_worker: usize,
    pub next_stream: u64,
    pub stats_tags: Vec<StatsTag>,
    /// Kept to restart failed VMs (`FailurePolicy::FailReload`).
    pub starter: Starter,
}

/// A running set of plugins, driven by a test. Cheap to clone (a handle).
///
/// See the crate documentation for an example.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Rc<RefCell<HostInner>>,
}

impl Host {
    /// Starts configuring a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// Opens a new HTTP stream on the next worker (round robin, starting at worker 0).
    pub fn stream(&self) -> Stream {
        let id = self.inner.borrow_mut().open_stream(None);
        Stream::new(self.inner.clone(), id)
    }

    /// Opens a new HTTP stream on the given worker.
    pub fn stream_on_worker(&self, worker: usize) -> Stream {
        let id = self.inner.borrow_mut().open_stream(Some(worker));
        Stream::new(self.inner.clone(), id)
    }

    /// The number of worker VMs per plugin.
    pub fn workers(&self) -> usize {
        self.inner.borrow().worker_vms.len()
    }

    /// Moves the virtual clock forward, firing ticks and HTTP-call timeouts in time order.
    pub fn advance_time(&self, by: Duration) {
        self.inner.borrow_mut().advance_time(by);
    }

    /// The virtual wall clock (what `get_current_time` returns), in nanoseconds since the epoch.
    pub fn now_unix_nanos(&self) -> u64 {
        self.world().borrow().now_nanos()
    }

    fn world(&self) -> Rc<RefCell<World>> {
        self.inner.borrow().world.clone()
    }

    /// How many times the modules called each hostcall (`proxy_*` name) since the host was
    /// built or [`Host::reset_hostcalls`]: what a request costs in crossings, which Envoy
    /// prices at ~1-2 µs each (docs/benchmarks.md).
    pub fn hostcalls(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.world().borrow().hostcalls.clone()
    }

    /// Starts counting hostcalls afresh.
    pub fn reset_hostcalls(&self) {
        self.world().borrow_mut().hostcalls.clear();
    }

    /// HTTP callouts dispatched and not yet answered, oldest first.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.world().borrow().http_calls.clone()
    }

    /// Every HTTP callout dispatched so far, answered or not.
    pub fn dispatched_http_calls(&self) -> Vec<HttpCall> {
        self.world().borrow().dispatched_calls.clone()
    }

    /// Answers a callout: the module's `on_http_call_response` runs now with these headers and
    /// body (include `:status`).
    pub fn respond_http_call<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        id: u64,
        headers: &[(K, V)],
        body: &[u8],
    ) -> Result<(), HostError> {
        let response = CalloutResponse {
            headers: Headers::from_pairs(headers),
            body: body.to_vec(),
            trailers: Headers::new(),
        };
        self.inner.borrow_mut().complete_call(id, Some(response))
    }

    /// Fails a callout (reset, no healthy upstream): the module sees 0 headers, 0 body bytes.
    pub fn fail_http_call(&self, id: u64) -> Result<(), HostError> {
        self.inner.borrow_mut().complete_call(id, None)
    }

    /// A counter or gauge by its Envoy name, e.g. `wasmcustom.requests_total`.
    pub fn metric(&self, envoy_name: &str) -> Option<u64> {
        let world = self.world();
        let world = world.borrow();
        let metric = world.metrics.by_name.get(envoy_name)?;
        (metric.kind != MetricKind::Histogram).then_some(metric.value)
    }

    /// The values recorded in a histogram, by Envoy name.
    pub fn histogram(&self, envoy_name: &str) -> Option<Vec<u64>> {
        let world = self.world();
        let world = world.borrow();
        let metric = world.metrics.by_name.get(envoy_name)?;
        (metric.kind == MetricKind::Histogram).then(|| metric.samples.clone())
    }

    /// Every counter and gauge as Envoy's `/stats/prometheus` prints it, with the builder's
    /// stats_tags applied, e.g. `tokens_total{provider="openai"} 12`.
    pub fn prometheus_lines(&self) -> Vec<String> {
        let inner = self.inner.borrow();
        let world = inner.world.borrow();
        world
            .metrics
            .by_name
            .iter()
            .filter(|(_, m)| m.kind != MetricKind::Histogram)
            .filter_map(|(name, m)| metrics::prometheus_line(name, m.value, &inner.stats_tags))
            .collect()
    }

    /// Every log line captured so far.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.world().borrow().logs.clone()
    }

    /// The messages logged at exactly `level`.
    pub fn log_messages(&self, level: LogLevel) -> Vec<String> {
        let world = self.world();
        let world = world.borrow();
        world
            .logs
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.clone())
            .collect()
    }

    /// Forgets the captured logs.
    pub fn clear_logs(&self) {
        self.world().borrow_mut().logs.clear();
    }

    /// Every trap so far, with the panic message when the module logged one.
    pub fn traps(&self) -> Vec<TrapReport> {
        self.world().borrow().traps.clone()
    }

    /// A shared-data entry of `vm_id`: value and CAS.
    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        let world = self.world();
        let world = world.borrow();
        world.shared_data.get(vm_id)?.get(key.as_bytes()).cloned()
    }
}

impl HostInner {
    fn open_stream(&mut self, worker: Option<usize>) -> u64 {
        let workers = self.worker_vms.len();
        let worker = worker.unwrap_or_else(|| {
            let w = self.next_worker % workers;
            self.next_worker += 1;
            w
        }) % workers;
        self.reload_failed_vms(worker);
        self.next_stream += 1;
        let id = self.next_stream;
        let mut filters = Vec::new();
        for plugin in 0..self.plugins.len() {
            let vm = self.worker_vms[worker][plugin];
            let context_id = self.vms[vm].alloc_context(ContextKind::Stream {
                plugin,
                stream: id,
                filter: plugin,
            });
            filters.push(crate::stream_state::FilterSlot {
                plugin,
                vm,
                vm_generation: self.vms[vm].generation,
                context_id,
                created: false,
                skip: false,
                request: Default::default(),
                response: Default::default(),
            });
        }
        let state = crate::stream_state::StreamState {
            worker,
            filters,
            properties: Value::Map(Vec::new()),
            ..Default::default()
        };
        self.world.borrow_mut().streams.insert(id, state);
        id
    }

    /// Delivers `proxy_on_http_call_response` (None: failure with 0 headers).
    pub(crate) fn complete_call(
        &mut self,
        id: u64,
        response: Option<CalloutResponse>,
    ) -> Result<(), HostError> {
        let call = {
            let mut world = self.world.borrow_mut();
            let index = world
                .http_calls
                .iter()
                .position(|c| c.id == id)
                .ok_or_else(|| HostError::Usage(format!("no pending HTTP call {id}")))?;
            world.http_calls.remove(index)
        };
        self.deliver_call(&call, response);
        self.run_events();
        Ok(())
    }

    fn deliver_call(&mut self, call: &HttpCall, response: Option<CalloutResponse>) {
        let Some(vm) = self.vms.get_mut(call.vm) else {
            return;
        };
        let success = response.is_some();
        let response = response.unwrap_or_default();
        let counts = if success {
            (
                response.headers.len() as i32,
                response.body.len() as i32,
                response.trailers.len() as i32,
            )
        } else {
            (0, 0, 0)
        };
        vm.store.data_mut().callout_response = Some(response);
        vm.store.data_mut().status = imports::callout_status(success);
        let root = call.root_context as i32;
        let result = vm.call(
            |c| c.http_call_response.as_ref(),
            "proxy_on_http_call_response",
            call.root_context,
            (root, call.token as i32, counts.0, counts.1, counts.2),
        );
        vm.store.data_mut().callout_response = None;
        let actions = vm.take_actions();
        if result.is_ok() {
            self.apply_actions(call.vm, actions);
        }
    }

    /// Runs posted work (queue notifications) until none is left.
    pub(crate) fn run_events(&mut self) {
        loop {
            let event = self.world.borrow_mut().events.pop_front();
            let Some(Event::QueueReady { vm, root, queue }) = event else {
                return;
            };
            let Some(target) = self.vms.get_mut(vm) else {
                continue;
            };
            let result = target.call(
                |c| c.queue_ready.as_ref(),
                "proxy_on_queue_ready",
                root,
                (root as i32, queue as i32),
            );
            let actions = target.take_actions();
            if result.is_ok() {
                self.apply_actions(vm, actions);
            }
        }
    }

    fn advance_time(&mut self, by: Duration) {
        let target = self.world.borrow().elapsed_nanos + by.as_nanos() as u64;
        loop {
            let next_tick = self
                .vms
                .iter()
                .enumerate()
                .filter(|(_, vm)| !vm.failed)
                .flat_map(|(index, vm)| {
                    vm.store
                        .data()
                        .ticks
                        .iter()
                        .map(move |(root, t)| (t.next_nanos, index, *root))
                })
                .filter(|(at, _, _)| *at <= target)
                .min();
            let next_timeout = self
                .world
                .borrow()
                .http_calls
                .iter()
                .filter_map(|c| c.deadline_nanos.map(|d| (d, c.id)))
                .filter(|(at, _)| *at <= target)
                .min();
            match (next_tick, next_timeout) {
                (Some((at, vm, root)), timeout) if timeout.is_none_or(|(t, _)| at < t) => {
                    self.world.borrow_mut().elapsed_nanos = at;
                    self.fire_tick(vm, root);
                }
                (_, Some((at, id))) => {
                    self.world.borrow_mut().elapsed_nanos = at;
                    let _ = self.complete_call(id, None);
                }
                _ => break,
            }
            self.run_events();
        }
        self.world.borrow_mut().elapsed_nanos = target;
    }

    fn fire_tick(&mut self, vm_index: usize, root: u32) {
        let vm = &mut self.vms[vm_index];
        if let Some(tick) = vm.store.data_mut().ticks.get_mut(&root) {
            tick.next_nanos += tick.period_nanos;
        }
        let result = vm.call(|c| c.tick.as_ref(), "proxy_on_tick", root, root as i32);
        let actions = vm.take_actions();
        if result.is_ok() {
            self.apply_actions(vm_index, actions);
        }
    }

    /// `FailReload`: replaces the worker's failed VMs with fresh ones (start, root contexts).
    fn reload_failed_vms(&mut self, worker: usize) {
        for group in self.starter.groups.clone() {
            let index = self.worker_vms[worker][group[0]];
            let reload = group
                .iter()
                .any(|&p| self.plugins[p].failure_policy == FailurePolicy::FailReload);
            if !self.vms[index].failed || !reload {
                continue;
            }
            let Ok(mut vm) = self.starter.start_vm(group[0], index, Some(worker)) else {
                continue;
            };
            // Context ids go on from the failed VM's, so none is reused.
            vm.generation = self.vms[index].generation + 1;
            vm.store.data_mut().next_context_id = self.vms[index].store.data().next_context_id;
            let mut roots = Vec::new();
            for &plugin in &group {
                match self.starter.start_root(&mut vm, plugin) {
                    Ok(root) => roots.push((plugin, root)),
                    Err(_) => break,
                }
            }
            if roots.len() == group.len() {
                for (plugin, root) in roots {
                    self.root_contexts[worker][plugin] = root;
                }
                // Callouts of the failed VM die with it.
                self.world.borrow_mut().http_calls.retain(|c| c.vm != index);
                self.vms[index] = vm;
            }
        }
    }

    /// The stream and filter a context id of a VM belongs to.
    pub(crate) fn stream_filter(&self, vm: usize, context: u32) -> Option<(u64, usize)> {
        match self.vms.get(vm)?.store.data().contexts.get(&context)? {
            ContextKind::Stream { stream, filter, .. } => Some((*stream, *filter)),
            ContextKind::Root { .. } => None,
        }
    }
}
