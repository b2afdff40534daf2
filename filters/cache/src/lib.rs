//! tollgate cache stage: pure decisions over [`tollgate_core::facts`], called by the pipeline in
//! the `tollgate` glue crate. No proxy-wasm here: the dependency graph keeps it out.
//!
//! - [`key`]: cache keys (SHA-256 over the canonical form of `KEYS.md`).
//! - [`canonical`]: the canonical JSON form, written from a value or straight from JSON text.
//! - [`sha256`]: the keys' hash, written for the size-tuned module.
//! - [`policy`]: what may be looked up and stored (safe and aggressive modes).
//! - [`entry`]: stored answers and their replay.
//! - [`store`]: entries in shared data within a hard byte bound and a fixed key space.
//! - [`response`]: the response cache's decisions for one request.
//! - [`tools`]: the MCP tool-result cache.
//! - [`semantic`]: the semantic-cache service's protocol (`services/semantic-cache/PROTOCOL.md`).

pub mod canonical;
pub mod entry;
pub mod key;
pub mod policy;
pub mod response;
pub mod semantic;
pub mod sha256;
pub mod store;
pub mod tools;

/// `x-cache-status` values.
pub mod status {
    /// Answered from the cache.
    pub const HIT: &str = "HIT";
    /// Looked up, not found: the answer comes from upstream (and may be stored).
    pub const MISS: &str = "MISS";
    /// Not looked up (not cacheable, or the client's `no-cache`).
    pub const BYPASS: &str = "BYPASS";
}
