//! tollgate cache filter.
//!
//! For now a pass-through that proves the module loads in Envoy and in our wasmtime host:
//! it accepts a JSON plugin configuration (empty means defaults) and lets every stream through.
//! The capability issues fill it in.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};
use tollgate_core::plugin_config::parse_plugin_config;

/// What the cache filter is told by its plugin configuration.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {}

/// One per worker VM: holds the parsed configuration.
#[derive(Default)]
pub struct CacheRoot {
    config: CacheConfig,
}

impl Context for CacheRoot {}

impl RootContext for CacheRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match parse_plugin_config::<CacheConfig>(&bytes) {
            Ok(config) => {
                self.config = config;
                true
            }
            Err(e) => {
                log::error!("tollgate-cache: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        log::trace!("tollgate-cache: new stream ({:?})", self.config);
        Some(Box::new(CacheStream))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Per-stream state (none yet).
pub struct CacheStream;

impl Context for CacheStream {}
impl HttpContext for CacheStream {}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(CacheRoot::default()) });
}}

/// Keeps `LogLevel` used on native builds, where the entry point is compiled out.
#[cfg(not(target_arch = "wasm32"))]
pub const LOG_LEVEL: LogLevel = LogLevel::Info;
