//! `replay`: the benchmark chain's host work, through Envoy's dynamic-module ABI.
//!
//! The wasm probe's `replay` (integration/probe-filter) makes the 43 proxy-wasm host calls of one
//! request through the benchmark chain, phase by phase, with the chain's value sizes. This is
//! the same work as a native module would do it:
//!
//! | phase | what | through |
//! |---|---|---|
//! | request headers | 1 clock; the whole header map; the route name; the JWT `sub`; the in-flight gauge up | `get_headers_size` + `get_headers`; `get_attribute_string(xds.route_name)`; `get_metadata_string(dynamic, envoy.filters.http.jwt_authn, jwt_payload)`; `increment_gauge` |
//! | request body (end) | the whole body; 2 clock; cache slot read (a miss), budget bucket read then written with its CAS; 3 counters | buffered + received `get_body_chunks(_size)`; the in-module store; `increment_counter` |
//! | response headers | the whole map; 1 clock; `x-cache-status` and the three `x-ratelimit-*-tokens` | `get_headers(_size)`; `set_header` ×4 |
//! | response body (end; held until then) | the whole answer; 1 clock; ledger read then written (CAS), the slot written with the CAS its lookup read; 1 counter; the stored-bytes gauge | `get_body_chunks(_size)`; the store; `increment_counter`; `set_gauge` |
//! | stream complete | 2 clock; bucket read then written (CAS); 8 counters; the in-flight gauge down; 2 histograms; the 188 B access-log value | the store; `increment_counter` ×8, `decrement_gauge`, `record_histogram_value` ×2; `set_filter_state_bytes` |
//!
//! Shared data: a native module's workers share its memory, so the chain's cache slots, ledger
//! and budget bucket are one `Mutex<HashMap>` in the module, values copied in and out as our
//! code would (389 B slot, 8 B ledger, 55 B bucket), each with a CAS. Clocks are
//! `SystemTime::now()` (the ABI has no clock; proxy-wasm's is the wall clock). Everything read
//! is copied into Rust values and dropped: what replay costs over `buffer` is what Envoy and
//! the copies cost, none of the chain's own logic.

use crate::abi::{BodyType, HeaderType, ATTRIBUTE_XDS_ROUTE_NAME};
use crate::host::{ConfigHost, Host, MetricKind, MetricOp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// The chain's keys, value sizes and log tail, one definition for both replay probes.
#[path = "../../probe-filter/src/chain_shape.rs"]
mod chain_shape;
use chain_shape::{BUCKET_BYTES, BUCKET_KEY, LEDGER_KEY, LOG_TAIL, SLOTS, SLOT_BYTES, SLOT_PREFIX};

/// Bytes the ledger says are stored (its 8 B value).
const STORED_BYTES: u64 = SLOTS as u64 * SLOT_BYTES as u64;

/// Where the access-log tail goes.
const LOG_KEY: &str = "tollgate_log";

const JWT_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
const JWT_PAYLOAD: &str = "jwt_payload";

/// The response headers the chain sets on a miss under budget.
const RESPONSE_HEADERS: [(&str, &str); 4] = [
    ("x-cache-status", "MISS"),
    ("x-ratelimit-limit-tokens", "1000000000000"),
    ("x-ratelimit-remaining-tokens", "999999995720"),
    ("x-ratelimit-reset-tokens", "1m0s"),
];

/// A counter the e2e test reads from Envoy's stats: incremented once per finished request.
pub const REQUESTS_COUNTER: &str = "probe_replay_4_total";

/// The shared data, as proxy-wasm's: key → (value, CAS).
type Store = Mutex<HashMap<String, (Vec<u8>, u32)>>;

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut map = HashMap::new();
        for i in 0..SLOTS {
            map.insert(format!("{SLOT_PREFIX}{i}"), (vec![b'e'; SLOT_BYTES], 1));
        }
        map.insert(LEDGER_KEY.into(), (STORED_BYTES.to_le_bytes().to_vec(), 1));
        map.insert(BUCKET_KEY.into(), (vec![b'b'; BUCKET_BYTES], 1));
        Mutex::new(map)
    })
}

/// A copy of `key`'s value and its CAS (a poisoned lock still holds usable data).
fn get_shared(key: &str) -> Option<(Vec<u8>, u32)> {
    let map = store().lock().unwrap_or_else(|e| e.into_inner());
    map.get(key).cloned()
}

/// Writes `value` if `cas` is the current one (or `None`); false on a mismatch.
fn set_shared(key: &str, value: &[u8], cas: Option<u32>) -> bool {
    let mut map = store().lock().unwrap_or_else(|e| e.into_inner());
    match map.get_mut(key) {
        Some((_, current)) if cas.is_some_and(|c| c != *current) => false,
        Some((stored, current)) => {
            *stored = value.to_vec();
            *current = current.wrapping_add(1);
            true
        }
        None => {
            map.insert(key.to_owned(), (value.to_vec(), 1));
            true
        }
    }
}

/// Reads `key` and writes `value` against the CAS read (a mismatch is dropped: the chain would
/// retry).
fn read_then_write(key: &str, value: &[u8]) {
    let cas = get_shared(key).map(|(_, cas)| cas);
    set_shared(key, value, cas);
}

