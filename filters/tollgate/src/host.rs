//! The few host calls the pipeline and its stages make, as functions that cannot panic: the
//! SDK's trait getters `unwrap()` the host's status and decode header values as UTF-8, so a
//! non-UTF-8 value or an unexpected status would kill the VM for every request of that worker.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};
use std::time::{Duration, UNIX_EPOCH};
use tollgate_core::facts::Headers;
use tollgate_core::stage::{LocalReply, SharedStore, StoreError};

/// Every request header in one host call (each single-header read is a crossing of its own).
pub fn request_headers() -> Headers {
    header_map(MapType::HttpRequestHeaders)
}

/// Every response header in one host call.
pub fn response_headers() -> Headers {
    header_map(MapType::HttpResponseHeaders)
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

// Straight to the ABI: the SDK's `get_map_bytes` panics on an unexpected status and
// `unwrap()`s each name as UTF-8.
#[cfg(target_arch = "wasm32")]
fn header_map(map: MapType) -> Headers {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: valid out-pointers; on success the host wrote `size` bytes it allocated through
    // the module's `proxy_on_memory_allocate` (the SDK's allocator: a Vec of that capacity).
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return Headers::default();
    }
    // SAFETY: see above; ownership of the allocation passes to us.
    let bytes = unsafe { Vec::from_raw_parts(data, size, size) };
    Headers::from_serialized(bytes)
}

/// Native builds have no host.
#[cfg(not(target_arch = "wasm32"))]
fn header_map(_map: MapType) -> Headers {
    Headers::default()
}

/// A request header's value as bytes (`None`: absent or unreadable).
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
        .ok()
        .flatten()
}

/// A response header's value as bytes.
pub fn response_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
        .ok()
        .flatten()
}

/// Sets (or with `None` removes) a request header; only valid while the headers are held.
pub fn set_request_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

/// Sets (or removes) a response header; only valid while the headers are held.
pub fn set_response_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value);
}

/// A request header as text, when it is UTF-8.
pub fn request_header_text(name: &str) -> Option<String> {
    request_header(name).and_then(|v| String::from_utf8(v).ok())
}

/// A host property (`None`: absent or unreadable).
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

/// A host property as text.
pub fn property_text(path: &[&str]) -> Option<String> {
    property(path).and_then(|v| String::from_utf8(v).ok())
}

/// Publishes filter state (`wasm.<name>`) for later filters (the upstream adapter).
pub fn set_property(name: &str, value: &[u8]) {
    let _ = hostcalls::set_property(vec![name], Some(value));
}

/// Bytes `[0, size)` of the buffered request body.
pub fn request_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replaces bytes `[0, size)` of the request body.
pub fn replace_request_body(size: usize, body: &[u8]) {
    let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, body);
}

/// Bytes `[0, size)` of the response body passed to this callback (or buffered so far).
pub fn response_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replaces bytes `[0, size)` of the response body.
pub fn replace_response_body(size: usize, body: &[u8]) {
    let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body);
}

/// The body of the answer to an HTTP callout.
pub fn callout_body(size: usize) -> Vec<u8> {
    hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A header of the answer to an HTTP callout.
pub fn callout_header(name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
        .ok()
        .flatten()
}

/// The host clock in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Answers the stream locally.
pub fn send_local_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let _ = hostcalls::send_http_response(u32::from(reply.status), headers, Some(&reply.body));
}

/// Starts an HTTP callout; the token identifies its answer.
pub fn dispatch_callout(callout: &tollgate_core::stage::Callout) -> Result<u32, Status> {
    let headers = vec![
        (":method", callout.method.as_str()),
        (":path", callout.path.as_str()),
        (":authority", callout.authority.as_str()),
        ("content-type", "application/json"),
    ];
    hostcalls::dispatch_http_call(
        &callout.cluster,
        headers,
        Some(&callout.body),
        vec![],
        Duration::from_millis(callout.timeout_ms),
    )
}

/// Resumes a request paused by this stream.
pub fn resume_request() {
    let _ = hostcalls::resume_http_request();
}

/// Proxy-wasm shared data (one store per `vm_id`, every worker of this Envoy).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyStore;

impl SharedStore for ProxyStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Some((value, cas.unwrap_or(0))),
            // An empty value comes back as a null pointer: the key exists (it has a CAS).
            Ok((None, Some(cas))) => Some((Vec::new(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(StoreError::CasMismatch),
            Err(_) => Err(StoreError::Refused),
        }
    }
}

/// A metric's type, as `proxy_define_metric` takes it.
pub use proxy_wasm::types::MetricType;

// The metric calls straight to the ABI: the SDK's wrappers panic on any status they do not
// expect (`define_metric` on every error), and a panic kills the VM for the whole worker.
// Statuses are read as plain integers (0 = Ok).
#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_define_metric(kind: u32, name: *const u8, len: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, delta: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
}

/// Defines (or finds) the stat `wasmcustom.<name>`; `None` when the host refuses.
#[cfg(target_arch = "wasm32")]
pub fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: the pointer and length describe `name`; `id` is a valid out-pointer.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    (status == 0).then_some(id)
}

/// Adds `delta` to a counter or gauge (a gauge may go down); failures are ignored.
#[cfg(target_arch = "wasm32")]
pub fn increment_metric(id: u32, delta: i64) {
    // SAFETY: plain integers.
    let _ = unsafe { proxy_increment_metric(id, delta) };
}

/// Records a histogram sample (or sets a gauge); failures are ignored.
#[cfg(target_arch = "wasm32")]
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: plain integers.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// Native builds have no host: nothing is defined.
#[cfg(not(target_arch = "wasm32"))]
pub fn define_metric(_kind: MetricType, _name: &str) -> Option<u32> {
    None
}

/// Native builds have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn increment_metric(_id: u32, _delta: i64) {}

/// Native builds have no host.
#[cfg(not(target_arch = "wasm32"))]
pub fn record_metric(_id: u32, _value: u64) {}
