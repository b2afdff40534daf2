//! What a pipeline stage decides at each step, and the shared-data store it decides over.
//!
//! Stages (route, cache, budget, metrics) are pure functions of (config, facts, stored bytes,
//! clock) returning a [`Step`]; the glue crate (`tollgate`) carries the step out with
//! proxy-wasm. [`SharedStore`] is proxy-wasm shared data seen through a small trait, so the
//! stages are tested natively against [`MemoryStore`].

use std::cell::RefCell;
use std::collections::HashMap;

/// What the pipeline does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Go on to the next stage (or to the upstream when this was the last).
    Continue,
    /// Answer the client locally; no later stage runs and nothing goes upstream.
    Respond(LocalReply),
    /// Call a service and resume the stage with its answer.
    Callout(Callout),
}

/// A response the gateway writes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Headers besides `:status`.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl LocalReply {
    /// A JSON reply.
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }
}

/// An HTTP call to a configured cluster (`dispatch_http_call`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// Envoy cluster name.
    pub cluster: String,
    /// `:method`.
    pub method: String,
    /// `:path`.
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// Body.
    pub body: Vec<u8>,
    /// Timeout in milliseconds.
    pub timeout_ms: u64,
}

/// A stale compare-and-swap, or a host that refused the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone wrote the key since it was read: read again and retry.
    #[error("the value changed since it was read (CAS mismatch)")]
    CasMismatch,
    /// The host refused the write.
    #[error("the shared store refused the write")]
    Refused,
}

/// Shared data as the stages see it: proxy-wasm's key/value store with compare-and-swap,
/// shared by every VM of one `vm_id` (every worker of one Envoy). No delete, no TTL: stages
/// keep their key space bounded and write expiry into the values.
pub trait SharedStore {
    /// The value and its CAS token, or `None` when the key was never written.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if the key's CAS token is still `cas` (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// An in-memory [`SharedStore`] with proxy-wasm's CAS semantics, for native tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
}

impl MemoryStore {
    /// Number of keys written so far.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.entries.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(key) {
            Some((stored, token)) => {
                if cas.is_some_and(|c| c != *token) {
                    return Err(StoreError::CasMismatch);
                }
                stored.clear();
                stored.extend_from_slice(value);
                *token = token.wrapping_add(1).max(1);
            }
            // Creating a key ignores CAS, as in Envoy.
            None => {
                entries.insert(key.to_string(), (value.to_vec(), 1));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_cas_is_refused_and_a_fresh_one_accepted() {
        let store = MemoryStore::default();
        store.set("k", b"1", None).unwrap();
        let (_, cas) = store.get("k").unwrap();
        store.set("k", b"2", Some(cas)).unwrap();
        assert_eq!(
            store.set("k", b"3", Some(cas)),
            Err(StoreError::CasMismatch)
        );
        assert_eq!(store.get("k").unwrap().0, b"2");
    }
}
