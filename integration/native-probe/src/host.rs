//! Safe calls into Envoy for `replay`: every `unsafe` use of the callbacks in abi.rs is here.
//!
//! A [`Host`] is made from the `filter_envoy` pointer Envoy passes to a hook and used only during
//! that hook; a [`ConfigHost`] from the `config_envoy` pointer of config_new, during that call.
//! Results are copied into Rust values before a method returns, so no Envoy-owned buffer
//! outlives the call that produced it.

use crate::abi::{
    self, BodyType, EnvoyBuffer, EnvoyHttpHeader, FilterConfigEnvoyPtr, FilterEnvoyPtr, HeaderType,
    MetadataSource, ModuleBuffer,
};

/// The bytes of an Envoy buffer (empty when null).
///
/// # Safety
/// `buffer` must come from Envoy for the current call: `ptr` valid for `length` bytes.
pub unsafe fn buffer_bytes<'a>(buffer: EnvoyBuffer) -> &'a [u8] {
    if buffer.ptr.is_null() {
        return &[];
    }
    // SAFETY: the caller guarantees ptr/length describe live bytes for this call.
    unsafe { std::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) }
}

/// One stream's filter in Envoy, during one hook.
pub struct Host(FilterEnvoyPtr);

impl Host {
    /// # Safety
    /// `filter` must be the `filter_envoy` pointer Envoy passed to the running hook, and the
    /// `Host` must not outlive that hook.
    pub unsafe fn new(filter: FilterEnvoyPtr) -> Self {
        Self(filter)
    }

    /// The whole header map, copied (name, value) pair by pair.
    pub fn headers(&self, kind: HeaderType) -> Vec<(Vec<u8>, Vec<u8>)> {
        // SAFETY: `self.0` is the live filter (see `new`); Envoy writes at most `size`
        // entries into a vector of that length, and their buffers live until the hook returns.
        unsafe {
            let size = abi::envoy_dynamic_module_callback_http_get_headers_size(self.0, kind);
            let mut raw = vec![EnvoyHttpHeader::EMPTY; size];
            if size == 0
                || !abi::envoy_dynamic_module_callback_http_get_headers(
                    self.0,
                    kind,
                    raw.as_mut_ptr(),
                )
            {
                return Vec::new();
            }
            raw.iter()
                .map(|h| {
                    let key = EnvoyBuffer {
                        ptr: h.key_ptr,
                        length: h.key_length,
                    };
                    let value = EnvoyBuffer {
                        ptr: h.value_ptr,
                        length: h.value_length,
                    };
                    (buffer_bytes(key).to_vec(), buffer_bytes(value).to_vec())
                })
                .collect()
        }
    }

    /// Sets (replaces) a header.
    pub fn set_header(&self, kind: HeaderType, name: &str, value: &str) -> bool {
        // SAFETY: live filter; the module buffers point to `name`/`value` for the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.0,
                kind,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        }
    }

    /// Appends the chunks of one body buffer to `out`.
    fn append_body(&self, kind: BodyType, out: &mut Vec<u8>) {
        // SAFETY: live filter; Envoy writes at most `count` buffers into a vector of that
        // length, each valid until the hook returns.
        unsafe {
            let count = abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.0, kind);
            if count == 0 {
                return;
            }
            let mut chunks = vec![EnvoyBuffer::EMPTY; count];
            if abi::envoy_dynamic_module_callback_http_get_body_chunks(
                self.0,
                kind,
                chunks.as_mut_ptr(),
            ) {
                for chunk in chunks {
                    out.extend_from_slice(buffer_bytes(chunk));
                }
            }
        }
    }

    /// The whole body at its last hook: what Envoy buffered, then the chunk just received.
    pub fn body(&self, buffered: BodyType, received: BodyType) -> Vec<u8> {
        let mut body = Vec::new();
        self.append_body(buffered, &mut body);
        self.append_body(received, &mut body);
        body
    }

    /// A string attribute (`xds.route_name`, ...), copied.
    pub fn attribute_string(&self, id: u32) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer::EMPTY;
        // SAFETY: live filter; `result` is a valid out-pointer, its buffer live for the hook.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.0,
                id,
                &mut result,
            )
            .then(|| buffer_bytes(result).to_vec())
        }
    }

    /// A string in the stream's dynamic metadata, copied.
    pub fn dynamic_metadata_string(&self, namespace: &str, key: &str) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer::EMPTY;
        // SAFETY: live filter; module buffers valid for the call; `result` a valid out-pointer.
        unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_string(
                self.0,
                MetadataSource::Dynamic,
                ModuleBuffer::of(namespace.as_bytes()),
                ModuleBuffer::of(key.as_bytes()),
                &mut result,
            )
            .then(|| buffer_bytes(result).to_vec())
        }
    }

    /// Sets a bytes filter-state value.
    pub fn set_filter_state(&self, key: &str, value: &[u8]) -> bool {
        // SAFETY: live filter; module buffers valid for the call.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// A metric of this filter's config changed by `value` (ids from [`ConfigHost`]).
    pub fn metric(&self, op: MetricOp, id: usize, value: u64) -> bool {
        let f = match op {
            MetricOp::Increment => abi::envoy_dynamic_module_callback_http_filter_increment_counter,
            MetricOp::GaugeUp => abi::envoy_dynamic_module_callback_http_filter_increment_gauge,
            MetricOp::GaugeDown => abi::envoy_dynamic_module_callback_http_filter_decrement_gauge,
            MetricOp::GaugeSet => abi::envoy_dynamic_module_callback_http_filter_set_gauge,
            MetricOp::Record => {
                abi::envoy_dynamic_module_callback_http_filter_record_histogram_value
            }
        };
        // SAFETY: live filter; no labels (null, 0), as defined.
        unsafe { f(self.0, id, std::ptr::null(), 0, value) == 0 }
    }
}

/// What [`Host::metric`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricOp {
    Increment,
    GaugeUp,
    GaugeDown,
    GaugeSet,
    Record,
}

/// The kind of metric [`ConfigHost::define`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A filter config in Envoy, during config_new.
pub struct ConfigHost(FilterConfigEnvoyPtr);

impl ConfigHost {
    /// # Safety
    /// `config` must be the `config_envoy` pointer of the running config_new, and the
    /// `ConfigHost` must not outlive that call.
    pub unsafe fn new(config: FilterConfigEnvoyPtr) -> Self {
        Self(config)
    }

    /// Defines a metric without labels; its id, or `None` when Envoy refuses.
    pub fn define(&self, kind: MetricKind, name: &str) -> Option<usize> {
        let f = match kind {
            MetricKind::Counter => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_counter
            }
            MetricKind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricKind::Histogram => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        let mut id = 0;
        // SAFETY: live config; the name buffer is valid for the call, no labels, `id` a valid
        // out-pointer.
        let result = unsafe {
            f(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        (result == 0).then_some(id)
    }
}
