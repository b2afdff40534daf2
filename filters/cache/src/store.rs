//! Entries in proxy-wasm shared data, within a hard bound of bytes and a bounded key space.
//!
//! Shared data has no delete and no TTL, so the cache owns a fixed set of keys per namespace:
//! - `<ns>/slot/<i>` for `i < slots`: one entry each (an empty value when free). A key's slot is
//!   its first 8 bytes mod `slots`; a new key replaces whatever its slot held (a collision
//!   eviction).
//! - `<ns>/bytes`: the ledger, the bytes of every slot together, reserved *before* a slot grows
//!   and released *after* it shrinks, so the stored bytes never exceed it, and it never exceeds
//!   `max_size_bytes`.
//! - `<ns>/hand`: the eviction hand. When a reservation does not fit, the hand sweeps the slots
//!   in order, emptying each it passes (expired or not), until the entry fits: hash order makes
//!   this a random eviction, which needs no bookkeeping on hits.
//! - `<ns>/layout`: the slot count; `prepare` empties the slots of another layout.
//!
//! Every slot write is a compare-and-swap against the value whose size the ledger holds, so
//! concurrent workers cannot make the ledger drift: the loser of a race releases its
//! reservation and drops its store (a cache may lose a store; it may not overgrow).

use crate::entry::Entry;
use crate::key::CacheKey;
use tollgate_core::config::cache::StoreLimits;
use tollgate_core::stage::{SharedStore, StoreError};

/// Bound on CAS retries of one ledger or hand update (contention is between a few workers).
const MAX_RETRIES: usize = 64;

/// A namespace of entries in a shared store.
#[derive(Debug, Clone)]
pub struct SlotStore {
    prefix: String,
    max_size: u64,
    entry_limit: u64,
    slots: u32,
}

/// What a store attempt did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreOutcome {
    /// The entry is stored.
    pub stored: bool,
    /// Live or expired entries emptied to make room (the sweep and a collision replacement).
    pub evicted: u32,
    /// Why it was not stored.
    pub refused: Option<Refusal>,
}

/// Why an entry was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than the entry limit.
    TooLarge,
    /// No room could be made (other workers kept filling it).
    NoRoom,
    /// Another worker wrote the slot meanwhile.
    LostRace,
    /// The host refused a write.
    Refused,
}

impl SlotStore {
    /// The store of namespace `ns` (e.g. `tollgate.cache/llm-routes/response`).
    pub fn new(ns: &str, limits: &StoreLimits) -> Self {
        Self {
            prefix: ns.to_string(),
            max_size: limits.max_size_bytes,
            entry_limit: limits.entry_limit(),
            slots: limits.slot_count().max(1),
        }
    }

    /// The largest entry stored, in encoded bytes.
    pub fn entry_limit(&self) -> u64 {
        self.entry_limit
    }

