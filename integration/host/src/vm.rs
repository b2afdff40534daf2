//! One wasm VM: compiling and validating a module the way Envoy's V8 does, instantiating it with
//! the Envoy import surface, and calling its callbacks with a memory cap and a CPU deadline.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use wasmtime::{
    Config, Engine, ExternType, FuncType, Instance, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc, WasmParams, WasmResults,
};

use crate::abi::LogLevel;
use crate::error::HostError;
use crate::headers::Headers;
use crate::world::{TrapReport, World};

/// cpp-host `PROXY_WASM_HOST_MAX_WASM_MEMORY_SIZE_BYTES`: 1 GiB per VM.
pub(crate) const MAX_MEMORY_BYTES: usize = 1 << 30;

/// How often the process-wide ticker advances the engine epoch.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The process-wide engine (epoch interruption on) and its epoch ticker thread.
pub(crate) fn engine() -> Result<&'static Engine, HostError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // `perf record` names the module's functions from /tmp/perf-<pid>.map (docs/benchmarks.md).
        #[cfg(feature = "perfmap")]
        if std::env::var_os("TOLLGATE_HOST_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| e.to_string())?;
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("tollgate-host-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                ticking.increment_epoch();
            })
            .map_err(|e| e.to_string())?;
        Ok(engine)
    });
    engine.as_ref().map_err(|e| HostError::Compile(e.clone()))
}

/// Compiles a module once per process (tests load the same .wasm many times).
pub(crate) fn compile(bytes: &[u8]) -> Result<Module, HostError> {
    static MODULES: OnceLock<Mutex<HashMap<Vec<u8>, Module>>> = OnceLock::new();
    let cache = MODULES.get_or_init(Default::default);
    // Held while compiling, so parallel tests compile each module once.
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(module) = cache.get(bytes) {
        return Ok(module.clone());
    }
    let module = match load_compiled(bytes) {
        Some(module) => module,
        None => {
            let module =
                Module::new(engine()?, bytes).map_err(|e| HostError::Compile(format!("{e:#}")))?;
            store_compiled(bytes, &module);
            module
        }
    };
    cache.insert(bytes.to_vec(), module.clone());
    Ok(module)
}

/// Where compiled modules are kept between test processes: `$TOLLGATE_HOST_CACHE` or
/// `<temp>/tollgate-host-modules`. Each test binary is a process of its own, and compiling a
/// 500 KB filter with a debug build of cranelift takes tens of seconds.
fn compiled_path(bytes: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    let dir = std::env::var_os("TOLLGATE_HOST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tollgate-host-modules"));
    dir.join(format!("{:016x}-{}.cwasm", hasher.finish(), bytes.len()))
}

fn load_compiled(bytes: &[u8]) -> Option<Module> {
    let path = compiled_path(bytes);
    if !path.exists() {
        return None;
    }
    // SAFETY: the file is one this function's sibling `store_compiled` wrote with
    // `Module::serialize` (named by a hash of the wasm bytes); wasmtime checks that it was made
    // by the same wasmtime version and engine configuration and errors otherwise (then we
    // compile afresh).
    unsafe { Module::deserialize_file(engine().ok()?, &path) }.ok()
}

fn store_compiled(bytes: &[u8], module: &Module) {
    let path = compiled_path(bytes);
    let (Some(dir), Ok(serialized)) = (path.parent(), module.serialize()) else {
        return;
    };
    // Written to a temporary name first so a concurrent reader never sees half a file.
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&temporary, serialized).is_ok() {
        let _ = std::fs::rename(&temporary, &path);
    }
}

