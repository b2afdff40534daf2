//! The upstream adapter role: runs once per attempt, after Envoy picked the endpoint.
//!
//! It finds which provider the endpoint is (the generator writes the provider's name into the
//! endpoint metadata `filter_metadata.tollgate.provider`), then rewrites `:path`,
//! `:authority`, credentials and body for it, and translates the answer back to OpenAI's
//! format: buffered for JSON and errors (headers held until the body is read, so a body that
//! does not translate can still become a 502), chunk by chunk for streams.
//!
//! Every attempt stands alone: Envoy keeps header mutations across retries, so each attempt
//! sets or removes every header it depends on ([`attempt_request_headers`]: `:authority`,
//! `:path`, `content-length`, `accept-encoding`, every provider's credentials, the client's
//! provider control headers).
//!
//! Provider keys come inline (`api_key`, test configs) or from the Envoy process environment
//! (`api_key_env`, passed to the VM by `vm_config.environment_variables.host_env_keys`), read
//! once per VM through WASI `environ_get` when the root is configured, and never logged.
//!
//! Host calls go through [`ffi`], which never panics: the SDK's getters `unwrap()` the host's
//! status and decode header values as UTF-8, so a non-UTF-8 value from a provider would trap
//! the VM, and with `FAIL_CLOSED` that worker would answer 503 until restart.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;
use tollgate_core::config::{AdapterConfig, ProviderEndpoint, ProviderKind};
use tollgate_core::errors::{provider_error_code, translate_error_body, GatewayError};
use tollgate_core::names::header;
use tollgate_core::translate::{
    attempt_request_headers, environ_value, is_safe_header_token, model_header_value, operation_of,
    other_operation_path, passthrough_request, plan_response, resolve_api_keys,
    translated_json_or_502, upstream_request, KeyError, Operation, ResponseContext, ResponsePlan,
    StreamTranslator, UpstreamRequest, OPERATOR_RESPONSE_HEADERS,
};

/// Response header naming the provider that served the answer.
pub const PROVIDER_HEADER: &str = header::PROVIDER;
/// Response header naming the model asked of that provider.
pub const MODEL_HEADER: &str = header::MODEL;

/// Counter of translated streams ended with an error event (cut, unreadable, over a cap).
pub const STREAM_FAULTS_METRIC: &str = "tollgate_adapter_stream_faults_total";
/// Counter of translated streams ended because a buffer cap was reached (a subset of
/// [`STREAM_FAULTS_METRIC`]).
pub const STREAM_CAPS_METRIC: &str = "tollgate_adapter_stream_cap_exceeded_total";

/// Property paths where the chosen endpoint's provider name may be found, tried in order.
/// `xds.upstream_host_metadata` is Envoy's attribute for the upstream host's metadata;
/// the bare `upstream_host_metadata` is the older Wasm-only spelling.
pub const PROVIDER_PROPERTY_PATHS: [&[&str]; 2] = [
    &[
        "xds",
        "upstream_host_metadata",
        "filter_metadata",
        "tollgate",
        "provider",
    ],
    &[
        "upstream_host_metadata",
        "filter_metadata",
        "tollgate",
        "provider",
    ],
];

/// The filter-state property the downstream pipeline publishes for the adapter.
const REQUEST_FACTS_PROPERTY: &str = tollgate_core::names::property::REQUEST_FACTS;

/// The adapter's configuration with its resolved keys, shared by its streams.
pub struct AdapterRoot {
    config: Rc<AdapterConfig>,
    /// `config.providers[i]`'s API key, resolved once at configure time.
    keys: Rc<Vec<Option<String>>>,
    metrics: Rc<Metrics>,
}

/// Ids of the adapter's counters (`None` when the host refused to define them).
#[derive(Default)]
struct Metrics {
    stream_faults: Option<u32>,
    stream_caps: Option<u32>,
}

impl AdapterRoot {
    /// A root for `config`, with each provider's key resolved from the configuration or from
    /// the VM's environment (WASI `environ_get`). A key named by `api_key_env` that the VM does
    /// not see fails the configuration, naming the variable (never a value).
    pub fn configure(config: AdapterConfig) -> Result<Self, KeyError> {
        let needs_environment = config.providers.iter().any(|p| p.api_key_env.is_some());
        let block = if needs_environment {
            ffi::environ_block()
        } else {
            Vec::new()
        };
        let keys = resolve_api_keys(&config, |name| environ_value(&block, name))?;
        let metrics = Metrics {
            stream_faults: ffi::define_counter(STREAM_FAULTS_METRIC),
            stream_caps: ffi::define_counter(STREAM_CAPS_METRIC),
        };
        Ok(Self {
            config: Rc::new(config),
            keys: Rc::new(keys),
            metrics: Rc::new(metrics),
        })
    }
}

