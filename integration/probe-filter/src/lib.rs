//! The probe filter: the floor of a wasm filter in Envoy, and the price of each host call.
//!
//! Configuration (plugin configuration string): `<call>` or `<call>*<n>`, e.g. `buffer`,
//! `get_header*100`. Every probe but `empty` pauses the request headers and waits for the whole
//! body, as the tollgate pipeline does; the call named runs `n` times (default 1) per request:
//!
//! - `empty`: nothing, every callback continues (the cost of a wasm filter being there)
//! - `buffer`: the body is buffered, nothing read
//! - `get_header`: `:path` read (`proxy_get_header_map_value`), in the headers phase
//! - `get_headers`: the whole request header map (`proxy_get_header_map_pairs`)
//! - `get_property`: `xds.route_name` (`proxy_get_property`)
//! - `set_header`: `x-probe: 1` set on the request (`proxy_replace_header_map_value`); the
//!   first change of a request makes Envoy clear its route cache
//! - `remove_header`: an absent request header removed
//! - `set_property`: 40 bytes of filter state written (`proxy_set_property`), the same name
//!   each time
//! - `set_properties`: as `set_property`, a new name each time (`probe_0`, `probe_1`, ...): the
//!   metrics stage's access log writes 11 names per request
//! - `clock`: `proxy_get_current_time_nanoseconds`
//! - `get_body`: the buffered 1 KB request body read (`proxy_get_buffer_bytes`), body phase
//! - `increment`: a counter incremented (`proxy_increment_metric`)
//! - `get_shared`: a 389 B shared-data value read (`proxy_get_shared_data`; a cache slot's size)
//! - `set_shared`: that value written without CAS (`proxy_set_shared_data`)
//! - `replay`: the host calls of one request through the benchmark chain (no `*n`), see below
//!
//! ## `replay`: the chain's host calls, without the chain
//!
//! Per request, the same 43 host calls the benchmark chain (bench_config's pipeline: route,
//! cache lookup that misses then stores, budget, metrics with the access log) makes, in the
//! same phases, with values sized like the chain's, results dropped. The counts are the table
//! of `a_request_of_the_benchmark_chain_makes_the_documented_host_calls`
//! (filters/tollgate/tests/pipeline_in_host.rs); the phase split was read per phase from
//! tollgate.wasm in the wasmtime host, and integration/host/tests/probe_replay.rs checks both,
//! phase by phase, against the pipeline itself:
//!
//! | phase | calls | the chain's |
//! |---|---|---|
//! | request headers | 1 clock, 1 header map, 2 get_property, 1 increment | start time; the whole map; the route name and the JWT `sub` (absent in the benchmark); the in-flight gauge |
//! | request body (end) | 1 body read, 2 clock, 2 get_shared_data, 1 set_shared_data, 3 increment | the whole body; the cache and budget clocks; the cache slot (a miss) and the budget bucket, the bucket's reservation written with its CAS; miss and budget counters |
//! | response headers | 1 header map, 1 clock, 4 replace_header_map_value | the whole map; TTFB; `x-cache-status` and the three `x-ratelimit-*-tokens` |
//! | response body (end; paused until then, JSON is read whole) | 1 body read, 1 clock, 1 get_shared_data, 2 set_shared_data, 1 increment, 1 record | the whole answer; the entry's time; the cache ledger read and written (CAS), the slot written with the CAS its lookup read; the stores counter; the stored-bytes gauge |
//! | on_log | 2 clock, 1 get_shared_data, 1 set_shared_data, 9 increment, 2 record, 1 set_property | the budget's settle (bucket read, written with its CAS) and its counters; the duration; request, token and cost counters, the in-flight gauge back down; the duration and TTFB histograms; the access-log tail (`wasm.tollgate_log`, 188 B) |
//!
//! Sizes: a cache slot holds one stored answer (389 B for the benchmark's mock answer), the
//! ledger 8 B, a budget bucket 55 B (each read from the chain's shared data in the host). The
//! slots (1024, the chain's count for its 16 MiB store) are written at configure, each request
//! takes the next, so concurrent requests do not contend on one slot's CAS; the bucket is one
//! key, as the benchmark's anonymous callers share one. Metrics are defined at configure, of
//! the chain's kinds: 12 counters, 2 gauges (in flight, stored bytes), 2 histograms. Unlike the
//! chain, nothing is parsed or decided: what replay costs over `buffer` is what Envoy spends
//! serving these calls (and V8 crossing in and out of the module for them).
//!
//! Calls go through the SDK's hostcalls, results dropped. Unlike tollgate.wasm, the probe does
//! not guard against statuses the SDK does not expect (it would panic): it only runs in the
//! benchmark, where every call here answers Ok.

mod chain_shape;

