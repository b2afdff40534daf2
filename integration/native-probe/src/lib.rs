//! The native probe: the floor of a filter that Envoy runs as native code (a dynamic module,
//! `envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter`) instead of in V8.
//! Next to the wasm probe (integration/probe-filter) it shows what leaving V8 would buy.
//!
//! Configuration (the filter config, a `google.protobuf.StringValue`):
//! - `empty`: every callback continues (the cost of a native filter being there)
//! - `buffer`: the request headers are held until the whole body is in, as the tollgate
//!   pipeline does (headers `StopIteration`, body `StopIterationAndBuffer` until end of stream)
//! - `replay`: `buffer`, the response body held too, and per request the host work of the
//!   benchmark chain through the ABI's callbacks (src/replay.rs): what the chain's host calls
//!   would cost if tollgate were a native module
//!
//! Anything else is refused: Envoy then rejects the filter config.
//!
//! All `unsafe` is in the few helpers below that turn Envoy's pointers into Rust values and in
//! src/host.rs (the callbacks into Envoy); every exported hook runs its body under [`guard`], so
//! a panic never unwinds into Envoy.

mod abi;
mod host;
mod replay;

use abi::{
    BodyStatus, EnvoyBuffer, FilterConfigEnvoyPtr, FilterConfigModulePtr, FilterEnvoyPtr,
    FilterModulePtr, HeadersStatus, TrailersStatus,
};
use host::{buffer_bytes, ConfigHost, Host};
use replay::{Metrics, Replay};
use std::ffi::{c_char, c_void};

pub use replay::REQUESTS_COUNTER;

/// What the probe does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every callback continues.
    Empty,
    /// The request waits in Envoy until its body is complete.
    Buffer,
    /// `Buffer`, the response body held until its end too, and the chain's host work.
    Replay,
}

impl Mode {
    /// The mode a filter config names (surrounding whitespace ignored).
    pub fn parse(config: &[u8]) -> Option<Mode> {
        match std::str::from_utf8(config).ok()?.trim() {
            "empty" => Some(Mode::Empty),
            "buffer" => Some(Mode::Buffer),
            "replay" => Some(Mode::Replay),
            _ => None,
        }
    }

    fn request_headers(self, end_of_stream: bool) -> HeadersStatus {
        match self {
            Mode::Buffer | Mode::Replay if !end_of_stream => HeadersStatus::StopIteration,
            _ => HeadersStatus::Continue,
        }
    }

    fn request_body(self, end_of_stream: bool) -> BodyStatus {
        match self {
            Mode::Buffer | Mode::Replay if !end_of_stream => BodyStatus::StopIterationAndBuffer,
            _ => BodyStatus::Continue,
        }
    }

    fn response_body(self, end_of_stream: bool) -> BodyStatus {
        match self {
            Mode::Replay if !end_of_stream => BodyStatus::StopIterationAndBuffer,
            _ => BodyStatus::Continue,
        }
    }
}

/// A filter config: its mode, and `replay`'s metric ids.
struct Config {
    mode: Mode,
    metrics: Option<Metrics>,
}

/// One stream's filter. For `empty` and `buffer` it only remembers the mode, but it is
/// allocated per stream as any real filter's state would be, so the probe's floor includes that.
struct Stream {
    mode: Mode,
    replay: Option<Replay>,
}

/// Runs a hook body; a panic becomes `fallback` instead of unwinding across the C ABI (which
/// would abort Envoy).
fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The mode of the stream `filter` points to.
///
/// # Safety
/// `filter` must be null or a pointer returned by [`envoy_dynamic_module_on_http_filter_new`]
/// that Envoy has not destroyed yet.
unsafe fn stream_mode(filter: FilterModulePtr) -> Option<Mode> {
    // SAFETY: per the contract above, a non-null pointer is a live `Stream`.
    unsafe { filter.cast::<Stream>().as_ref() }.map(|s| s.mode)
}

/// Runs `phase` on the stream's replay, if it has one, with Envoy's filter as a [`Host`].
///
/// # Safety
/// `filter` as for [`stream_mode`]; `filter_envoy` the pointer Envoy passed to the running hook.
/// Envoy calls one stream's hooks one at a time on its worker, so the `&mut` is unique.
unsafe fn with_replay(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    phase: impl FnOnce(&mut Replay, &Host),
) {
    // SAFETY: per the contract above.
    let stream = unsafe { filter.cast::<Stream>().cast_mut().as_mut() };
    if let Some(replay) = stream.and_then(|s| s.replay.as_mut()) {
        // SAFETY: `filter_envoy` is the running hook's; the Host is dropped before it returns.
        let host = unsafe { Host::new(filter_envoy) };
        phase(replay, &host);
    }
}

