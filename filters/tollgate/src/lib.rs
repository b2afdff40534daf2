//! tollgate.wasm: the one proxy-wasm module, and the only crate that touches proxy-wasm.
//!
//! Plugin roles, by `root_id` (names in `tollgate_core::names::root_id`):
//! - `tollgate` — the downstream pipeline, route → cache → budget → metrics, configured by
//!   `DownstreamConfig` (a stage runs when its section is present). See [`pipeline`].
//! - `router`, `cache`, `budget`, `metrics` — one capability alone, for users who load only
//!   that into an existing Envoy or Istio; `router` takes a `RouterConfig`, the others the same
//!   `DownstreamConfig` document (only their section counts).
//! - `adapter` — the upstream adapter (an upstream HTTP filter on each Backend's cluster, run
//!   once per attempt): rewrites the request for the provider Envoy chose and translates the
//!   answer back to OpenAI's format. See [`adapter`].
//!
//! Why dispatch on `plugin_root_id` at `on_configure`: proxy-wasm 0.2.5's `set_root_context`
//! takes a plain `fn(context_id) -> Box<dyn RootContext>`; it is not told the root id, and the
//! host calls it before the plugin configuration is delivered. So every root context starts as
//! an undecided [`TollgateRoot`] and reads `get_property(["plugin_root_id"])` in
//! `on_configure`, which is also where its configuration is parsed. An unknown root id or a
//! bad configuration fails configuration, so Envoy refuses to load the plugin.

pub mod adapter;
pub mod host;
pub mod pipeline;
pub mod stages;

use adapter::{AdapterRoot, AdapterStream};
use pipeline::{PipelineRoot, PipelineStream};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use std::rc::Rc;
use tollgate_core::config::{AdapterConfig, DownstreamConfig, RouterConfig};
use tollgate_core::names::root_id;
use tollgate_core::plugin_config::parse_plugin_config;

/// A root context, whose role is decided by its `root_id` when it is configured.
#[derive(Default)]
pub struct TollgateRoot {
    role: Option<Role>,
}

enum Role {
    Pipeline(Rc<PipelineRoot>),
    Adapter(AdapterRoot),
}

/// The role a root id names, from its configuration bytes.
fn configure(root: &str, bytes: &[u8]) -> Result<Role, String> {
    let downstream = || parse_plugin_config::<DownstreamConfig>(bytes).map_err(|e| e.to_string());
    let pipeline = |root: Result<PipelineRoot, String>| root.map(|r| Role::Pipeline(Rc::new(r)));
    match root {
        root_id::PIPELINE => pipeline(PipelineRoot::pipeline(downstream()?)),
        root_id::ROUTER => parse_plugin_config::<RouterConfig>(bytes)
            .map(|c| Role::Pipeline(Rc::new(PipelineRoot::router(c))))
            .map_err(|e| e.to_string()),
        root_id::CACHE => pipeline(PipelineRoot::capability(downstream()?, true, false, false)),
        root_id::BUDGET => pipeline(PipelineRoot::capability(downstream()?, false, true, false)),
        root_id::METRICS => pipeline(PipelineRoot::capability(downstream()?, false, false, true)),
        root_id::ADAPTER => {
            let config = parse_plugin_config::<AdapterConfig>(bytes).map_err(|e| e.to_string())?;
            // A key the VM cannot see fails configuration, so Envoy refuses the plugin.
            AdapterRoot::configure(config)
                .map(Role::Adapter)
                .map_err(|e| e.to_string())
        }
        other => Err(format!(
            "unknown root_id {other:?}; expected one of {:?}",
            [
                root_id::PIPELINE,
                root_id::ROUTER,
                root_id::CACHE,
                root_id::BUDGET,
                root_id::METRICS,
                root_id::ADAPTER
            ]
        )),
    }
}

impl Context for TollgateRoot {}

impl RootContext for TollgateRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let root = host::property_text(&["plugin_root_id"]).unwrap_or_default();
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match configure(&root, &bytes) {
            Ok(role) => {
                self.role = Some(role);
                true
            }
            Err(e) => {
                log::error!("tollgate ({root}): {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match &self.role {
            Some(Role::Pipeline(root)) => Some(Box::new(PipelineStream::new(root))),
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
    _context: &C,
    error: &tollgate_core::errors::GatewayError,
) -> proxy_wasm::types::Action {
    let reply =
        tollgate_core::stage::LocalReply::json(error.status(), error.to_openai().to_bytes());
    host::send_local_reply(&reply);
    proxy_wasm::types::Action::Pause
}