    /// Number of slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    fn slot_key(&self, i: u32) -> String {
        format!("{}/slot/{i}", self.prefix)
    }

    fn ledger_key(&self) -> String {
        format!("{}/bytes", self.prefix)
    }

    fn hand_key(&self) -> String {
        format!("{}/hand", self.prefix)
    }

    fn layout_key(&self) -> String {
        format!("{}/layout", self.prefix)
    }

    /// The slot of a key.
    pub fn slot_of(&self, key: &CacheKey) -> u32 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&key.0[..8]);
        u32::try_from(u64::from_le_bytes(head) % u64::from(self.slots)).unwrap_or(0)
    }

    /// Makes the key space exist (every slot written, empty), once per layout: a slot that
    /// exists is always written with CAS. Another layout's slots are emptied and the ledger
    /// reset. Called when a VM is configured, before it serves.
    pub fn prepare<S: SharedStore>(&self, store: &S) {
        let layout = self.slots.to_le_bytes();
        let old = store.get(&self.layout_key());
        if old.as_ref().is_some_and(|(v, _)| v.as_slice() == layout) {
            return;
        }
        let old_slots = old
            .and_then(|(v, _)| v.try_into().ok().map(u32::from_le_bytes))
            .unwrap_or(0);
        for i in 0..self.slots.max(old_slots) {
            let _ = store.set(&self.slot_key(i), b"", None);
        }
        let _ = store.set(&self.ledger_key(), &0u64.to_le_bytes(), None);
        let _ = store.set(&self.hand_key(), &0u32.to_le_bytes(), None);
        let _ = store.set(&self.layout_key(), &layout, None);
    }

    /// The live entry for `key`, if any.
    pub fn lookup<S: SharedStore>(&self, store: &S, key: &CacheKey, now_ms: u64) -> Option<Entry> {
        let (bytes, _) = store.get(&self.slot_key(self.slot_of(key)))?;
        let (stored_key, expires_ms) = Entry::peek(&bytes)?;
        if stored_key != *key || expires_ms <= now_ms {
            return None;
        }
        Entry::decode(&bytes)
    }

    /// Bytes of every stored entry together (the ledger).
    pub fn stored_bytes<S: SharedStore>(&self, store: &S) -> u64 {
        store
            .get(&self.ledger_key())
            .map_or(0, |(v, _)| read_u64(&v))
    }

    /// Stores `entry` in its slot, making room within the bound.
    pub fn store<S: SharedStore>(&self, store: &S, entry: &Entry, now_ms: u64) -> StoreOutcome {
        let bytes = entry.encode();
        let size = bytes.len() as u64;
        let mut outcome = StoreOutcome::default();
        if size > self.entry_limit {
            outcome.refused = Some(Refusal::TooLarge);
            return outcome;
        }
        let slot = self.slot_key(self.slot_of(&entry.key));
        let Some((old, cas)) = store.get(&slot) else {
            outcome.refused = Some(Refusal::Refused); // not prepared
            return outcome;
        };
        if !self.reserve(store, size, &mut outcome) {
            outcome.refused = Some(Refusal::NoRoom);
            return outcome;
        }
        match store.set(&slot, &bytes, Some(cas)) {
            Ok(()) => {
                self.release(store, old.len() as u64);
                let replaced_other = Entry::peek(&old)
                    .is_some_and(|(k, expires)| k != entry.key && expires > now_ms);
                outcome.evicted += u32::from(replaced_other);
                outcome.stored = true;
            }
            Err(error) => {
                self.release(store, size);
                outcome.refused = Some(match error {
                    StoreError::CasMismatch => Refusal::LostRace,
                    StoreError::Refused => Refusal::Refused,
                });
            }
        }
        outcome
    }

    /// Adds `size` to the ledger, sweeping entries out until it fits.
    fn reserve<S: SharedStore>(&self, store: &S, size: u64, outcome: &mut StoreOutcome) -> bool {
        let ledger = self.ledger_key();
        let mut sweeps = 0u64;
        let mut retries = 0;
        while retries < MAX_RETRIES {
            let Some((value, cas)) = store.get(&ledger) else {
                return false;
            };
            let used = read_u64(&value);
            if used.saturating_add(size) <= self.max_size {
                match store.set(&ledger, &(used + size).to_le_bytes(), Some(cas)) {
                    Ok(()) => return true,
                    Err(_) => {
                        retries += 1;
                        continue;
                    }
                }
            }
            // A full revolution and a second one for what others stored meanwhile.
            if sweeps >= 2 * u64::from(self.slots) {
                return false;
            }
            sweeps += 1;
            if self.evict_next(store) {
                outcome.evicted += 1;
            }
        }
        false
    }

    /// Empties the slot under the hand and moves the hand on; true when it held an entry.
    fn evict_next<S: SharedStore>(&self, store: &S) -> bool {
        let hand_key = self.hand_key();
        let mut claimed = None;
        for _ in 0..MAX_RETRIES {
            let Some((value, cas)) = store.get(&hand_key) else {
                return false;
            };
            let hand = value
                .as_slice()
                .try_into()
                .map(u32::from_le_bytes)
                .unwrap_or(0)
                % self.slots;
            let next = (hand + 1) % self.slots;
            if store.set(&hand_key, &next.to_le_bytes(), Some(cas)).is_ok() {
                claimed = Some(hand);
                break;
            }
        }
        let Some(slot) = claimed.map(|i| self.slot_key(i)) else {
            return false;
        };
        let Some((old, cas)) = store.get(&slot) else {
            return false;
        };
        if old.is_empty() {
            return false;
        }
        if store.set(&slot, b"", Some(cas)).is_ok() {
            self.release(store, old.len() as u64);
            return true;
        }
        false
    }

    /// Takes `size` off the ledger.
    fn release<S: SharedStore>(&self, store: &S, size: u64) {
        if size == 0 {
            return;
        }
        let ledger = self.ledger_key();
        for _ in 0..MAX_RETRIES {
            let Some((value, cas)) = store.get(&ledger) else {
                return;
            };
            let used = read_u64(&value).saturating_sub(size);
            if store.set(&ledger, &used.to_le_bytes(), Some(cas)).is_ok() {
                return;
            }
        }
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_le_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::BodyKind;
    use tollgate_core::stage::MemoryStore;

    fn entry(n: u8, body_len: usize, expires_ms: u64) -> Entry {
        let mut key = [0u8; 32];
        key[0] = n;
        key[31] = n;
        Entry {
            key: CacheKey(key),
            stored_ms: 0,
            expires_ms,
            kind: BodyKind::Json,
            usage: None,
            model: None,
            provider: None,
            body: vec![b'x'; body_len],
        }
    }

    fn limits(max: u64, slots: u32) -> StoreLimits {
        StoreLimits {
            max_size_bytes: max,
            max_entry_bytes: Some(max),
            slots: Some(slots),
        }
    }

    /// Bytes actually held by the namespace's slots.
    fn held(store: &MemoryStore, s: &SlotStore) -> u64 {
        (0..s.slots())
            .map(|i| store.get(&s.slot_key(i)).map_or(0, |(v, _)| v.len() as u64))
            .sum()
    }

    #[test]
    fn a_stored_entry_is_found_until_it_expires() {
        let store = MemoryStore::default();
        let s = SlotStore::new("t", &limits(10_000, 16));
        s.prepare(&store);
        let e = entry(1, 100, 5_000);
        assert!(s.store(&store, &e, 0).stored);
        assert_eq!(s.lookup(&store, &e.key, 4_999), Some(e.clone()));
        assert_eq!(s.lookup(&store, &e.key, 5_000), None);
        assert_eq!(s.stored_bytes(&store), held(&store, &s));
    }

    #[test]
    fn another_key_in_the_same_slot_is_not_served() {
        let store = MemoryStore::default();
        let s = SlotStore::new("t", &limits(10_000, 1));
        s.prepare(&store);
        let a = entry(1, 10, u64::MAX);
        let b = entry(2, 10, u64::MAX);
        s.store(&store, &a, 0);
        assert_eq!(s.lookup(&store, &b.key, 0), None);
        let outcome = s.store(&store, &b, 0);
        assert_eq!((outcome.stored, outcome.evicted), (true, 1));
        assert_eq!(s.lookup(&store, &a.key, 0), None);
    }

    #[test]
    fn the_bytes_stored_never_exceed_max_size_and_the_ledger_matches_them() {
        let store = MemoryStore::default();
        let s = SlotStore::new("t", &limits(2_000, 64));
        s.prepare(&store);
        let mut evicted = 0;
        for n in 0..100u8 {
            let outcome = s.store(&store, &entry(n, 300 + usize::from(n), u64::MAX), 0);
            assert!(outcome.stored, "{n}: {outcome:?}");
            evicted += outcome.evicted;
            assert!(held(&store, &s) <= 2_000);
            assert_eq!(s.stored_bytes(&store), held(&store, &s));
        }
        assert!(evicted > 80, "{evicted}");
        assert!(s.lookup(&store, &entry(99, 0, 0).key, 0).is_some());
    }

    #[test]
    fn an_entry_over_the_entry_limit_is_refused() {
        let store = MemoryStore::default();
        let s = SlotStore::new("t", &limits(500, 4));
        s.prepare(&store);
        let outcome = s.store(&store, &entry(1, 600, u64::MAX), 0);
        assert_eq!(outcome.refused, Some(Refusal::TooLarge));
        assert_eq!(s.stored_bytes(&store), 0);
    }

    #[test]
    fn a_new_layout_empties_the_old_slots_and_resets_the_ledger() {
        let store = MemoryStore::default();
        let s = SlotStore::new("t", &limits(10_000, 8));
        s.prepare(&store);
        s.store(&store, &entry(1, 100, u64::MAX), 0);
        let bigger = SlotStore::new("t", &limits(10_000, 16));
        bigger.prepare(&store);
        assert_eq!(bigger.stored_bytes(&store), 0);
        assert_eq!(held(&store, &bigger), 0);
        // The same layout again keeps what is stored.
        bigger.store(&store, &entry(2, 100, u64::MAX), 0);
        bigger.prepare(&store);
        assert!(bigger.lookup(&store, &entry(2, 0, 0).key, 0).is_some());
    }
}