/// Frees what `into_raw` handed to Envoy.
///
/// # Safety
/// `ptr` must be null or come from `Box::<T>::into_raw`, and not be used again.
unsafe fn free<T>(ptr: *const c_void) {
    if !ptr.is_null() {
        // SAFETY: per the contract above.
        drop(unsafe { Box::from_raw(ptr.cast::<T>().cast_mut()) });
    }
}

fn into_raw<T>(value: T) -> *const c_void {
    Box::into_raw(Box::new(value)).cast_const().cast()
}

// ---------------------------------------------------------------------------------------------
// The hooks Envoy 1.40 looks up. Required for an HTTP filter: program_init, config_new/destroy,
// filter_new/destroy, request and response headers/body/trailers, stream_complete,
// http_callout_done, http_stream_{headers,data,trailers,complete,reset}, scheduled, and the two
// downstream watermark hooks. (local_reply and the config_* callout hooks are optional.)

/// Called once when Envoy loads the module: the ABI version it was built for.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr().cast()
}

/// A filter config: the mode it names (for `replay`, with its metrics defined), or null (Envoy
/// rejects the config).
///
/// # Safety
/// Envoy's contract: `config` describes bytes valid for this call; `config_envoy` is Envoy's
/// config, live during it.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: FilterConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> FilterConfigModulePtr {
    guard(std::ptr::null(), || {
        // SAFETY: Envoy passes the config bytes, valid during this call.
        let bytes = unsafe { buffer_bytes(config) };
        let Some(mode) = Mode::parse(bytes) else {
            return std::ptr::null();
        };
        let metrics = match mode {
            Mode::Replay => {
                // SAFETY: `config_envoy` is this call's; the ConfigHost ends with it.
                let host = unsafe { ConfigHost::new(config_envoy) };
                match Metrics::define(&host) {
                    Some(metrics) => Some(metrics),
                    None => return std::ptr::null(),
                }
            }
            Mode::Empty | Mode::Buffer => None,
        };
        into_raw(Config { mode, metrics })
    })
}

/// # Safety
/// `config` came from config_new and is not used again.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    config: FilterConfigModulePtr,
) {
    // SAFETY: `config` is what config_new returned; Envoy destroys it once.
    guard((), || unsafe { free::<Config>(config) })
}

/// A new stream's filter, with the config's mode (and for `replay`, the request's slot).
///
/// # Safety
/// `config` is null or a live config from config_new.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: FilterConfigModulePtr,
    _filter_envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    guard(std::ptr::null(), || {
        // SAFETY: `config` is null or a live `Config` from config_new (Envoy keeps the config
        // alive while its filters exist).
        match unsafe { config.cast::<Config>().as_ref() } {
            Some(config) => into_raw(Stream {
                mode: config.mode,
                replay: config.metrics.map(Replay::new),
            }),
            None => std::ptr::null(),
        }
    })
}

/// # Safety
/// `filter` came from filter_new and is not used again.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: FilterModulePtr) {
    // SAFETY: `filter` is what filter_new returned; Envoy destroys it once.
    guard((), || unsafe { free::<Stream>(filter) })
}

/// # Safety
/// `filter` is null or this stream's live filter from filter_new.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    end_of_stream: bool,
) -> HeadersStatus {
    guard(HeadersStatus::Continue, || {
        // SAFETY: `filter` is this stream's live filter, `filter_envoy` this hook's.
        unsafe { with_replay(filter_envoy, filter, |r, host| r.request_headers(host)) };
        // SAFETY: `filter` is this stream's live filter.
        unsafe { stream_mode(filter) }.map_or(HeadersStatus::Continue, |m| {
            m.request_headers(end_of_stream)
        })
    })
}