/// Export name and Envoy's expected signature, for every callback the host may call.
const CALLBACK_SIGNATURES: &[(&str, &str)] = &[
    ("_initialize", "() -> ()"),
    ("_start", "() -> ()"),
    ("main", "(i32, i32) -> i32"),
    ("__main_void", "() -> i32"),
    ("malloc", "(i32) -> i32"),
    ("proxy_on_memory_allocate", "(i32) -> i32"),
    ("proxy_on_context_create", "(i32, i32) -> ()"),
    ("proxy_on_vm_start", "(i32, i32) -> i32"),
    ("proxy_on_configure", "(i32, i32) -> i32"),
    ("proxy_on_tick", "(i32) -> ()"),
    ("proxy_on_queue_ready", "(i32, i32) -> ()"),
    ("proxy_on_request_headers", "(i32, i32, i32) -> i32"),
    ("proxy_on_request_body", "(i32, i32, i32) -> i32"),
    ("proxy_on_request_trailers", "(i32, i32) -> i32"),
    ("proxy_on_response_headers", "(i32, i32, i32) -> i32"),
    ("proxy_on_response_body", "(i32, i32, i32) -> i32"),
    ("proxy_on_response_trailers", "(i32, i32) -> i32"),
    (
        "proxy_on_http_call_response",
        "(i32, i32, i32, i32, i32) -> ()",
    ),
    ("proxy_on_done", "(i32) -> i32"),
    ("proxy_on_log", "(i32) -> ()"),
    ("proxy_on_delete", "(i32) -> ()"),
];

/// A function type as text, e.g. `(i32, i64) -> i32`.
pub(crate) fn signature(ty: &FuncType) -> String {
    let params: Vec<String> = ty.params().map(|p| p.to_string()).collect();
    let results: Vec<String> = ty.results().map(|r| r.to_string()).collect();
    let results = match results.len() {
        0 => "()".to_string(),
        1 => results[0].clone(),
        _ => format!("({})", results.join(", ")),
    };
    format!("({}) -> {results}", params.join(", "))
}

/// Checks what Envoy checks before linking: the ABI marker, memory, allocator, callback types.
pub(crate) fn validate_exports(module: &Module) -> Result<(), HostError> {
    let exports: HashMap<&str, ExternType> = module.exports().map(|e| (e.name(), e.ty())).collect();
    if !exports.contains_key("proxy_abi_version_0_2_1")
        && !exports.contains_key("proxy_abi_version_0_2_0")
    {
        return Err(HostError::MissingAbiVersion);
    }
    if !matches!(exports.get("memory"), Some(ExternType::Memory(_))) {
        return Err(HostError::MissingMemory);
    }
    for (name, expected) in CALLBACK_SIGNATURES {
        match exports.get(name) {
            Some(ExternType::Func(ty)) if signature(ty) == *expected => {}
            Some(ExternType::Func(ty)) => {
                return Err(HostError::ExportSignature {
                    name: name.to_string(),
                    expected: expected.to_string(),
                    found: signature(ty),
                })
            }
            Some(_) => {
                return Err(HostError::ExportSignature {
                    name: name.to_string(),
                    expected: expected.to_string(),
                    found: "not a function".into(),
                })
            }
            None => {}
        }
    }
    if !exports.contains_key("malloc") && !exports.contains_key("proxy_on_memory_allocate") {
        return Err(HostError::MissingAllocator);
    }
    Ok(())
}

/// What a hostcall may do now: V8 traps "restricted" callbacks during start-up and in `malloc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `_initialize` / `main`: only logging and the WASI functions.
    Starting,
    /// Inside the module's allocator: only `proxy_log`, `fd_write`, `clock_time_get`, `poll_oneoff`.
    Allocating,
    /// Callbacks: everything.
    Running,
}

/// Who a context id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextKind {
    Root {
        plugin: usize,
    },
    Stream {
        plugin: usize,
        stream: u64,
        filter: usize,
    },
}

/// An action a module asked for that Envoy runs only after the VM call returns.
#[derive(Debug, Clone)]
pub(crate) enum DeferredAction {
    Continue {
        context: u32,
        request: bool,
    },
    Close {
        context: u32,
    },
    LocalReply {
        context: u32,
        reply: LocalReplyRequest,
    },
}

/// `proxy_send_local_response` arguments.
#[derive(Debug, Clone)]
pub(crate) struct LocalReplyRequest {
    pub status: u32,
    pub details: String,
    pub body: Vec<u8>,
    pub headers: Headers,
}

/// An HTTP callout's answer, visible during `proxy_on_http_call_response`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CalloutResponse {
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
}

