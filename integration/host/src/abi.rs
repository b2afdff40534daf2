//! Numeric constants of the proxy-wasm ABI 0.2.1, as Envoy uses them.

/// `proxy_status_t`: what every `env.proxy_*` hostcall returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The key, buffer, queue or metric does not exist (now).
    NotFound = 1,
    /// An argument is invalid, or the map/buffer cannot be used in this phase.
    BadArgument = 2,
    /// A property value cannot be serialized (e.g. a `null`).
    SerializationFailure = 3,
    /// Envoy's answer for a gRPC call to an unknown cluster.
    ParseFailure = 4,
    /// A pointer or length is outside the module's memory, or the allocator failed.
    InvalidMemoryAccess = 6,
    /// A shared queue has no item.
    Empty = 7,
    /// `proxy_set_shared_data` with a stale CAS.
    CasMismatch = 8,
    /// Envoy failed internally (e.g. a callout could not be sent).
    InternalFailure = 10,
    /// Envoy does not implement this call (e.g. continuing the upstream stream).
    Unimplemented = 12,
}

/// `proxy_buffer_type_t` values the host serves.
pub(crate) mod buffer {
    pub const HTTP_REQUEST_BODY: i32 = 0;
    pub const HTTP_RESPONSE_BODY: i32 = 1;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    pub const MAX: i32 = 8;
}

/// `proxy_map_type_t` values.
pub(crate) mod map {
    pub const HTTP_REQUEST_HEADERS: i32 = 0;
    pub const HTTP_REQUEST_TRAILERS: i32 = 1;
    pub const HTTP_RESPONSE_HEADERS: i32 = 2;
    pub const HTTP_RESPONSE_TRAILERS: i32 = 3;
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
    pub const MAX: i32 = 7;
}

/// `proxy_stream_type_t` values.
pub(crate) mod stream_type {
    pub const HTTP_REQUEST: i32 = 0;
    pub const HTTP_RESPONSE: i32 = 1;
    pub const UPSTREAM: i32 = 3;
}

/// The log levels of `proxy_log`, trace (0) to critical (5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `proxy_log` level 0.
    Trace,
    /// Level 1.
    Debug,
    /// Level 2; Envoy's `wasm` logger default.
    Info,
    /// Level 3.
    Warn,
    /// Level 4; also `fd_write` to stderr.
    Error,
    /// Level 5; the Rust SDK's panic hook logs here.
    Critical,
}

impl LogLevel {
    /// The level for an ABI value, `None` above 5 (Envoy answers BadArgument).
    pub(crate) fn from_abi(level: i32) -> Option<Self> {
        Some(match level {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }

    /// The ABI value (0..=5).
    pub(crate) fn to_abi(self) -> u32 {
        self as u32
    }
}

/// What a header/body/trailers callback returned, decoded the way Envoy decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterAction {
    /// 0: pass on.
    Continue,
    /// Headers: StopIteration (with `allow_on_headers_stop_iteration`); bodies: StopIterationAndBuffer.
    Stop,
    /// Headers without the knob: StopAllIterationAndWatermark (body callbacks stop too).
    StopAll,
    /// Headers returning 3: StopAllIterationAndBuffer (buffer limit applies).
    StopAllBuffer,
}