/// # Safety
/// `filter` is null or this stream's live filter from filter_new.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    end_of_stream: bool,
) -> BodyStatus {
    guard(BodyStatus::Continue, || {
        if end_of_stream {
            // SAFETY: `filter` is this stream's live filter, `filter_envoy` this hook's.
            unsafe { with_replay(filter_envoy, filter, |r, host| r.request_body(host)) };
        }
        // SAFETY: `filter` is this stream's live filter.
        unsafe { stream_mode(filter) }
            .map_or(BodyStatus::Continue, |m| m.request_body(end_of_stream))
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) -> TrailersStatus {
    TrailersStatus::Continue
}

/// # Safety
/// `filter` is null or this stream's live filter from filter_new.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    _end_of_stream: bool,
) -> HeadersStatus {
    guard(HeadersStatus::Continue, || {
        // SAFETY: `filter` is this stream's live filter, `filter_envoy` this hook's.
        unsafe { with_replay(filter_envoy, filter, |r, host| r.response_headers(host)) };
        HeadersStatus::Continue
    })
}

/// # Safety
/// `filter` is null or this stream's live filter from filter_new.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    end_of_stream: bool,
) -> BodyStatus {
    guard(BodyStatus::Continue, || {
        if end_of_stream {
            // SAFETY: `filter` is this stream's live filter, `filter_envoy` this hook's.
            unsafe { with_replay(filter_envoy, filter, |r, host| r.response_body(host)) };
        }
        // SAFETY: `filter` is this stream's live filter.
        unsafe { stream_mode(filter) }
            .map_or(BodyStatus::Continue, |m| m.response_body(end_of_stream))
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) -> TrailersStatus {
    TrailersStatus::Continue
}

/// # Safety
/// `filter` is null or this stream's live filter from filter_new.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
) {
    guard((), || {
        // SAFETY: `filter` is this stream's live filter, `filter_envoy` this hook's.
        unsafe { with_replay(filter_envoy, filter, |r, host| r.complete(host)) };
    })
}

// The probe starts no callouts, schedules nothing and is never terminal: Envoy never calls the
// hooks below, but it refuses a module without them. Pointer-typed parameters it would pass
// (header arrays, buffers) are left as `*const c_void`: never read.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *const c_void,
    _headers_size: usize,
    _body_chunks: *const c_void,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _stream_id: u64,
    _headers: *const c_void,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _stream_id: u64,
    _data: *const c_void,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _stream_id: u64,
    _trailers: *const c_void,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::fake;

    fn buffer(text: &str) -> EnvoyBuffer {
        EnvoyBuffer {
            ptr: text.as_ptr().cast(),
            length: text.len(),
        }
    }

    /// The hooks as Envoy drives them, on one stream of a config.
    struct Probe {
        config: FilterConfigModulePtr,
        filter: FilterModulePtr,
    }

    impl Probe {
        fn new(config: &str) -> Option<Probe> {
            let null = std::ptr::null_mut();
            // SAFETY: the buffers point to live strings for the call.
            let config = unsafe {
                envoy_dynamic_module_on_http_filter_config_new(
                    null,
                    buffer("probe"),
                    buffer(config),
                )
            };
            if config.is_null() {
                return None;
            }
            // SAFETY: `config` is live.
            let filter = unsafe { envoy_dynamic_module_on_http_filter_new(config, null) };
            Some(Probe { config, filter })
        }

        fn headers(&self, end_of_stream: bool) -> u32 {
            let null = std::ptr::null_mut();
            // SAFETY: `filter` is live until drop.
            unsafe {
                envoy_dynamic_module_on_http_filter_request_headers(
                    null,
                    self.filter,
                    end_of_stream,
                ) as u32
            }
        }

        fn body(&self, end_of_stream: bool) -> u32 {
            let null = std::ptr::null_mut();
            // SAFETY: `filter` is live until drop.
            unsafe {
                envoy_dynamic_module_on_http_filter_request_body(null, self.filter, end_of_stream)
                    as u32
            }
        }

        fn response_headers(&self) -> u32 {
            let null = std::ptr::null_mut();
            // SAFETY: `filter` is live until drop.
            unsafe {
                envoy_dynamic_module_on_http_filter_response_headers(null, self.filter, false)
                    as u32
            }
        }

        fn response_body(&self, end_of_stream: bool) -> u32 {
            let null = std::ptr::null_mut();
            // SAFETY: `filter` is live until drop.
            unsafe {
                envoy_dynamic_module_on_http_filter_response_body(null, self.filter, end_of_stream)
                    as u32
            }
        }

        fn complete(&self) {
            // SAFETY: `filter` is live until drop.
            unsafe {
                envoy_dynamic_module_on_http_filter_stream_complete(
                    std::ptr::null_mut(),
                    self.filter,
                )
            }
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            // SAFETY: both came from the hooks above and are destroyed once, filter first.
            unsafe {
                envoy_dynamic_module_on_http_filter_destroy(self.filter);
                envoy_dynamic_module_on_http_filter_config_destroy(self.config);
            }
        }
    }

    #[test]
    fn an_unknown_mode_is_refused_so_envoy_rejects_the_config() {
        assert!(Probe::new("get_header*100").is_none());
        assert!(Probe::new("").is_none());
        let null = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 3,
        };
        // SAFETY: null buffers are read as empty.
        let config = unsafe {
            envoy_dynamic_module_on_http_filter_config_new(std::ptr::null_mut(), null, null)
        };
        assert!(config.is_null());
    }

    #[test]
    fn buffer_holds_the_headers_until_the_body_has_ended() {
        let probe = Probe::new(" buffer\n").unwrap();
        assert_eq!(probe.headers(false), HeadersStatus::StopIteration as u32);
        assert_eq!(probe.body(false), BodyStatus::StopIterationAndBuffer as u32);
        assert_eq!(probe.body(true), BodyStatus::Continue as u32);
        // A request without a body is not held.
        assert_eq!(probe.headers(true), HeadersStatus::Continue as u32);
    }

    fn count(log: &[String], prefix: &str) -> usize {
        log.iter().filter(|call| call.starts_with(prefix)).count()
    }

    #[test]
    fn replay_makes_the_chains_calls_phase_by_phase() {
        let probe = Probe::new("replay").unwrap();
        let defined = fake::take();
        assert_eq!(count(&defined, "define_counter:probe_replay_"), 12);
        assert_eq!(count(&defined, "define_gauge:"), 2);
        assert_eq!(count(&defined, "define_histogram:"), 2);
        assert!(defined.contains(&format!("define_counter:{REQUESTS_COUNTER}")));

        assert_eq!(probe.headers(false), HeadersStatus::StopIteration as u32);
        let calls = fake::take();
        assert_eq!(calls[..2], ["get_headers_size", "get_headers"]);
        assert!(calls.contains(&"get_attribute_string:61".to_string()));
        assert!(calls
            .contains(&"get_metadata_string:envoy.filters.http.jwt_authn/jwt_payload".to_string()));
        assert_eq!(count(&calls, "increment_gauge:"), 1);

        // Nothing until the body has ended, then the whole body (buffered + received).
        assert_eq!(probe.body(false), BodyStatus::StopIterationAndBuffer as u32);
        assert!(fake::take().is_empty());
        assert_eq!(probe.body(true), BodyStatus::Continue as u32);
        let calls = fake::take();
        assert_eq!(count(&calls, "get_body_chunks_size"), 2);
        assert_eq!(count(&calls, "increment_counter:"), 3);

        assert_eq!(probe.response_headers(), HeadersStatus::Continue as u32);
        let calls = fake::take();
        assert_eq!(count(&calls, "set_header:"), 4);
        assert!(calls.contains(&"set_header:x-cache-status=MISS".to_string()));

        assert_eq!(
            probe.response_body(false),
            BodyStatus::StopIterationAndBuffer as u32
        );
        assert!(fake::take().is_empty());
        assert_eq!(probe.response_body(true), BodyStatus::Continue as u32);
        let calls = fake::take();
        assert_eq!(count(&calls, "increment_counter:"), 1);
        assert_eq!(count(&calls, "set_gauge:"), 1);

        probe.complete();
        let calls = fake::take();
        assert_eq!(count(&calls, "increment_counter:"), 8);
        assert_eq!(count(&calls, "decrement_gauge:"), 1);
        assert_eq!(count(&calls, "record_histogram:"), 2);
        assert!(calls.contains(&"set_filter_state:tollgate_log:188B".to_string()));
    }

    #[test]
    fn buffer_makes_no_calls_and_lets_the_response_through() {
        let probe = Probe::new("buffer").unwrap();
        probe.headers(false);
        probe.body(true);
        assert_eq!(probe.response_headers(), HeadersStatus::Continue as u32);
        assert_eq!(probe.response_body(false), BodyStatus::Continue as u32);
        probe.complete();
        assert!(fake::take().is_empty());
    }

    #[test]
    fn empty_continues_everything() {
        let probe = Probe::new("empty").unwrap();
        assert_eq!(probe.headers(false), HeadersStatus::Continue as u32);
        assert_eq!(probe.body(false), BodyStatus::Continue as u32);
    }

    #[test]
    fn a_null_stream_continues() {
        let null = std::ptr::null_mut();
        // SAFETY: a null filter is allowed by the hooks' contract.
        let status =
            unsafe { envoy_dynamic_module_on_http_filter_request_headers(null, null, false) };
        assert_eq!(status as u32, HeadersStatus::Continue as u32);
    }

    #[test]
    fn the_abi_version_is_a_c_string() {
        // SAFETY: program_init returns a pointer to a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(envoy_dynamic_module_on_program_init()) };
        assert_eq!(version.to_str(), Ok("v0.2.0"));
    }
}