/// The plugin facts hostcalls need (log prefix, properties).
#[derive(Debug, Clone)]
pub(crate) struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
}

/// A root context's tick timer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tick {
    pub period_nanos: u64,
    pub next_nanos: u64,
}

/// The store data of one VM: what hostcalls read and write.
pub(crate) struct VmData {
    pub world: Rc<RefCell<World>>,
    pub plugins: Rc<Vec<PluginInfo>>,
    pub limits: StoreLimits,
    pub phase: Phase,
    pub memory: Option<Memory>,
    pub allocator: Option<TypedFunc<i32, i32>>,
    pub vm_index: usize,
    pub vm_id: String,
    pub worker: Option<usize>,
    pub vm_configuration: Vec<u8>,
    /// The WASI environment (`vm_config.environment_variables`), in order.
    pub environment: Vec<(String, String)>,
    pub contexts: HashMap<u32, ContextKind>,
    pub next_context_id: u32,
    pub effective_context: u32,
    pub plugin_configuration: Option<Vec<u8>>,
    pub callout_response: Option<CalloutResponse>,
    pub actions: Vec<DeferredAction>,
    pub metric_ids: HashMap<u32, String>,
    pub metric_names: HashMap<String, u32>,
    pub next_metric_index: u32,
    pub next_http_token: u32,
    pub ticks: HashMap<u32, Tick>,
    pub status: (u32, Vec<u8>),
    pub queue_registrations: Vec<u32>,
}

impl VmData {
    /// The root_id of the effective context's plugin, for log lines.
    pub fn effective_root_id(&self) -> String {
        match self.contexts.get(&self.effective_context) {
            Some(ContextKind::Root { plugin } | ContextKind::Stream { plugin, .. }) => self
                .plugins
                .get(*plugin)
                .map(|p| p.root_id.clone())
                .unwrap_or_default(),
            None => String::new(),
        }
    }

    /// The root context that owns `context` (itself for a root).
    pub fn root_of(&self, context: u32) -> Option<u32> {
        match self.contexts.get(&context)? {
            ContextKind::Root { .. } => Some(context),
            ContextKind::Stream { plugin, .. } => self.contexts.iter().find_map(|(id, kind)| {
                matches!(kind, ContextKind::Root { plugin: p } if p == plugin).then_some(*id)
            }),
        }
    }

    /// Appends a log line to the world.
    pub fn log(&self, level: LogLevel, message: String) {
        let root_id = self.effective_root_id();
        self.world.borrow_mut().logs.push(crate::world::LogEntry {
            level,
            message,
            root_id,
            worker: self.worker,
        });
    }
}

/// `proxy_on_http_call_response(root, token, headers, body_size, trailers)`.
type CalloutCallback = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The callbacks of one instance, looked up once.
pub(crate) struct Callbacks {
    pub context_create: Option<TypedFunc<(i32, i32), ()>>,
    pub vm_start: Option<TypedFunc<(i32, i32), i32>>,
    pub configure: Option<TypedFunc<(i32, i32), i32>>,
    pub tick: Option<TypedFunc<i32, ()>>,
    pub queue_ready: Option<TypedFunc<(i32, i32), ()>>,
    pub request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    pub response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    pub response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    pub http_call_response: Option<CalloutCallback>,
    pub done: Option<TypedFunc<i32, i32>>,
    pub log: Option<TypedFunc<i32, ()>>,
    pub delete: Option<TypedFunc<i32, ()>>,
}

/// Returned when a callback trapped; the VM is failed from then on.
#[derive(Debug, Clone)]
pub(crate) struct Trapped;

/// One instantiated VM.
pub(crate) struct Vm {
    pub store: Store<VmData>,
    pub callbacks: Callbacks,
    pub failed: bool,
    pub cpu_limit_ticks: u64,
    /// Bumped when a failed VM is replaced; contexts of an older generation stay failed.
    pub generation: u32,
}