/// How the answer's body is handled.
enum ResponseMode {
    /// Relayed as is (an OpenAI-compatible provider's success), or nothing to do.
    Relay,
    /// Headers held, body buffered, then answered per the plan.
    Buffered(ResponsePlan),
    /// Translated chunk by chunk.
    Stream(Box<StreamTranslator>),
}

/// What the pipeline published about the request (a projection of the router's facts).
#[derive(serde::Deserialize, Default)]
struct PublishedFacts {
    #[serde(default)]
    model: String,
    #[serde(default)]
    stream: bool,
    /// The size of the body as the pipeline forwards it (after its own rewrite).
    #[serde(default)]
    body_bytes: Option<usize>,
}

/// One attempt.
pub struct AdapterStream {
    config: Rc<AdapterConfig>,
    keys: Rc<Vec<Option<String>>>,
    metrics: Rc<Metrics>,
    provider: Option<usize>,
    upstream: Option<UpstreamRequest>,
    response: ResponseMode,
    answered: bool,
    /// Request body bytes buffered so far (read again if the body ends with trailers).
    request_body_size: usize,
    /// Reused output buffer for stream translation.
    out: Vec<u8>,
    /// The body goes to the provider unchanged: request callbacks only continue.
    passthrough: bool,
    /// Names of the client's request headers, read once at request headers.
    client_headers: Vec<String>,
}

impl AdapterStream {
    /// A stream of the adapter role.
    pub fn new(root: &AdapterRoot) -> Self {
        Self {
            config: Rc::clone(&root.config),
            keys: Rc::clone(&root.keys),
            metrics: Rc::clone(&root.metrics),
            provider: None,
            upstream: None,
            response: ResponseMode::Relay,
            answered: false,
            request_body_size: 0,
            out: Vec::new(),
            passthrough: false,
            client_headers: Vec::new(),
        }
    }

    fn provider(&self) -> Option<&ProviderEndpoint> {
        self.provider.and_then(|i| self.config.providers.get(i))
    }

    fn key(&self) -> Option<&str> {
        self.provider
            .and_then(|i| self.keys.get(i))
            .and_then(|k| k.as_deref())
    }

    /// The chosen endpoint's provider: from its metadata, or the only provider there is.
    fn find_provider(&self) -> Option<usize> {
        if self.config.providers.len() == 1 {
            // Nothing to choose: skip the metadata lookup (a CEL evaluation in Envoy).
            return Some(0);
        }
        let name = PROVIDER_PROPERTY_PATHS
            .iter()
            .find_map(|path| ffi::property(path))?;
        self.config
            .providers
            .iter()
            .position(|p| p.name.as_bytes() == name.as_slice())
    }

    fn reject(&mut self, error: &GatewayError) -> Action {
        self.answered = true;
        crate::send_openai_error(self, error)
    }

    fn no_provider(&self) -> GatewayError {
        GatewayError::Unavailable(format!(
            "backend {}: no provider matches the chosen endpoint",
            self.config.backend
        ))
    }

