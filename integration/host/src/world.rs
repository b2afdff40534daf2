//! State shared by every VM of one host: the virtual clock, shared data and queues, metrics, logs,
//! pending HTTP callouts, traps and the streams in flight. Hostcalls reach it through `VmData`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use crate::abi::LogLevel;
use crate::headers::Headers;
use crate::metrics::Metrics;
use crate::property::Value;
use crate::stream_state::StreamState;

/// 2026-01-01T00:00:00Z, where the virtual wall clock starts.
pub(crate) const CLOCK_START_UNIX_NANOS: u64 = 1_767_225_600_000_000_000;

/// One line a module logged (through `proxy_log` or `fd_write`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The level it was logged at.
    pub level: LogLevel,
    /// The message as the module wrote it.
    pub message: String,
    /// The root_id of the plugin whose context logged (empty during VM start-up).
    pub root_id: String,
    /// The worker VM that logged; `None` for the base and canary VMs.
    pub worker: Option<usize>,
}

/// A trap (panic, `unreachable`, out of memory, CPU limit) that failed a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapReport {
    /// The plugin's root_id whose callback trapped.
    pub root_id: String,
    /// The worker whose VM failed; `None` for the canary.
    pub worker: Option<usize>,
    /// The export that was running, e.g. `proxy_on_request_headers`.
    pub callback: String,
    /// wasmtime's description of the trap.
    pub message: String,
    /// The Rust panic message if the module logged one (`panicked at ...`) just before trapping.
    pub panic_message: Option<String>,
}

/// An HTTP callout a module dispatched with `dispatch_http_call`, waiting for the test's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// The handle to answer it with ([`crate::Host::respond_http_call`]).
    pub id: u64,
    /// The cluster name the module called.
    pub cluster: String,
    /// The request headers, pseudo-headers included.
    pub headers: Headers,
    /// The request body.
    pub body: Vec<u8>,
    /// The request trailers.
    pub trailers: Headers,
    /// The timeout the module asked for; `None` for 0 (no timeout).
    pub timeout: Option<Duration>,
    /// The root_id of the plugin that made the call.
    pub root_id: String,
    /// The worker whose VM made it.
    pub worker: usize,
    pub(crate) vm: usize,
    pub(crate) root_context: u32,
    pub(crate) token: u32,
    pub(crate) deadline_nanos: Option<u64>,
}

/// A shared queue: items and the root context that registered it last (the consumer).
#[derive(Debug)]
pub(crate) struct SharedQueue {
    pub vm_id: String,
    pub name: String,
    pub items: VecDeque<Vec<u8>>,
    pub owner_vm: usize,
    pub owner_root: u32,
}

/// Work posted to run after the current VM call, as Envoy posts to a worker's dispatcher.
#[derive(Debug)]
pub(crate) enum Event {
    QueueReady { vm: usize, root: u32, queue: u32 },
}

/// The shared data of one vm_id: key to (value, CAS).
pub(crate) type SharedData = HashMap<Vec<u8>, (Vec<u8>, u32)>;

/// Everything the VMs of one host share.
#[derive(Debug, Default)]
pub(crate) struct World {
    pub elapsed_nanos: u64,
    pub shared_data: HashMap<String, SharedData>,
    pub next_cas: u32,
    pub queues: Vec<SharedQueue>,
    pub metrics: Metrics,
    pub logs: Vec<LogEntry>,
    pub http_calls: Vec<HttpCall>,
    pub next_http_call_id: u64,
    pub clusters: HashSet<String>,
    pub streams: HashMap<u64, StreamState>,
    pub events: VecDeque<Event>,
    pub traps: Vec<TrapReport>,
    pub random_state: u64,
    pub host_properties: Value,
    pub log_level: Option<LogLevel>,
    pub buffer_limit: usize,
    pub dispatched_calls: Vec<HttpCall>,
    /// Hostcalls made by the modules, by import name (`proxy_*` and WASI).
    pub hostcalls: std::collections::BTreeMap<&'static str, u64>,
}

impl World {
    /// The virtual wall clock in nanoseconds since the Unix epoch.
    pub fn now_nanos(&self) -> u64 {
        CLOCK_START_UNIX_NANOS + self.elapsed_nanos
    }

    /// Envoy's CAS counter (`SharedData::nextCas`): one global u32 that skips 0.
    pub fn next_cas(&mut self) -> u32 {
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        let cas = self.next_cas;
        self.next_cas = self.next_cas.wrapping_add(1);
        if self.next_cas == 0 {
            self.next_cas = 1;
        }
        cas
    }

    /// Deterministic bytes for `random_get` (xorshift64*).
    pub fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        if self.random_state == 0 {
            self.random_state = 0x9E37_79B9_7F4A_7C15;
        }
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let mut x = self.random_state;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.random_state = x;
            out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Filter-state keys of `set_property` values: `wasm.` + the raw property path.
pub(crate) fn filter_state_key(path: &[u8]) -> Vec<u8> {
    let mut key = b"wasm.".to_vec();
    key.extend_from_slice(path);
    key
}

/// Filter state of one stream, shared by every filter on it.
pub(crate) type FilterState = BTreeMap<Vec<u8>, Vec<u8>>;
