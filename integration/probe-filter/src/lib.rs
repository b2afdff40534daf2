//! The probe filter: the floor of a wasm filter in Envoy, and the price of each host call.
//!
//! Configuration (plugin configuration string): `<call>` or `<call>*<n>`, e.g. `buffer`,
//! `get_header*100`. Every probe but `empty` pauses the request headers and waits for the whole
//! body, as the tollgate pipeline does; the call named runs `n` times (default 1) per request:
//!
//! - `empty`: nothing, every callback continues (the cost of a wasm filter being there)
//! - `buffer`: the body is buffered, nothing read
//! - `get_header`: `:path` read (`proxy_get_header_map_value`), in the headers phase
//! - `get_headers`: the whole request header map (`proxy_get_header_map_pairs`)
//! - `get_property`: `xds.route_name` (`proxy_get_property`)
//! - `set_header`: `x-probe: 1` set on the request (`proxy_replace_header_map_value`); the
//!   first change of a request makes Envoy clear its route cache
//! - `remove_header`: an absent request header removed
//! - `set_property`: 40 bytes of filter state written (`proxy_set_property`), the same name
//!   each time
//! - `set_properties`: as `set_property`, a new name each time (`probe_0`, `probe_1`, ...): the
//!   metrics stage's access log writes 11 names per request
//! - `clock`: `proxy_get_current_time_nanoseconds`
//! - `get_body`: the buffered 1 KB request body read (`proxy_get_buffer_bytes`), body phase
//!
//! Calls go through the SDK's hostcalls, results dropped. Unlike tollgate.wasm, the probe does
//! not guard against statuses the SDK does not expect (it would panic): it only runs in the
//! benchmark, where every call here answers Ok.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ProbeRoot::default()) });
}}

/// The host call a probe makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Call {
    #[default]
    Empty,
    Buffer,
    GetHeader,
    GetHeaders,
    GetProperty,
    SetHeader,
    RemoveHeader,
    SetProperty,
    SetProperties,
    Clock,
    GetBody,
}

impl Call {
    fn parse(name: &str) -> Option<Call> {
        Some(match name {
            "empty" => Call::Empty,
            "buffer" => Call::Buffer,
            "get_header" => Call::GetHeader,
            "get_headers" => Call::GetHeaders,
            "get_property" => Call::GetProperty,
            "set_header" => Call::SetHeader,
            "remove_header" => Call::RemoveHeader,
            "set_property" => Call::SetProperty,
            "set_properties" => Call::SetProperties,
            "clock" => Call::Clock,
            "get_body" => Call::GetBody,
            _ => return None,
        })
    }

    fn in_headers_phase(self, i: u32) {
        match self {
            Call::GetHeader => {
                let _ = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, ":path");
            }
            Call::GetHeaders => {
                let _ = hostcalls::get_map_bytes(MapType::HttpRequestHeaders);
            }
            Call::GetProperty => {
                let _ = hostcalls::get_property(vec!["xds", "route_name"]);
            }
            Call::SetHeader => {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-probe", Some("1"));
            }
            Call::RemoveHeader => {
                let _ =
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-probe-absent", None);
            }
            Call::SetProperty => {
                let _ = hostcalls::set_property(
                    vec!["probe_facts"],
                    Some(b"{\"model\":\"gpt-4o-mini\",\"stream\":false}"),
                );
            }
            Call::SetProperties => {
                let name = format!("probe_{i}");
                let _ = hostcalls::set_property(vec![name.as_str()], Some(b"gpt-4o-mini"));
            }
            Call::Clock => {
                let _ = hostcalls::get_current_time();
            }
            Call::Empty | Call::Buffer | Call::GetBody => {}
        }
    }
}

#[derive(Default)]
struct ProbeRoot {
    call: Call,
    times: u32,
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let (name, times) = text.trim().split_once('*').unwrap_or((text.trim(), "1"));
        match (Call::parse(name), times.parse()) {
            (Some(call), Ok(times)) => {
                self.call = call;
                self.times = times;
                true
            }
            _ => false, // Envoy refuses the plugin: a typo never measures the wrong thing
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            call: self.call,
            times: self.times,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    call: Call,
    times: u32,
}

impl Context for Probe {}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.call == Call::Empty {
            return Action::Continue;
        }
        for i in 0..self.times {
            self.call.in_headers_phase(i);
        }
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.call == Call::Empty {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        if self.call == Call::GetBody {
            for _ in 0..self.times {
                let _ = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size);
            }
        }
        Action::Continue
    }
}