    /// The router's published facts (absent when no pipeline ran before this cluster).
    fn published_facts(&self) -> Option<PublishedFacts> {
        let bytes = ffi::property(&[REQUEST_FACTS_PROPERTY])?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Sets or removes every request header this attempt depends on (headers still held).
    fn set_attempt_headers(&self, path: Option<&str>, content_length: Option<usize>) {
        let Some(provider) = self.provider() else {
            return;
        };
        let plan = attempt_request_headers(
            provider,
            self.key(),
            path,
            content_length,
            self.client_headers.iter().map(String::as_str),
        );
        for (name, value) in plan {
            ffi::set_header(ffi::REQUEST_HEADERS, &name, value.as_deref());
        }
    }

    /// Rewrites headers (still paused) and body of a chat request for the chosen provider.
    fn prepare_request(&mut self, body: &[u8]) -> Result<(), GatewayError> {
        let provider = self.provider().ok_or_else(|| self.no_provider())?;
        let upstream = upstream_request(provider, body)?;
        let length = upstream.body.as_ref().map_or(body.len(), Vec::len);
        self.set_attempt_headers(Some(&upstream.path), Some(length));
        if let Some(new_body) = &upstream.body {
            ffi::set_buffer(ffi::REQUEST_BODY, body.len(), new_body);
        }
        self.upstream = Some(upstream);
        Ok(())
    }

    /// The whole request body is in (end of body or trailers): prepare it, or answer locally.
    fn on_request_complete(&mut self) -> Action {
        let body = ffi::buffer(ffi::REQUEST_BODY, self.request_body_size);
        match self.prepare_request(&body) {
            Ok(()) => Action::Continue,
            Err(error) => self.reject(&error),
        }
    }

    fn response_context(&self) -> ResponseContext {
        let now = ffi::now();
        ResponseContext {
            model: self
                .upstream
                .as_ref()
                .map(|u| u.model.clone())
                .unwrap_or_default(),
            created: now.as_secs(),
            fallback_id: format!("chatcmpl-{:x}", now.as_nanos()),
        }
    }

    /// The buffered answer is whole: decide its status and body, and let headers and body go.
    fn finish_buffered(&mut self, body_size: usize) {
        let ResponseMode::Buffered(plan) =
            std::mem::replace(&mut self.response, ResponseMode::Relay)
        else {
            return;
        };
        let kind = self.provider().map_or(ProviderKind::Openai, |p| p.kind);
        let status = ffi::status();
        let body = ffi::buffer(ffi::RESPONSE_BODY, body_size);
        let (new_status, answer) = match plan {
            ResponsePlan::TranslateJson => {
                translated_json_or_502(kind, &body, &self.response_context())
            }
            ResponsePlan::TranslateError => (status, translate_error_body(kind, status, &body)),
            ResponsePlan::Replace { status, error } => (status, error),
            ResponsePlan::Relay | ResponsePlan::Stream => (status, body.clone()),
        };
        if new_status != status {
            if let Some(provider) = self.provider() {
                // The provider's code only: its message may quote a masked key.
                let code = provider_error_code(kind, status, &body)
                    .map_or_else(String::new, |c| format!(" (provider code {c})"));
                log::warn!(
                    "tollgate adapter ({}): provider {} answered {status}{code}; the client gets {new_status}",
                    self.config.backend,
                    provider.name
                );
            }
            ffi::set_header(
                ffi::RESPONSE_HEADERS,
                ":status",
                Some(&new_status.to_string()),
            );
        }
        ffi::set_header(ffi::RESPONSE_HEADERS, "content-encoding", None);
        ffi::set_header(
            ffi::RESPONSE_HEADERS,
            "content-type",
            Some("application/json"),
        );
        ffi::set_header(
            ffi::RESPONSE_HEADERS,
            "content-length",
            Some(&answer.len().to_string()),
        );
        ffi::set_buffer(ffi::RESPONSE_BODY, body_size, &answer);
    }

    fn count_fault(&self, translator: &StreamTranslator) {
        let Some(fault) = translator.fault() else {
            return;
        };
        if let Some(id) = self.metrics.stream_faults {
            ffi::increment(id);
        }
        if fault.is_cap() {
            if let Some(id) = self.metrics.stream_caps {
                ffi::increment(id);
            }
        }
        if let Some(provider) = self.provider() {
            log::warn!(
                "tollgate adapter ({}): the stream from provider {} was ended with an error event: {fault:?}",
                self.config.backend,
                provider.name
            );
        }
    }
}

impl Context for AdapterStream {}

impl HttpContext for AdapterStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.provider = self.find_provider();
        self.client_headers = ffi::header_names(ffi::REQUEST_HEADERS);
        let config = Rc::clone(&self.config);
        let Some(provider) = self.provider.and_then(|i| config.providers.get(i)) else {
            let error = self.no_provider();
            return self.reject(&error);
        };
        let path = ffi::header(ffi::REQUEST_HEADERS, ":path")
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default();
        match operation_of(&path) {
            Operation::Other(suffix) => {
                // An operation opted in for OpenAI-compatible providers: forwarded untranslated.
                if provider.kind != ProviderKind::Openai {
                    let method = ffi::header(ffi::REQUEST_HEADERS, ":method")
                        .map(|m| String::from_utf8_lossy(&m).into_owned())
                        .unwrap_or_default();
                    let error = GatewayError::UnknownOperation {
                        method,
                        path: path.split('?').next().unwrap_or_default().to_string(),
                    };
                    return self.reject(&error);
                }
                let upstream_path = other_operation_path(provider, &suffix);
                // No attempt of this request rewrites its body: its length is the client's.
                let length = ffi::header(ffi::REQUEST_HEADERS, "content-length")
                    .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse().ok());
                self.set_attempt_headers(Some(&upstream_path), length);
                self.passthrough = true;
                Action::Continue
            }
            Operation::Chat if end_of_stream => {
                // No body to translate: point the request at the provider, nothing more.
                let chat_path = format!(
                    "{}/v1/chat/completions",
                    provider.path_prefix.trim_end_matches('/')
                );
                self.set_attempt_headers(Some(&chat_path), None);
                Action::Continue
            }
            Operation::Chat => {
                let facts = self.published_facts();
                let summary = facts
                    .as_ref()
                    .map(|f| tollgate_core::request::RequestSummary {
                        model: f.model.clone(),
                        stream: f.stream,
                        backend: None,
                        body_bytes: f.body_bytes,
                    });
                let passthrough = summary
                    .as_ref()
                    .and_then(|s| passthrough_request(provider, s));
                match passthrough {
                    Some(upstream) => {
                        // The body goes unchanged: its length is what the pipeline forwards
                        // (a previous, translated attempt may have left its own).
                        let length = facts.and_then(|f| f.body_bytes);
                        self.set_attempt_headers(Some(&upstream.path), length);
                        self.upstream = Some(upstream);
                        self.passthrough = true;
                        Action::Continue
                    }
                    None => Action::Pause,
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.passthrough {
            return Action::Continue;
        }
        self.request_body_size = body_size;
        if self.answered || !end_of_stream {
            return Action::Pause;
        }
        self.on_request_complete()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.passthrough {
            return Action::Continue;
        }
        if self.answered {
            return Action::Pause;
        }
        self.on_request_complete()
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Continue;
        }
        let Some(provider) = self.provider().cloned() else {
            return Action::Continue;
        };
        for name in OPERATOR_RESPONSE_HEADERS {
            ffi::set_header(ffi::RESPONSE_HEADERS, name, None);
        }
        // Names come from the operator's configuration; still, only safe tokens become headers.
        let name = Some(provider.name.as_str()).filter(|n| is_safe_header_token(n));
        ffi::set_header(ffi::RESPONSE_HEADERS, PROVIDER_HEADER, name);
        let model = self
            .upstream
            .as_ref()
            .and_then(|u| model_header_value(&provider, &u.model));
        ffi::set_header(ffi::RESPONSE_HEADERS, MODEL_HEADER, model);
        let status = ffi::status();
        let content_type = ffi::header(ffi::RESPONSE_HEADERS, "content-type");
        let content_encoding = ffi::header(ffi::RESPONSE_HEADERS, "content-encoding");
        let plan = plan_response(
            &provider,
            status,
            content_type.as_deref(),
            content_encoding.as_deref(),
        );
        if status == 401 || status == 403 {
            log::warn!(
                "tollgate adapter ({}): provider {} refused the gateway's credentials with {status}; check the key configured for it (the client gets a 502)",
                self.config.backend,
                provider.name
            );
        }
        match plan {
            ResponsePlan::Relay => Action::Continue,
            ResponsePlan::Stream if !end_of_stream => {
                match StreamTranslator::for_provider(provider.kind, &self.response_context()) {
                    Some(translator) => {
                        ffi::set_header(ffi::RESPONSE_HEADERS, "content-length", None);
                        ffi::set_header(
                            ffi::RESPONSE_HEADERS,
                            "content-type",
                            Some("text/event-stream"),
                        );
                        self.response = ResponseMode::Stream(Box::new(translator));
                    }
                    None => self.response = ResponseMode::Relay,
                }
                Action::Continue
            }
            plan if end_of_stream => {
                // No body comes, and a body cannot be added from the headers callback: the
                // status is settled here, and the downstream pipeline writes the OpenAI body
                // of an error without one.
                let new_status = match plan {
                    ResponsePlan::Replace { status, .. } => status,
                    ResponsePlan::Stream | ResponsePlan::TranslateJson => 502,
                    _ => status,
                };
                if new_status != status {
                    ffi::set_header(
                        ffi::RESPONSE_HEADERS,
                        ":status",
                        Some(&new_status.to_string()),
                    );
                }
                ffi::set_header(ffi::RESPONSE_HEADERS, "content-type", None);
                ffi::set_header(ffi::RESPONSE_HEADERS, "content-encoding", None);
                ffi::set_header(ffi::RESPONSE_HEADERS, "content-length", Some("0"));
                Action::Continue
            }
            plan => {
                // Held until the body is read: its status may still change.
                self.response = ResponseMode::Buffered(plan);
                Action::Pause
            }
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &mut self.response {
            ResponseMode::Relay => Action::Continue,
            ResponseMode::Buffered(_) => {
                if !end_of_stream {
                    return Action::Pause; // buffer the whole (small) answer
                }
                self.finish_buffered(body_size);
                Action::Continue
            }
            ResponseMode::Stream(translator) => {
                let body = ffi::buffer(ffi::RESPONSE_BODY, body_size);
                let mut out = std::mem::take(&mut self.out);
                out.clear();
                let had_fault = translator.fault().is_some();
                translator.push(&body, &mut out);
                if end_of_stream {
                    translator.finish(&mut out);
                }
                ffi::set_buffer(ffi::RESPONSE_BODY, body_size, &out);
                self.out = out;
                if !had_fault {
                    if let ResponseMode::Stream(translator) = &self.response {
                        self.count_fault(translator);
                    }
                }
                Action::Continue
            }
        }
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // A buffered answer that ends with trailers: the body is whole now.
        if matches!(self.response, ResponseMode::Buffered(_)) {
            let size = ffi::buffer_size(ffi::RESPONSE_BODY);
            self.finish_buffered(size);
        }
        Action::Continue
    }
}

/// The host calls the adapter makes, none of which can panic: statuses are returned, values
/// are bytes. Native builds (unit tests of the rlib) get inert stand-ins.
mod ffi {
    use std::time::Duration;

