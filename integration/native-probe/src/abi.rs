//! The slice of Envoy's dynamic-module C ABI (`source/extensions/dynamic_modules/abi/abi.h`,
//! Envoy 1.40) this filter needs, written out by hand: the Rust SDK is not on crates.io.
//!
//! Facts it rests on (checked against the installed 1.40 binary and Envoy's sources):
//! - `envoy_dynamic_module_on_program_init` returns the ABI version the module was built for;
//!   null refuses the load. Envoy compares it with its own and only logs a warning ("... is
//!   deprecated") when they differ, `info` "matched" when they agree.
//! - An HTTP filter module must export every `envoy_dynamic_module_on_http_filter_*` hook the
//!   loader looks up as required (the list in lib.rs); a missing one fails the filter config.
//! - Handles are opaque pointers on both sides; the C enums are `int`-sized.
//! - Strings cross as `envoy_dynamic_module_type_envoy_buffer` (pointer + length) by value.

use std::ffi::{c_char, c_void};

/// The ABI version this module was written against: the string Envoy 1.40 carries
/// (`strings envoy | grep -x 'v[0-9.]*'`). NUL-terminated: Envoy reads it as a C string.
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// `envoy_dynamic_module_type_envoy_buffer`: bytes owned by Envoy, valid for the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

/// Envoy's handle of a filter config (`..._http_filter_config_envoy_ptr`).
pub type FilterConfigEnvoyPtr = *mut c_void;
/// Our filter config, as Envoy stores it (`..._http_filter_config_module_ptr`).
pub type FilterConfigModulePtr = *const c_void;
/// Envoy's handle of one stream's filter (`..._http_filter_envoy_ptr`).
pub type FilterEnvoyPtr = *mut c_void;
/// Our per-stream filter (`..._http_filter_module_ptr`).
pub type FilterModulePtr = *const c_void;

/// `envoy_dynamic_module_type_on_http_filter_request_headers_status` (= `FilterHeadersStatus`).
/// The response-headers status has the same values.
#[repr(C)]
#[allow(dead_code)] // the full enum, so the discriminants stay those of the C header
pub enum HeadersStatus {
    Continue = 0,
    /// Hold the headers; body callbacks still run (proxy-wasm's `Pause` on headers).
    StopIteration = 1,
    ContinueAndDontEndStream = 2,
    StopAllIterationAndBuffer = 3,
    StopAllIterationAndWatermark = 4,
}

/// `envoy_dynamic_module_type_on_http_filter_request_body_status` (= `FilterDataStatus`).
/// The response-body status has the same values.
#[repr(C)]
#[allow(dead_code)]
pub enum BodyStatus {
    Continue = 0,
    /// Keep this chunk in Envoy's buffer and wait for more (proxy-wasm's `Pause` on a body).
    StopIterationAndBuffer = 1,
    StopIterationAndWatermark = 2,
    StopIterationNoBuffer = 3,
}

/// `envoy_dynamic_module_type_on_http_filter_request_trailers_status` (= `FilterTrailersStatus`).
#[repr(C)]
#[allow(dead_code)]
pub enum TrailersStatus {
    Continue = 0,
    StopIteration = 1,
}

// ---------------------------------------------------------------------------------------------
// What `replay` calls: callbacks Envoy 1.40 implements and exports (`nm -D envoy`). Signatures
// from abi.h (envoyproxy/envoy main at the v0.1.0 → v0.2.0 boundary), checked against the
// installed 1.40 binary where the header and the binary could differ: `get_headers_size` and
// `get_body_chunks_size` take two arguments and return the count; `define_counter` takes the
// label array, its length and the id out-pointer; ids are 1-based (0 is refused).

/// `envoy_dynamic_module_type_module_buffer`: bytes owned by the module, read during the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }
}

/// `envoy_dynamic_module_type_envoy_http_header`: one header of Envoy's map, valid until the
/// hook returns (or a header setter runs).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl EnvoyHttpHeader {
    pub const EMPTY: Self = Self {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };
}