/// Everything needed to start a VM.
pub(crate) struct VmSpec<'a> {
    pub module: &'a Module,
    pub linker: &'a Linker<VmData>,
    pub world: Rc<RefCell<World>>,
    pub plugins: Rc<Vec<PluginInfo>>,
    pub vm_index: usize,
    pub vm_id: String,
    pub worker: Option<usize>,
    pub vm_configuration: Vec<u8>,
    pub environment: Vec<(String, String)>,
    pub cpu_limit: Duration,
}

impl Vm {
    /// Instantiates the module and runs `_initialize` (then `main`/`__main_void`) or `_start`,
    /// with hostcalls restricted as V8 restricts them.
    pub fn start(spec: VmSpec<'_>) -> Result<Vm, HostError> {
        let data = VmData {
            world: spec.world,
            plugins: spec.plugins,
            limits: StoreLimitsBuilder::new()
                .memory_size(MAX_MEMORY_BYTES)
                .trap_on_grow_failure(true)
                .build(),
            phase: Phase::Starting,
            memory: None,
            allocator: None,
            vm_index: spec.vm_index,
            vm_id: spec.vm_id,
            worker: spec.worker,
            vm_configuration: spec.vm_configuration,
            environment: spec.environment,
            contexts: HashMap::new(),
            next_context_id: 1,
            effective_context: 0,
            plugin_configuration: None,
            callout_response: None,
            actions: Vec::new(),
            metric_ids: HashMap::new(),
            metric_names: HashMap::new(),
            next_metric_index: 0,
            next_http_token: 0,
            ticks: HashMap::new(),
            status: (0, Vec::new()),
            queue_registrations: Vec::new(),
        };
        let mut store = Store::new(spec.module.engine(), data);
        store.limiter(|data| &mut data.limits);
        let cpu_limit_ticks = (spec.cpu_limit.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(cpu_limit_ticks);
        check_imports(spec.module, spec.linker, &mut store)?;
        let instance = spec
            .linker
            .instantiate(&mut store, spec.module)
            .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(HostError::MissingMemory)?;
        let allocator = match instance.get_typed_func::<i32, i32>(&mut store, "malloc") {
            Ok(f) => f,
            Err(_) => instance
                .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
                .map_err(|_| HostError::MissingAllocator)?,
        };
        store.data_mut().memory = Some(memory);
        store.data_mut().allocator = Some(allocator);
        let callbacks = Callbacks::lookup(&instance, &mut store);
        let mut vm = Vm {
            store,
            callbacks,
            failed: false,
            cpu_limit_ticks,
            generation: 0,
        };
        vm.run_start_functions(&instance)?;
        vm.store.data_mut().phase = Phase::Running;
        Ok(vm)
    }

    fn run_start_functions(&mut self, instance: &Instance) -> Result<(), HostError> {
        let get_unit =
            |vm: &mut Vm, name: &str| instance.get_typed_func::<(), ()>(&mut vm.store, name).ok();
        let start_trap = |vm: &mut Vm, phase: &str, error: wasmtime::Error| {
            let report = vm.record_trap("", phase, &error);
            HostError::StartTrap {
                root_id: String::new(),
                phase: phase.to_string(),
                message: report,
            }
        };
        if let Some(initialize) = get_unit(self, "_initialize") {
            self.store.set_epoch_deadline(self.cpu_limit_ticks);
            initialize
                .call(&mut self.store, ())
                .map_err(|e| start_trap(self, "_initialize", e))?;
            if let Ok(main) = instance.get_typed_func::<(i32, i32), i32>(&mut self.store, "main") {
                main.call(&mut self.store, (0, 0))
                    .map_err(|e| start_trap(self, "main", e))?;
            } else if let Ok(main) =
                instance.get_typed_func::<(), i32>(&mut self.store, "__main_void")
            {
                main.call(&mut self.store, ())
                    .map_err(|e| start_trap(self, "__main_void", e))?;
            }
        } else if let Some(start) = get_unit(self, "_start") {
            start
                .call(&mut self.store, ())
                .map_err(|e| start_trap(self, "_start", e))?;
        }
        Ok(())
    }

    /// Allocates the next context id of this VM (Envoy's `allocContextId`).
    pub fn alloc_context(&mut self, kind: ContextKind) -> u32 {
        let data = self.store.data_mut();
        let id = data.next_context_id;
        data.next_context_id += 1;
        data.contexts.insert(id, kind);
        id
    }

    /// Calls one callback with `context` as the effective context. A missing export is `Ok(None)`.
    /// A trap fails the VM, is recorded with the panic message, and returns `Err(Trapped)`.
    pub fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        func: impl Fn(&Callbacks) -> Option<&TypedFunc<P, R>>,
        name: &str,
        context: u32,
        args: P,
    ) -> Result<Option<R>, Trapped> {
        if self.failed {
            return Err(Trapped);
        }
        let Some(func) = func(&self.callbacks).cloned() else {
            return Ok(None);
        };
        self.store.data_mut().effective_context = context;
        self.store.set_epoch_deadline(self.cpu_limit_ticks);
        match func.call(&mut self.store, args) {
            Ok(result) => Ok(Some(result)),
            Err(error) => {
                let root_id = self.store.data().effective_root_id();
                self.record_trap(&root_id, name, &error);
                Err(Trapped)
            }
        }
    }