    /// `proxy_map_type_t` / `proxy_buffer_type_t` values.
    pub const REQUEST_HEADERS: i32 = 0;
    pub const RESPONSE_HEADERS: i32 = 2;
    pub const REQUEST_BODY: i32 = 0;
    pub const RESPONSE_BODY: i32 = 1;

    /// Largest WASI environment block read (the variables Envoy passes are a few keys).
    #[cfg(target_arch = "wasm32")]
    const MAX_ENVIRON_BYTES: usize = 1 << 20;

    #[cfg(target_arch = "wasm32")]
    mod raw {
        #[link(wasm_import_module = "env")]
        extern "C" {
            pub fn proxy_get_header_map_value(
                map: i32,
                key: *const u8,
                key_len: usize,
                value: *mut *mut u8,
                value_len: *mut usize,
            ) -> u32;
            pub fn proxy_get_header_map_pairs(map: i32, data: *mut *mut u8, len: *mut usize)
                -> u32;
            pub fn proxy_replace_header_map_value(
                map: i32,
                key: *const u8,
                key_len: usize,
                value: *const u8,
                value_len: usize,
            ) -> u32;
            pub fn proxy_remove_header_map_value(map: i32, key: *const u8, key_len: usize) -> u32;
            pub fn proxy_get_buffer_bytes(
                buffer: i32,
                start: usize,
                max: usize,
                data: *mut *mut u8,
                len: *mut usize,
            ) -> u32;
            pub fn proxy_get_buffer_status(buffer: i32, len: *mut usize, flags: *mut u32) -> u32;
            pub fn proxy_set_buffer_bytes(
                buffer: i32,
                start: usize,
                len: usize,
                data: *const u8,
                data_len: usize,
            ) -> u32;
            pub fn proxy_get_property(
                path: *const u8,
                path_len: usize,
                value: *mut *mut u8,
                value_len: *mut usize,
            ) -> u32;
            pub fn proxy_define_metric(
                kind: u32,
                name: *const u8,
                name_len: usize,
                id: *mut u32,
            ) -> u32;
            pub fn proxy_increment_metric(id: u32, offset: i64) -> u32;
        }