impl EnvoyBuffer {
    pub const EMPTY: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_http_header_type`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub enum HeaderType {
    RequestHeader = 0,
    RequestTrailer = 1,
    ResponseHeader = 2,
    ResponseTrailer = 3,
}

/// `envoy_dynamic_module_type_http_body_type`. At a body hook the chunk just received is not yet
/// in the buffered body: the whole body is buffered + received.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code, clippy::enum_variant_names)] // the C names
pub enum BodyType {
    ReceivedRequestBody = 0,
    BufferedRequestBody = 1,
    ReceivedResponseBody = 2,
    BufferedResponseBody = 3,
}

/// `envoy_dynamic_module_type_metadata_source`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub enum MetadataSource {
    Dynamic = 0,
    Route = 1,
    Cluster = 2,
    Host = 3,
    HostLocality = 4,
}

/// `envoy_dynamic_module_type_attribute_id_XdsRouteName` (`xds.route_name`): its place in the
/// attribute enum (request.path = 0).
pub const ATTRIBUTE_XDS_ROUTE_NAME: u32 = 61;

/// `envoy_dynamic_module_type_metrics_result`: 0 is success.
pub type MetricsResult = u32;

extern "C" {
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_increment_gauge(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_decrement_gauge(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_set_gauge(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: BodyType,
        result_buffer_vector: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter: FilterEnvoyPtr,
        metadata_source: MetadataSource,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
}

/// Stand-ins for Envoy's callbacks in unit tests (the test binary has no Envoy to link against):
/// each call is logged per thread, as `name` or `name:detail`, and answers as Envoy would for a
/// request with two headers and a one-chunk body.
#[cfg(test)]
#[allow(clippy::missing_safety_doc)]
pub mod fake {
    use super::*;
    use std::cell::{Cell, RefCell};

    thread_local! {
        static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
        static NEXT_ID: Cell<usize> = const { Cell::new(1) };
    }

    /// The calls made on this thread since the last `take`.
    pub fn take() -> Vec<String> {
        LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }

    fn log(entry: String) {
        LOG.with(|l| l.borrow_mut().push(entry));
    }

    unsafe fn text(buffer: ModuleBuffer) -> String {
        // SAFETY: the module passes live bytes for the call.
        let bytes = unsafe { std::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) };
        String::from_utf8_lossy(bytes).into_owned()
    }

    const HEADERS: [(&str, &str); 2] = [(":path", "/v1/chat/completions"), ("x-a", "b")];
    const BODY: &str = "{\"model\":\"m\"}";
    const ROUTE: &str = "bench-route/0/0";

    unsafe fn define(kind: &str, name: ModuleBuffer, id: *mut usize) -> MetricsResult {
        // SAFETY: the module passes a live name and a valid out-pointer.
        unsafe {
            log(format!("define_{kind}:{}", text(name)));
            let next = NEXT_ID.with(|n| n.replace(n.get() + 1));
            *id = next;
        }
        0
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        _: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        _: *const ModuleBuffer,
        _: usize,
        id: *mut usize,
    ) -> MetricsResult {
        unsafe { define("counter", name, id) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        _: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        _: *const ModuleBuffer,
        _: usize,
        id: *mut usize,
    ) -> MetricsResult {
        unsafe { define("gauge", name, id) }
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        _: FilterConfigEnvoyPtr,
        name: ModuleBuffer,
        _: *const ModuleBuffer,
        _: usize,
        id: *mut usize,
    ) -> MetricsResult {
        unsafe { define("histogram", name, id) }
    }

    macro_rules! metric_op {
        ($name:ident, $op:literal) => {
            #[no_mangle]
            pub extern "C" fn $name(
                _: FilterEnvoyPtr,
                id: usize,
                _: *const ModuleBuffer,
                _: usize,
                value: u64,
            ) -> MetricsResult {
                log(format!("{}:{id}+{value}", $op));
                0
            }
        };
    }
    metric_op!(
        envoy_dynamic_module_callback_http_filter_increment_counter,
        "increment_counter"
    );
    metric_op!(
        envoy_dynamic_module_callback_http_filter_increment_gauge,
        "increment_gauge"
    );
    metric_op!(
        envoy_dynamic_module_callback_http_filter_decrement_gauge,
        "decrement_gauge"
    );
    metric_op!(
        envoy_dynamic_module_callback_http_filter_set_gauge,
        "set_gauge"
    );
    metric_op!(
        envoy_dynamic_module_callback_http_filter_record_histogram_value,
        "record_histogram"
    );

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_callback_http_get_headers_size(
        _: FilterEnvoyPtr,
        _: HeaderType,
    ) -> usize {
        log("get_headers_size".into());
        HEADERS.len()
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_headers(
        _: FilterEnvoyPtr,
        _: HeaderType,
        result: *mut EnvoyHttpHeader,
    ) -> bool {
        log("get_headers".into());
        for (i, (k, v)) in HEADERS.iter().enumerate() {
            // SAFETY: the module passes room for get_headers_size entries.
            unsafe {
                *result.add(i) = EnvoyHttpHeader {
                    key_ptr: k.as_ptr().cast(),
                    key_length: k.len(),
                    value_ptr: v.as_ptr().cast(),
                    value_length: v.len(),
                };
            }
        }
        true
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_set_header(
        _: FilterEnvoyPtr,
        _: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool {
        // SAFETY: live buffers for the call.
        unsafe { log(format!("set_header:{}={}", text(key), text(value))) };
        true
    }

    /// One chunk in the received body, nothing buffered.
    fn chunks(body_type: BodyType) -> usize {
        match body_type {
            BodyType::ReceivedRequestBody | BodyType::ReceivedResponseBody => 1,
            _ => 0,
        }
    }

    #[no_mangle]
    pub extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        _: FilterEnvoyPtr,
        body_type: BodyType,
    ) -> usize {
        log("get_body_chunks_size".into());
        chunks(body_type)
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks(
        _: FilterEnvoyPtr,
        body_type: BodyType,
        result: *mut EnvoyBuffer,
    ) -> bool {
        log("get_body_chunks".into());
        if chunks(body_type) == 1 {
            // SAFETY: the module passes room for one buffer.
            unsafe {
                *result = EnvoyBuffer {
                    ptr: BODY.as_ptr().cast(),
                    length: BODY.len(),
                };
            }
        }
        true
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        _: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool {
        log(format!("get_attribute_string:{attribute_id}"));
        // SAFETY: a valid out-pointer.
        unsafe {
            *result = EnvoyBuffer {
                ptr: ROUTE.as_ptr().cast(),
                length: ROUTE.len(),
            };
        }
        true
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_get_metadata_string(
        _: FilterEnvoyPtr,
        _: MetadataSource,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        _: *mut EnvoyBuffer,
    ) -> bool {
        // SAFETY: live buffers for the call.
        unsafe {
            log(format!(
                "get_metadata_string:{}/{}",
                text(namespace),
                text(key)
            ))
        };
        false
    }

    #[no_mangle]
    pub unsafe extern "C" fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        _: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool {
        // SAFETY: live buffers for the call.
        unsafe { log(format!("set_filter_state:{}:{}B", text(key), value.length)) };
        true
    }
}
