//! Fixture filters for the host-vs-Envoy differential tests.
//!
//! One module, two behaviours chosen by `root_id`:
//! - `fixture` (any root_id but `reader`): what it does to a request is chosen by the request
//!   header `x-fixture-action` , so one configuration serves every test.
//! - `reader`: a second filter in the chain that copies the `fixture_seen` filter state (written
//!   by `fixture` with `set_property`) into the request header `x-fixture-seen`.
//!
//! Plugin configuration: `key=value` pairs separated by `;` (`greeting=hi;tick_ms=1000`).

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FixtureRoot::default()) });
}}

/// The cluster the `callout` action calls.
pub const CALLOUT_CLUSTER: &str = "fixture_upstream";
/// The shared queue the `enqueue` action feeds.
pub const QUEUE_NAME: &str = "fixture_queue";
/// The shared-data key the `cas` action increments.
pub const COUNTER_KEY: &str = "fixture_counter";

#[derive(Default)]
struct FixtureRoot {
    greeting: String,
    reader: bool,
    requests_metric: u32,
    queue_metric: u32,
    ticks_metric: u32,
    queue_id: Option<u32>,
}

impl Context for FixtureRoot {}

impl RootContext for FixtureRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.requests_metric =
            proxy_wasm::hostcalls::define_metric(MetricType::Counter, "fixture_requests_total")
                .unwrap_or(0);
        self.queue_metric =
            proxy_wasm::hostcalls::define_metric(MetricType::Counter, "fixture_queue_items_total")
                .unwrap_or(0);
        self.ticks_metric =
            proxy_wasm::hostcalls::define_metric(MetricType::Counter, "fixture_ticks_total")
                .unwrap_or(0);
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let root_id = self
            .get_property(vec!["plugin_root_id"])
            .unwrap_or_default();
        self.reader = root_id == b"reader";
        let config = self.get_plugin_configuration().unwrap_or_default();
        let config = String::from_utf8_lossy(&config).into_owned();
        let mut tick_ms = 0u64;
        for pair in config.split(';') {
            match pair.split_once('=') {
                Some(("greeting", value)) => self.greeting = value.to_string(),
                Some(("tick_ms", value)) => tick_ms = value.parse().unwrap_or(0),
                Some(("reject", "true")) => return false,
                _ => {}
            }
        }
        if tick_ms > 0 {
            self.set_tick_period(Duration::from_millis(tick_ms));
        }
        if !self.reader {
            self.queue_id = proxy_wasm::hostcalls::register_shared_queue(QUEUE_NAME).ok();
        }
        log::info!("fixture configured: greeting={}", self.greeting);
        true
    }

    fn on_tick(&mut self) {
        let _ = proxy_wasm::hostcalls::increment_metric(self.ticks_metric, 1);
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = proxy_wasm::hostcalls::dequeue_shared_queue(queue_id) {
            let _ = proxy_wasm::hostcalls::increment_metric(self.queue_metric, 1);
            log::info!("dequeued {}", String::from_utf8_lossy(&item));
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FixtureStream {
            context_id,
            greeting: self.greeting.clone(),
            reader: self.reader,
            requests_metric: self.requests_metric,
            action: String::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct FixtureStream {
    context_id: u32,
    greeting: String,
    reader: bool,
    requests_metric: u32,
    action: String,
}

impl FixtureStream {
    /// Increments the shared counter with a CAS retry loop; returns the new value.
    fn increment_shared_counter(&self) -> u64 {
        loop {
            let (value, cas) = self.get_shared_data(COUNTER_KEY);
            let current = value
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let next = current + 1;
            match self.set_shared_data(COUNTER_KEY, Some(next.to_string().as_bytes()), cas) {
                Ok(()) => return next,
                Err(Status::CasMismatch) => continue,
                Err(_) => return 0,
            }
        }
    }
}

impl Context for FixtureStream {
    fn on_done(&mut self) -> bool {
        log::info!("fixture on_done {}", self.context_id);
        true
    }

    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if num_headers == 0 {
            self.send_http_response(
                503,
                vec![("x-fixture-callout", "failed")],
                Some(b"callout failed"),
            );
            return;
        }
        let status = self
            .get_http_call_response_header(":status")
            .unwrap_or_default();
        let body = self
            .get_http_call_response_body(0, body_size)
            .unwrap_or_default();
        self.set_http_request_header("x-callout-status", Some(&status));
        self.set_http_request_header("x-callout-body", Some(&String::from_utf8_lossy(&body)));
        self.resume_http_request();
    }
}

impl HttpContext for FixtureStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.reader {
            let seen = self
                .get_property(vec!["fixture_seen"])
                .unwrap_or_else(|| b"none".to_vec());
            self.set_http_request_header("x-fixture-seen", Some(&String::from_utf8_lossy(&seen)));
            return Action::Continue;
        }
        let _ = proxy_wasm::hostcalls::increment_metric(self.requests_metric, 1);
        self.action = self
            .get_http_request_header("x-fixture-action")
            .unwrap_or_default();
        self.set_http_request_header("x-fixture", Some(&self.greeting.clone()));
        self.set_http_request_header("x-fixture-context", Some(&self.context_id.to_string()));
        match self.action.as_str() {
            "reply" => {
                self.send_http_response(
                    403,
                    vec![("x-fixture-local", "1")],
                    Some(b"denied by fixture"),
                );
                Action::Pause
            }
            "pause-for-body" | "buffer" | "replace-body" => Action::Pause,
            "callout" => {
                let headers = vec![
                    (":method", "GET"),
                    (":path", "/check"),
                    (":authority", "fixture"),
                ];
                match self.dispatch_http_call(
                    CALLOUT_CLUSTER,
                    headers,
                    Some(b"ping"),
                    vec![],
                    Duration::from_secs(1),
                ) {
                    Ok(_) => Action::Pause,
                    Err(status) => {
                        self.set_http_request_header(
                            "x-callout-error",
                            Some(&format!("{status:?}")),
                        );
                        Action::Continue
                    }
                }
            }
            "callout-unknown-cluster" => {
                let headers = vec![(":method", "GET"), (":path", "/"), (":authority", "x")];
                let result = self.dispatch_http_call(
                    "no_such_cluster",
                    headers,
                    None,
                    vec![],
                    Duration::from_secs(1),
                );
                let text = match result {
                    Ok(_) => "ok".to_string(),
                    Err(status) => format!("{status:?}"),
                };
                self.set_http_request_header("x-callout-error", Some(&text));
                Action::Continue
            }
            "cas" => {
                let value = self.increment_shared_counter();
                self.set_http_request_header("x-counter", Some(&value.to_string()));
                Action::Continue
            }
            "enqueue" => {
                let path = self.get_http_request_header(":path").unwrap_or_default();
                if let Ok(Some(queue)) = proxy_wasm::hostcalls::resolve_shared_queue("", QUEUE_NAME)
                {
                    let _ =
                        proxy_wasm::hostcalls::enqueue_shared_queue(queue, Some(path.as_bytes()));
                }
                Action::Continue
            }
            "property" => {
                let address = self
                    .get_property(vec!["source", "address"])
                    .unwrap_or_default();
                let sub = self
                    .get_property(vec![
                        "metadata",
                        "filter_metadata",
                        "envoy.filters.http.jwt_authn",
                        "payload",
                        "sub",
                    ])
                    .unwrap_or_default();
                let route = self
                    .get_property(vec!["xds", "route_name"])
                    .unwrap_or_default();
                let path = self
                    .get_property(vec!["request", "path"])
                    .unwrap_or_default();
                self.set_http_request_header(
                    "x-source-address",
                    Some(&String::from_utf8_lossy(&address)),
                );
                self.set_http_request_header("x-jwt-sub", Some(&String::from_utf8_lossy(&sub)));
                self.set_http_request_header(
                    "x-route-name",
                    Some(&String::from_utf8_lossy(&route)),
                );
                self.set_http_request_header(
                    "x-request-path",
                    Some(&String::from_utf8_lossy(&path)),
                );
                self.set_property(vec!["fixture_seen"], Some(b"yes"));
                Action::Continue
            }
            "time" => {
                let seconds = self
                    .get_current_time()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                self.set_http_request_header("x-fixture-time", Some(&seconds.to_string()));
                Action::Continue
            }
            "panic" => panic!("fixture panic requested"),
            "loop" => {
                let mut spins: u64 = 0;
                loop {
                    spins = spins.wrapping_add(1);
                    if spins == u64::MAX {
                        break Action::Continue;
                    }
                    std::hint::black_box(&mut spins);
                }
            }
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.action.as_str() {
            "pause-for-body" | "buffer" | "replace-body" if !end_of_stream => Action::Pause,
            "pause-for-body" => {
                // Headers are still paused at this filter, so they may still be changed.
                self.set_http_request_header("x-body-bytes", Some(&body_size.to_string()));
                Action::Continue
            }
            "buffer" => {
                let body = self.get_http_request_body(0, body_size).unwrap_or_default();
                self.set_http_request_header("x-body-bytes", Some(&body.len().to_string()));
                self.set_http_request_body(0, body_size, &body.to_ascii_uppercase());
                Action::Continue
            }
            "replace-body" => {
                self.set_http_request_body(0, body_size, b"replaced");
                Action::Continue
            }
            "late-header" => {
                // Headers were continued: Envoy answers BadArgument and the SDK panics.
                self.set_http_request_header("x-late", Some("1"));
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.reader {
            return Action::Continue;
        }
        if self.action == "request-header-in-response" {
            // Request headers are gone in the response phase: Envoy answers BadArgument and the
            // SDK panics ("unexpected status: 2").
            let path = self.get_http_request_header(":path");
            self.set_http_response_header("x-request-path", path.as_deref());
        }
        let status = self.get_http_response_header(":status").unwrap_or_default();
        self.set_http_response_header("x-fixture-response", Some(&status));
        if let Ok(metric) = proxy_wasm::hostcalls::define_metric(
            MetricType::Counter,
            &format!("fixture_responses_total.code.{status}"),
        ) {
            let _ = proxy_wasm::hostcalls::increment_metric(metric, 1);
        }
        if self.action == "buffer-response" {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !matches!(self.action.as_str(), "upper-response" | "buffer-response") || self.reader {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        self.set_http_response_body(0, body_size, &body.to_ascii_uppercase());
        Action::Continue
    }

    fn on_log(&mut self) {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        log::info!("fixture on_log {} {}", self.context_id, path);
    }
}