        #[link(wasm_import_module = "wasi_snapshot_preview1")]
        extern "C" {
            pub fn environ_sizes_get(count: *mut usize, buf_size: *mut usize) -> u32;
            pub fn environ_get(environ: *mut *mut u8, buf: *mut u8) -> u32;
        }

        /// Takes ownership of a host-allocated buffer (allocated with this module's allocator
        /// for exactly `len` bytes; null means empty).
        ///
        /// # Safety
        /// `data` must be null or come from the host for exactly `len` bytes.
        pub unsafe fn take(data: *mut u8, len: usize) -> Vec<u8> {
            if data.is_null() {
                Vec::new()
            } else {
                Vec::from_raw_parts(data, len, len)
            }
        }
    }

    /// A header's value as bytes; `None` when absent or the map is not available.
    #[cfg(target_arch = "wasm32")]
    pub fn header(map: i32, name: &str) -> Option<Vec<u8>> {
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: out-pointers to locals; the host fills them per the ABI.
        let status = unsafe {
            raw::proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut len)
        };
        // SAFETY: on OK the host allocated `len` bytes at `data` (or wrote null).
        (status == 0).then(|| unsafe { raw::take(data, len) })
    }

    /// The names of a header map's entries (lower case, as Envoy keeps them).
    #[cfg(target_arch = "wasm32")]
    pub fn header_names(map: i32) -> Vec<String> {
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: as in `header`.
        let status = unsafe { raw::proxy_get_header_map_pairs(map, &mut data, &mut len) };
        if status != 0 {
            return Vec::new();
        }
        // SAFETY: as in `header`.
        let bytes = unsafe { raw::take(data, len) };
        pair_names(&bytes)
    }

