//! The native probe: the floor of a filter that Envoy runs as native code (a dynamic module,
//! `envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter`) instead of in V8.
//! Next to the wasm probe (integration/probe-filter) it shows what leaving V8 would buy.
//!
//! Configuration (the filter config, a `google.protobuf.StringValue`):
//! - `empty`: every callback continues (the cost of a native filter being there)
//! - `buffer`: the request headers are held until the whole body is in, as the tollgate
//!   pipeline does (headers `StopIteration`, body `StopIterationAndBuffer` until end of stream)
//!
//! Anything else is refused: Envoy then rejects the filter config.
//!
//! All `unsafe` is in the few helpers below that turn Envoy's pointers into Rust values; every
//! exported hook runs its body under [`guard`], so a panic never unwinds into Envoy.

mod abi;

use abi::{
    BodyStatus, EnvoyBuffer, FilterConfigEnvoyPtr, FilterConfigModulePtr, FilterEnvoyPtr,
    FilterModulePtr, HeadersStatus, TrailersStatus,
};
use std::ffi::{c_char, c_void};

/// What the probe does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every callback continues.
    Empty,
    /// The request waits in Envoy until its body is complete.
    Buffer,
}

impl Mode {
    /// The mode a filter config names (surrounding whitespace ignored).
    pub fn parse(config: &[u8]) -> Option<Mode> {
        match std::str::from_utf8(config).ok()?.trim() {
            "empty" => Some(Mode::Empty),
            "buffer" => Some(Mode::Buffer),
            _ => None,
        }
    }

    fn request_headers(self, end_of_stream: bool) -> HeadersStatus {
        match self {
            Mode::Buffer if !end_of_stream => HeadersStatus::StopIteration,
            _ => HeadersStatus::Continue,
        }
    }

    fn request_body(self, end_of_stream: bool) -> BodyStatus {
        match self {
            Mode::Buffer if !end_of_stream => BodyStatus::StopIterationAndBuffer,
            _ => BodyStatus::Continue,
        }
    }
}

/// One stream's filter. It only remembers the mode, but it is allocated per stream as any real
/// filter's state would be, so the probe's floor includes that.
struct Stream {
    mode: Mode,
}

/// Runs a hook body; a panic becomes `fallback` instead of unwinding across the C ABI (which
/// would abort Envoy).
fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The bytes of an Envoy buffer (empty when null).
///
/// # Safety
/// `buffer` must come from Envoy for the current call: `ptr` valid for `length` bytes.
unsafe fn buffer_bytes<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    if buffer.ptr.is_null() {
        return &[];
    }
    // SAFETY: the caller guarantees ptr/length describe live bytes for this call.
    unsafe { std::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) }
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

/// A filter config: the mode it names, or null (Envoy rejects the config).
///
/// # Safety
/// Envoy's contract: `config` describes bytes valid for this call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy: FilterConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> FilterConfigModulePtr {
    guard(std::ptr::null(), || {
        // SAFETY: Envoy passes the config bytes, valid during this call.
        let bytes = unsafe { buffer_bytes(config) };
        Mode::parse(bytes).map_or(std::ptr::null(), into_raw)
    })
}

/// # Safety
/// `config` came from config_new and is not used again.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    config: FilterConfigModulePtr,
) {
    // SAFETY: `config` is what config_new returned; Envoy destroys it once.
    guard((), || unsafe { free::<Mode>(config) })
}

/// A new stream's filter, with the config's mode.
///
/// # Safety
/// `config` is null or a live config from config_new.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: FilterConfigModulePtr,
    _filter_envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    guard(std::ptr::null(), || {
        // SAFETY: `config` is null or a live `Mode` from config_new (Envoy keeps the config
        // alive while its filters exist).
        match unsafe { config.cast::<Mode>().as_ref() } {
            Some(&mode) => into_raw(Stream { mode }),
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
    _filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    end_of_stream: bool,
) -> HeadersStatus {
    guard(HeadersStatus::Continue, || {
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
    _filter_envoy: FilterEnvoyPtr,
    filter: FilterModulePtr,
    end_of_stream: bool,
) -> BodyStatus {
    guard(BodyStatus::Continue, || {
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

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _end_of_stream: bool,
) -> HeadersStatus {
    HeadersStatus::Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
    _end_of_stream: bool,
) -> BodyStatus {
    BodyStatus::Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) -> TrailersStatus {
    TrailersStatus::Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy: FilterEnvoyPtr,
    _filter: FilterModulePtr,
) {
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
