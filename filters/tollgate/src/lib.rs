//! tollgate router module: one `.wasm` with two plugin roles.
//!
//! - `root_id: "router"` — the downstream router (an HTTP filter on the listener): reads the
//!   chat-completions body once, picks the backend from the model, forces usage on streams,
//!   and publishes what it learned for the other filters. See [`router`].
//! - `root_id: "adapter"` — the upstream adapter (an upstream HTTP filter on each Backend's
//!   cluster, run once per attempt): rewrites the request for the provider Envoy chose and
//!   translates the answer back to OpenAI's format. See [`adapter`].
//!
//! Why dispatch on `plugin_root_id` at `on_configure`: proxy-wasm 0.2.5's `set_root_context`
//! takes a plain `fn(context_id) -> Box<dyn RootContext>`; it is not told the root id, and the
//! host calls it before the plugin configuration is delivered. So every root context starts as
//! an undecided [`TollgateRoot`] and reads `get_property(["plugin_root_id"])` in
//! `on_configure`, which is also where its configuration (of that role's type) is parsed. An
//! unknown root id fails configuration, so Envoy refuses to load a misconfigured plugin.

pub mod adapter;
pub mod router;

use adapter::{AdapterRoot, AdapterStream};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use router::{RouterRoot, RouterStream};
use tollgate_core::config::{AdapterConfig, RouterConfig};
use tollgate_core::plugin_config::parse_plugin_config;

use tollgate_core::config::DownstreamConfig;
use tollgate_core::names::root_id::{
    ADAPTER as ADAPTER_ROOT_ID, PIPELINE as PIPELINE_ROOT_ID, ROUTER as ROUTER_ROOT_ID,
};

/// A root context, whose role is decided by its `root_id` when it is configured.
#[derive(Default)]
pub struct TollgateRoot {
    role: Option<Role>,
}

enum Role {
    Router(RouterRoot),
    Adapter(AdapterRoot),
}

impl Context for TollgateRoot {}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let root_id = self
            .get_property(vec!["plugin_root_id"])
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let role = match root_id.as_str() {
            PIPELINE_ROOT_ID => parse_plugin_config::<DownstreamConfig>(&bytes)
                .map(|c| Role::Router(RouterRoot::new(c.route))),
            ROUTER_ROOT_ID => parse_plugin_config::<RouterConfig>(&bytes)
                .map(|c| Role::Router(RouterRoot::new(c))),
            ADAPTER_ROOT_ID => parse_plugin_config::<AdapterConfig>(&bytes)
                .map(|c| Role::Adapter(AdapterRoot::new(c))),
            other => {
                log::error!("tollgate: unknown root_id {other:?}; expected \"{ROUTER_ROOT_ID}\" or \"{ADAPTER_ROOT_ID}\"");
                return false;
            }
        };
        match role {
            Ok(role) => {
                self.role = Some(role);
                true
            }
            Err(e) => {
                log::error!("tollgate ({root_id}): {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match &self.role {
            Some(Role::Router(root)) => Some(Box::new(RouterStream::new(root))),
            Some(Role::Adapter(root)) => Some(Box::new(AdapterStream::new(root))),
            None => None,
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(TollgateRoot::default()) });
}}

/// Keeps `LogLevel` used on native builds, where the entry point is compiled out.
#[cfg(not(target_arch = "wasm32"))]
pub const LOG_LEVEL: LogLevel = LogLevel::Info;

/// Answers the stream locally with `error` in the OpenAI error format (the client's API);
/// both roles use it, so every error a client sees from tollgate has one shape.
pub(crate) fn send_openai_error<C: proxy_wasm::traits::HttpContext + ?Sized>(
    context: &C,
    error: &tollgate_core::errors::GatewayError,
) -> proxy_wasm::types::Action {
    let body = error.to_openai().to_bytes();
    context.send_http_response(
        u32::from(error.status()),
        vec![("content-type", "application/json")],
        Some(&body),
    );
    proxy_wasm::types::Action::Pause
}