use chain_shape::{BUCKET_BYTES, BUCKET_KEY, LEDGER_KEY, LOG_TAIL, SLOTS, SLOT_BYTES, SLOT_PREFIX};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};
use std::cell::Cell;
use std::rc::Rc;
use tollgate_core::names::{budget, header, host_property, metric};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ProbeRoot::default()) });
}}

/// The host call a probe makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Call {
    #[default]
    Empty,
    Buffer,
    GetHeader,
    GetHeaders,
    GetProperty,
    SetHeader,
    RemoveHeader,
    SetProperty,
    SetProperties,
    Clock,
    GetBody,
    Increment,
    GetShared,
    SetShared,
    Replay,
}

impl Call {
    fn parse(name: &str) -> Option<Call> {
        Some(match name {
            "empty" => Call::Empty,
            "buffer" => Call::Buffer,
            "get_header" => Call::GetHeader,
            "get_headers" => Call::GetHeaders,
            "get_property" => Call::GetProperty,
            "set_header" => Call::SetHeader,
            "remove_header" => Call::RemoveHeader,
            "set_property" => Call::SetProperty,
            "set_properties" => Call::SetProperties,
            "clock" => Call::Clock,
            "get_body" => Call::GetBody,
            "increment" => Call::Increment,
            "get_shared" => Call::GetShared,
            "set_shared" => Call::SetShared,
            "replay" => Call::Replay,
            _ => return None,
        })
    }

    fn in_headers_phase(self, i: u32, counter: u32) {
        match self {
            Call::Increment => {
                let _ = hostcalls::increment_metric(counter, 1);
            }
            Call::GetShared => {
                let _ = hostcalls::get_shared_data(PROBE_SHARED_KEY);
            }
            Call::SetShared => {
                let _ =
                    hostcalls::set_shared_data(PROBE_SHARED_KEY, Some(&[b'p'; SLOT_BYTES]), None);
            }
            Call::GetHeader => {
                let _ = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path");
            }
            Call::GetHeaders => {
                let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
            }
            Call::GetProperty => {
                let _ = hostcalls::get_property(vec!["xds", "route_name"]);
            }
            Call::SetHeader => {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-probe", Some("1"));
            }
            Call::RemoveHeader => {
                let _ =
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-probe-absent", None);
            }
            Call::SetProperty => {
                let _ = hostcalls::set_property(
                    vec!["probe_facts"],
                    Some(b"{\"model\":\"gpt-4o-mini\",\"stream\":false}"),
                );
            }
            Call::SetProperties => {
                let name = format!("probe_{i}");
                let _ = hostcalls::set_property(vec![name.as_str()], Some(b"gpt-4o-mini"));
            }
            Call::Clock => {
                let _ = hostcalls::get_current_time();
            }
            Call::Empty | Call::Buffer | Call::GetBody | Call::Replay => {}
        }
    }
}

