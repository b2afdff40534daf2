//! tollgate router filter.
//!
//! For now a pass-through that proves the module loads in Envoy and in our wasmtime host:
//! it accepts a JSON plugin configuration (empty means defaults) and lets every stream through.
//! The capability issues fill it in.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use tollgate_core::plugin_config::parse_plugin_config;

/// What the router filter is told by its plugin configuration.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {}

/// One per worker VM: holds the parsed configuration.
#[derive(Default)]
pub struct RouterRoot {
    config: RouterConfig,
}

impl Context for RouterRoot {}

impl RootContext for RouterRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match parse_plugin_config::<RouterConfig>(&bytes) {
            Ok(config) => {
                self.config = config;
                true
            }
            Err(e) => {
                log::error!("tollgate-router: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        log::trace!("tollgate-router: new stream ({:?})", self.config);
        Some(Box::new(RouterStream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-stream state (none yet).
pub struct RouterStream;

impl Context for RouterStream {}
impl HttpContext for RouterStream {}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(RouterRoot::default()) });
}}

/// Keeps `LogLevel` used on native builds, where the entry point is compiled out.
#[cfg(not(target_arch = "wasm32"))]
pub const LOG_LEVEL: LogLevel = LogLevel::Info;