    /// Sets (or with `None` removes) a header; a host refusal is ignored.
    #[cfg(target_arch = "wasm32")]
    pub fn set_header(map: i32, name: &str, value: Option<&str>) {
        // SAFETY: pointers to live slices of the given lengths.
        unsafe {
            match value {
                Some(v) => raw::proxy_replace_header_map_value(
                    map,
                    name.as_ptr(),
                    name.len(),
                    v.as_ptr(),
                    v.len(),
                ),
                None => raw::proxy_remove_header_map_value(map, name.as_ptr(), name.len()),
            };
        }
    }

    /// Bytes `[0, size)` of a body buffer (empty when unavailable).
    #[cfg(target_arch = "wasm32")]
    pub fn buffer(kind: i32, size: usize) -> Vec<u8> {
        if size == 0 {
            return Vec::new();
        }
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: as in `header`.
        let status = unsafe { raw::proxy_get_buffer_bytes(kind, 0, size, &mut data, &mut len) };
        if status != 0 {
            return Vec::new();
        }
        // SAFETY: as in `header`.
        unsafe { raw::take(data, len) }
    }

    /// The size of a body buffer (0 when unavailable).
    #[cfg(target_arch = "wasm32")]
    pub fn buffer_size(kind: i32) -> usize {
        let (mut len, mut flags) = (0usize, 0u32);
        // SAFETY: out-pointers to locals.
        let status = unsafe { raw::proxy_get_buffer_status(kind, &mut len, &mut flags) };
        if status == 0 {
            len
        } else {
            0
        }
    }

    /// Replaces bytes `[0, size)` of a body buffer with `data`.
    #[cfg(target_arch = "wasm32")]
    pub fn set_buffer(kind: i32, size: usize, data: &[u8]) {
        // SAFETY: pointer to a live slice of the given length.
        unsafe {
            raw::proxy_set_buffer_bytes(kind, 0, size, data.as_ptr(), data.len());
        }
    }

    /// A host property (segments joined with NUL); `None` when absent.
    #[cfg(target_arch = "wasm32")]
    pub fn property(path: &[&str]) -> Option<Vec<u8>> {
        let joined = path.join("\0");
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: as in `header`.
        let status =
            unsafe { raw::proxy_get_property(joined.as_ptr(), joined.len(), &mut data, &mut len) };
        // SAFETY: as in `header`.
        let value = (status == 0).then(|| unsafe { raw::take(data, len) })?;
        (!value.is_empty()).then_some(value)
    }

    /// Defines a counter; `None` when the host refuses.
    #[cfg(target_arch = "wasm32")]
    pub fn define_counter(name: &str) -> Option<u32> {
        let mut id = 0u32;
        // SAFETY: pointer to a live str; out-pointer to a local.
        let status = unsafe { raw::proxy_define_metric(0, name.as_ptr(), name.len(), &mut id) };
        (status == 0).then_some(id)
    }