#[derive(Default)]
struct ProbeRoot {
    call: Call,
    times: u32,
    /// The counter `increment` adds to.
    counter: u32,
    /// `replay`'s metric ids and slot counter.
    replay: Option<Rc<ReplayRoot>>,
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let (name, times) = text.trim().split_once('*').unwrap_or((text.trim(), "1"));
        match (Call::parse(name), times.parse()) {
            (Some(Call::Replay), Ok(1)) => match ReplayRoot::configure() {
                Some(root) => {
                    self.call = Call::Replay;
                    self.times = 1;
                    self.replay = Some(Rc::new(root));
                    true
                }
                None => false,
            },
            (Some(Call::Replay), _) => false, // one request's calls: `replay*n` means nothing
            (Some(call), Ok(times)) => {
                self.call = call;
                self.times = times;
                if call == Call::Increment {
                    match hostcalls::define_metric(MetricType::Counter, "probe_increments_total") {
                        Ok(id) => self.counter = id,
                        Err(_) => return false,
                    }
                }
                if call == Call::GetShared {
                    // A value the size of the benchmark's cache slot, to read back.
                    let slot = [b'p'; SLOT_BYTES];
                    if hostcalls::set_shared_data(PROBE_SHARED_KEY, Some(&slot), None).is_err() {
                        return false;
                    }
                }
                true
            }
            _ => false, // Envoy refuses the plugin: a typo never measures the wrong thing
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        if let Some(root) = &self.replay {
            return Some(Box::new(Replay::new(root)));
        }
        Some(Box::new(Probe {
            call: self.call,
            times: self.times,
            counter: self.counter,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    call: Call,
    times: u32,
    counter: u32,
}

impl Context for Probe {}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.call == Call::Empty {
            return Action::Continue;
        }
        for i in 0..self.times {
            self.call.in_headers_phase(i, self.counter);
        }
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.call == Call::Empty {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        if self.call == Call::GetBody {
            for _ in 0..self.times {
                let _ = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size);
            }
        }
        Action::Continue
    }
}

/// The shared-data key `get_shared` and `set_shared` use (a cache slot's size).
const PROBE_SHARED_KEY: &str = "probe.shared";

/// What `replay` defines once per VM.
struct ReplayRoot {
    counters: [u32; 12],
    active: u32,
    stored_bytes: u32,
    histograms: [u32; 2],
    /// The slot the next request takes.
    next_slot: Cell<u32>,
}

impl ReplayRoot {
    /// Defines the metrics and writes the shared data; `None` fails the plugin.
    fn configure() -> Option<Self> {
        let define = |kind, name: &str| hostcalls::define_metric(kind, name).ok();
        let mut counters = [0; 12];
        for (i, id) in counters.iter_mut().enumerate() {
            *id = define(MetricType::Counter, &format!("probe_replay_{i}_total"))?;
        }
        let root = Self {
            counters,
            active: define(MetricType::Gauge, "probe_replay_active")?,
            stored_bytes: define(MetricType::Gauge, "probe_replay_stored_bytes")?,
            histograms: [
                define(MetricType::Histogram, "probe_replay_duration_ms")?,
                define(MetricType::Histogram, "probe_replay_ttfb_ms")?,
            ],
            next_slot: Cell::new(0),
        };
        let slot = [b'e'; SLOT_BYTES];
        for i in 0..SLOTS {
            hostcalls::set_shared_data(&format!("{SLOT_PREFIX}{i}"), Some(&slot), None).ok()?;
        }
        let ledger = (u64::from(SLOTS) * SLOT_BYTES as u64).to_le_bytes();
        hostcalls::set_shared_data(LEDGER_KEY, Some(&ledger), None).ok()?;
        hostcalls::set_shared_data(BUCKET_KEY, Some(&[b'b'; BUCKET_BYTES]), None).ok()?;
        Some(root)
    }
}

fn clock() {
    let _ = hostcalls::get_current_time();
}

/// Reads `key` and writes `value` against the CAS the read returned (a concurrent writer makes
/// it a mismatch, dropped: the chain would retry).
fn read_then_write(key: &str, value: &[u8]) {
    let cas = hostcalls::get_shared_data(key)
        .ok()
        .and_then(|(_, cas)| cas);
    let _ = hostcalls::set_shared_data(key, Some(value), cas);
}

/// One request's replay of the chain's host calls.
struct Replay {
    root: Rc<ReplayRoot>,
    slot: String,
    /// The CAS the request-body lookup read from the slot.
    slot_cas: Option<u32>,
}

impl Replay {
    fn new(root: &Rc<ReplayRoot>) -> Self {
        let slot = root.next_slot.get();
        root.next_slot.set((slot + 1) % SLOTS);
        Self {
            root: Rc::clone(root),
            slot: format!("{SLOT_PREFIX}{slot}"),
            slot_cas: None,
        }
    }

    fn count(&self, counters: std::ops::Range<usize>) {
        for &id in &self.root.counters[counters] {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

impl Context for Replay {}

impl HttpContext for Replay {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        clock();
        let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
        let _ = hostcalls::get_property(host_property::ROUTE_NAME.to_vec());
        let mut jwt_sub = host_property::JWT_PAYLOAD.to_vec();
        jwt_sub.push("sub");
        let _ = hostcalls::get_property(jwt_sub);
        let _ = hostcalls::increment_metric(self.root.active, 1);
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let _ = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size);
        clock();
        self.slot_cas = hostcalls::get_shared_data(&self.slot)
            .ok()
            .and_then(|(_, cas)| cas);
        self.count(0..1);
        clock();
        read_then_write(BUCKET_KEY, &[b'r'; BUCKET_BYTES]);
        self.count(1..3);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let _ = hostcalls::get_map_bytes(MapType::HttpResponseHeaders);
        clock();
        for (name, value) in [
            (header::CACHE_STATUS, "MISS"),
            (budget::LIMIT_TOKENS, "1000000000000"),
            (budget::REMAINING_TOKENS, "999999995720"),
            (budget::RESET_TOKENS, "1m0s"),
        ] {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let _ = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size);
        clock();
        let ledger = (u64::from(SLOTS) * SLOT_BYTES as u64).to_le_bytes();
        read_then_write(LEDGER_KEY, &ledger);
        let _ = hostcalls::set_shared_data(&self.slot, Some(&[b's'; SLOT_BYTES]), self.slot_cas);
        self.count(3..4);
        let _ =
            hostcalls::record_metric(self.root.stored_bytes, u64::from(SLOTS) * SLOT_BYTES as u64);
        Action::Continue
    }

    fn on_log(&mut self) {
        clock();
        read_then_write(BUCKET_KEY, &[b'c'; BUCKET_BYTES]);
        self.count(4..12);
        clock();
        let _ = hostcalls::increment_metric(self.root.active, -1);
        for &id in &self.root.histograms {
            let _ = hostcalls::record_metric(id, 3);
        }
        let _ = hostcalls::set_property(vec![metric::LOG_PROPERTY], Some(LOG_TAIL));
    }
}