fn clock() {
    std::hint::black_box(std::time::SystemTime::now());
}

/// The metric ids `replay` defines at config creation, of the chain's kinds.
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    counters: [usize; 12],
    active: usize,
    stored_bytes: usize,
    histograms: [usize; 2],
}

impl Metrics {
    /// Defines them; `None` (Envoy refused one) fails the config.
    pub fn define(config: &ConfigHost) -> Option<Self> {
        let mut counters = [0; 12];
        for (i, id) in counters.iter_mut().enumerate() {
            *id = config.define(MetricKind::Counter, &format!("probe_replay_{i}_total"))?;
        }
        let metrics = Self {
            counters,
            active: config.define(MetricKind::Gauge, "probe_replay_active")?,
            stored_bytes: config.define(MetricKind::Gauge, "probe_replay_stored_bytes")?,
            histograms: [
                config.define(MetricKind::Histogram, "probe_replay_duration_ms")?,
                config.define(MetricKind::Histogram, "probe_replay_ttfb_ms")?,
            ],
        };
        store(); // the shared data is written once, before the first request
        Some(metrics)
    }
}

/// One request's replay.
pub struct Replay {
    metrics: Metrics,
    slot: String,
    /// The CAS the request-body lookup read from the slot.
    slot_cas: Option<u32>,
}

impl Replay {
    pub fn new(metrics: Metrics) -> Self {
        static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
        Self {
            metrics,
            slot: format!("{SLOT_PREFIX}{slot}"),
            slot_cas: None,
        }
    }

    fn count(&self, host: &Host, counters: std::ops::Range<usize>) {
        for &id in &self.metrics.counters[counters] {
            host.metric(MetricOp::Increment, id, 1);
        }
    }

    pub fn request_headers(&mut self, host: &Host) {
        clock();
        std::hint::black_box(host.headers(HeaderType::RequestHeader));
        std::hint::black_box(host.attribute_string(ATTRIBUTE_XDS_ROUTE_NAME));
        std::hint::black_box(host.dynamic_metadata_string(JWT_NAMESPACE, JWT_PAYLOAD));
        host.metric(MetricOp::GaugeUp, self.metrics.active, 1);
    }

    /// At the request body's end.
    pub fn request_body(&mut self, host: &Host) {
        std::hint::black_box(
            host.body(BodyType::BufferedRequestBody, BodyType::ReceivedRequestBody),
        );
        clock();
        self.slot_cas = get_shared(&self.slot).map(|(value, cas)| {
            std::hint::black_box(value);
            cas
        });
        self.count(host, 0..1);
        clock();
        read_then_write(BUCKET_KEY, &[b'r'; BUCKET_BYTES]);
        self.count(host, 1..3);
    }

    pub fn response_headers(&mut self, host: &Host) {
        std::hint::black_box(host.headers(HeaderType::ResponseHeader));
        clock();
        for (name, value) in RESPONSE_HEADERS {
            host.set_header(HeaderType::ResponseHeader, name, value);
        }
    }

    /// At the response body's end.
    pub fn response_body(&mut self, host: &Host) {
        std::hint::black_box(host.body(
            BodyType::BufferedResponseBody,
            BodyType::ReceivedResponseBody,
        ));
        clock();
        read_then_write(LEDGER_KEY, &STORED_BYTES.to_le_bytes());
        set_shared(&self.slot, &[b's'; SLOT_BYTES], self.slot_cas);
        self.count(host, 3..4);
        host.metric(MetricOp::GaugeSet, self.metrics.stored_bytes, STORED_BYTES);
    }

    /// When the stream is done (the chain's on_log).
    pub fn complete(&mut self, host: &Host) {
        clock();
        read_then_write(BUCKET_KEY, &[b'c'; BUCKET_BYTES]);
        self.count(host, 4..12);
        clock();
        host.metric(MetricOp::GaugeDown, self.metrics.active, 1);
        for &id in &self.metrics.histograms {
            host.metric(MetricOp::Record, id, 3);
        }
        host.set_filter_state(LOG_KEY, LOG_TAIL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_against_a_stale_cas_is_refused_and_a_fresh_one_lands() {
        let key = "test/cas";
        assert!(set_shared(key, b"one", None));
        let (value, cas) = get_shared(key).unwrap();
        assert_eq!(value, b"one");
        assert!(set_shared(key, b"two", Some(cas)));
        assert!(!set_shared(key, b"three", Some(cas)), "stale CAS");
        assert_eq!(get_shared(key).unwrap().0, b"two");
    }

    #[test]
    fn the_store_holds_the_chains_value_sizes() {
        assert_eq!(LOG_TAIL.len(), 188);
        assert_eq!(
            get_shared(&format!("{SLOT_PREFIX}7")).unwrap().0.len(),
            SLOT_BYTES
        );
        assert_eq!(get_shared(BUCKET_KEY).unwrap().0.len(), BUCKET_BYTES);
        assert_eq!(get_shared(LEDGER_KEY).unwrap().0.len(), 8);
    }
}
