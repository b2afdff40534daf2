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