    /// Marks the VM failed and records the trap; returns the report's text.
    fn record_trap(&mut self, root_id: &str, callback: &str, error: &wasmtime::Error) -> String {
        self.failed = true;
        let message = match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                "CPU limit exceeded: epoch deadline reached (infinite loop?)".to_string()
            }
            _ => format!("{error:#}"),
        };
        let data = self.store.data();
        let mut world = data.world.borrow_mut();
        let panic_message = world
            .logs
            .iter()
            .rev()
            .take(4)
            .find(|l| l.level == LogLevel::Critical && l.message.contains("panicked at"))
            .map(|l| l.message.clone());
        let text = match &panic_message {
            Some(panic) => format!("{message} ({panic})"),
            None => message.clone(),
        };
        world.traps.push(TrapReport {
            root_id: root_id.to_string(),
            worker: data.worker,
            callback: callback.to_string(),
            message,
            panic_message,
        });
        text
    }

    /// The actions the last call deferred.
    pub fn take_actions(&mut self) -> Vec<DeferredAction> {
        std::mem::take(&mut self.store.data_mut().actions)
    }
}

impl Callbacks {
    fn lookup(instance: &Instance, store: &mut Store<VmData>) -> Self {
        macro_rules! get {
            ($name:literal) => {
                instance.get_typed_func(&mut *store, $name).ok()
            };
        }
        Self {
            context_create: get!("proxy_on_context_create"),
            vm_start: get!("proxy_on_vm_start"),
            configure: get!("proxy_on_configure"),
            tick: get!("proxy_on_tick"),
            queue_ready: get!("proxy_on_queue_ready"),
            request_headers: get!("proxy_on_request_headers"),
            request_body: get!("proxy_on_request_body"),
            request_trailers: get!("proxy_on_request_trailers"),
            response_headers: get!("proxy_on_response_headers"),
            response_body: get!("proxy_on_response_body"),
            response_trailers: get!("proxy_on_response_trailers"),
            http_call_response: get!("proxy_on_http_call_response"),
            done: get!("proxy_on_done"),
            log: get!("proxy_on_log"),
            delete: get!("proxy_on_delete"),
        }
    }
}

/// Names an import Envoy does not provide, or one whose type differs from Envoy's.
fn check_imports(
    module: &Module,
    linker: &Linker<VmData>,
    store: &mut Store<VmData>,
) -> Result<(), HostError> {
    for import in module.imports() {
        let unknown = || HostError::UnknownImport {
            module: import.module().to_string(),
            name: import.name().to_string(),
        };
        let ExternType::Func(wanted) = import.ty() else {
            return Err(unknown());
        };
        let provided = linker
            .get(&mut *store, import.module(), import.name())
            .ok()
            .and_then(wasmtime::Extern::into_func)
            .ok_or_else(unknown)?;
        let provided = signature(&provided.ty(&*store));
        if provided != signature(&wanted) {
            return Err(HostError::ImportSignature {
                module: import.module().to_string(),
                name: import.name().to_string(),
                expected: provided,
                found: signature(&wanted),
            });
        }
    }
    Ok(())
}