    /// Adds one to a counter.
    #[cfg(target_arch = "wasm32")]
    pub fn increment(id: u32) {
        // SAFETY: plain values.
        unsafe {
            raw::proxy_increment_metric(id, 1);
        }
    }

    /// The VM's WASI environment block (`k=v\0...`), as Envoy fills it from
    /// `vm_config.environment_variables`; empty when there is none or it cannot be read.
    #[cfg(target_arch = "wasm32")]
    pub fn environ_block() -> Vec<u8> {
        let (mut count, mut size) = (0usize, 0usize);
        // SAFETY: out-pointers to locals.
        if unsafe { raw::environ_sizes_get(&mut count, &mut size) } != 0
            || size > MAX_ENVIRON_BYTES
            || count > size + 1
        {
            return Vec::new();
        }
        let mut pointers: Vec<*mut u8> = vec![std::ptr::null_mut(); count];
        let mut block = vec![0u8; size];
        // SAFETY: `count` pointer slots and `size` bytes, as the host announced.
        if unsafe { raw::environ_get(pointers.as_mut_ptr(), block.as_mut_ptr()) } != 0 {
            return Vec::new();
        }
        block
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn header(_map: i32, _name: &str) -> Option<Vec<u8>> {
        None
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub fn header_names(_map: i32) -> Vec<String> {
        Vec::new()
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub fn set_header(_map: i32, _name: &str, _value: Option<&str>) {}
    #[cfg(not(target_arch = "wasm32"))]
    pub fn buffer(_kind: i32, _size: usize) -> Vec<u8> {
        Vec::new()
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub fn buffer_size(_kind: i32) -> usize {
        0
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub fn set_buffer(_kind: i32, _size: usize, _data: &[u8]) {}
    #[cfg(not(target_arch = "wasm32"))]
    pub fn property(_path: &[&str]) -> Option<Vec<u8>> {
        None
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub fn define_counter(_name: &str) -> Option<u32> {
        None
    }
    #[cfg(not(target_arch = "wasm32"))]
    pub fn increment(_id: u32) {}
    #[cfg(not(target_arch = "wasm32"))]
    pub fn environ_block() -> Vec<u8> {
        std::env::vars()
            .flat_map(|(k, v)| format!("{k}={v}\0").into_bytes())
            .collect()
    }

    /// The names in a serialized header map (`u32 count`, `count × (u32 key_len, u32
    /// value_len)`, then each key and value NUL-terminated), checked against its bounds.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub fn pair_names(bytes: &[u8]) -> Vec<String> {
        let read = |at: usize| -> Option<usize> {
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let Some(count) = read(0) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        let mut at = 4usize.saturating_add(count.saturating_mul(8));
        for i in 0..count {
            let (Some(key_len), Some(value_len)) = (read(4 + i * 8), read(8 + i * 8)) else {
                break;
            };
            let Some(key) = bytes.get(at..at.saturating_add(key_len)) else {
                break;
            };
            names.push(String::from_utf8_lossy(key).into_owned());
            at = at
                .saturating_add(key_len)
                .saturating_add(1)
                .saturating_add(value_len)
                .saturating_add(1);
        }
        names
    }

    /// The response's `:status` (200 when unreadable).
    pub fn status() -> u16 {
        header(RESPONSE_HEADERS, ":status")
            .and_then(|s| std::str::from_utf8(&s).ok()?.trim().parse().ok())
            .unwrap_or(200)
    }

    /// The host clock since the epoch.
    pub fn now() -> Duration {
        proxy_wasm::hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::ffi::pair_names;

    #[test]
    fn header_names_are_read_from_the_pairs_format_within_bounds() {
        // {a:"1", bb:"22"}
        let mut bytes = vec![2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0];
        bytes.extend_from_slice(b"a\x001\x00bb\x0022\x00");
        assert_eq!(pair_names(&bytes), vec!["a".to_string(), "bb".to_string()]);
        // Truncated or lying counts never read out of bounds.
        assert_eq!(pair_names(&bytes[..10]), Vec::<String>::new());
        assert_eq!(pair_names(&[255, 255, 255, 255]), Vec::<String>::new());
        assert_eq!(pair_names(&[]), Vec::<String>::new());
    }
}
