//! Entries in proxy-wasm shared data, within a hard bound of bytes and a bounded key space.
//!
//! Shared data has no delete and no TTL, so the cache owns a fixed set of keys per namespace:
//! - `<ns>/slot/<i>` for `i < slots`: one entry each (an empty value when free). A key's slot is
//!   its first 8 bytes mod `slots`; a new key replaces whatever its slot held (a collision
//!   eviction).
//! - `<ns>/bytes`: the ledger, the bytes of every slot together: a store reserves what its slot
//!   grows by *before* writing it and releases what it shrinks by *after*, so the stored bytes
//!   never exceed it, and it never exceeds `max_size_bytes`.
//! - `<ns>/hand`: the eviction hand. When a reservation does not fit, the hand sweeps the slots
//!   in order, emptying each it passes (expired or not), until the entry fits: hash order makes
//!   this a random eviction, which needs no bookkeeping on hits.
//! - `<ns>/layout`: the slot count; `prepare` empties the slots of another layout.
//!
//! Every slot write is a compare-and-swap against the value whose size the reservation was
//! computed from, so concurrent workers cannot make the ledger drift. A store replaces the value
//! its request's lookup saw ([`SlotSeen`]: its CAS, size and entry), so a miss reads its slot
//! once; when another worker (or a sweep) wrote the slot meanwhile, the CAS fails, the store
//! reads the slot again and retries against what is there now, and after
//! [`SLOT_ATTEMPTS`] it releases its reservation and drops the store (a cache may lose a store;
//! it may not overgrow).
//!
//! Shared-data calls: a hit is one read (the slot). A miss that stores into an empty slot is
//! two reads (the lookup, the ledger) and two writes (the ledger, the slot); replacing an entry
//! of the same size touches no ledger (one read, one write). The ledger value a store wrote
//! comes back in [`StoreOutcome::ledger`], so the stored-bytes gauge needs no read of it.

use crate::entry::Entry;
use crate::key::CacheKey;
use tollgate_core::config::cache::StoreLimits;
use tollgate_core::stage::{SharedStore, StoreError};

/// Bound on CAS retries of one ledger or hand update (contention is between a few workers).
const MAX_RETRIES: usize = 64;

/// Slot writes one store attempts: against the lookup's view, then against two fresh reads
/// (one for a writer during the upstream exchange, one for a sweep during the reservation).
pub const SLOT_ATTEMPTS: usize = 3;

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
    /// The ledger (bytes stored) as this store last wrote it; `None`: it did not change it.
    pub ledger: Option<u64>,
}

/// What a lookup saw in its key's slot: enough for the store of the same request to replace
/// that value without reading the slot again. Its CAS tells whether it is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSeen {
    slot: u32,
    cas: u32,
    len: u64,
    /// The entry the slot held (key, expiry); `None`: empty.
    held: Option<(CacheKey, u64)>,
}

/// What [`SlotStore::lookup_slot`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The live entry of the key.
    pub entry: Option<Entry>,
    /// The slot as read (`None`: the slot does not exist).
    pub seen: Option<SlotSeen>,
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
        self.lookup_slot(store, key, now_ms).entry
    }

    /// The live entry for `key`, and what its slot held, for a store after a miss
    /// ([`SlotStore::store_seen`]). One read.
    pub fn lookup_slot<S: SharedStore>(&self, store: &S, key: &CacheKey, now_ms: u64) -> Lookup {
        let slot = self.slot_of(key);
        let Some((bytes, cas)) = store.get(&self.slot_key(slot)) else {
            return Lookup::default();
        };
        let held = Entry::peek(&bytes);
        let entry = match held {
            Some((stored_key, expires_ms)) if stored_key == *key && expires_ms > now_ms => {
                Entry::decode(&bytes)
            }
            _ => None,
        };
        Lookup {
            entry,
            seen: Some(SlotSeen {
                slot,
                cas,
                len: bytes.len() as u64,
                held,
            }),
        }
    }

    /// The slot as it is now.
    fn read_slot<S: SharedStore>(&self, store: &S, slot: u32) -> Option<SlotSeen> {
        let (bytes, cas) = store.get(&self.slot_key(slot))?;
        Some(SlotSeen {
            slot,
            cas,
            len: bytes.len() as u64,
            held: Entry::peek(&bytes),
        })
    }

    /// Bytes of every stored entry together (the ledger).
    pub fn stored_bytes<S: SharedStore>(&self, store: &S) -> u64 {
        store
            .get(&self.ledger_key())
            .map_or(0, |(v, _)| read_u64(&v))
    }

    /// Stores `entry` in its slot, making room within the bound.
    pub fn store<S: SharedStore>(&self, store: &S, entry: &Entry, now_ms: u64) -> StoreOutcome {
        self.store_seen(store, entry, now_ms, None)
    }

    /// Stores `entry` in its slot, replacing what the request's lookup saw there (`seen`, from
    /// this store's [`SlotStore::lookup_slot`] of the same key; `None`: the slot is read).
    pub fn store_seen<S: SharedStore>(
        &self,
        store: &S,
        entry: &Entry,
        now_ms: u64,
        seen: Option<SlotSeen>,
    ) -> StoreOutcome {
        let bytes = entry.encode();
        let size = bytes.len() as u64;
        let mut outcome = StoreOutcome::default();
        if size > self.entry_limit {
            outcome.refused = Some(Refusal::TooLarge);
            return outcome;
        }
        let slot = self.slot_of(&entry.key);
        let slot_key = self.slot_key(slot);
        let mut seen = seen.filter(|s| s.slot == slot);
        // Bytes this store holds on the ledger: what the slot grows by.
        let mut reserved = 0u64;
        for _ in 0..SLOT_ATTEMPTS {
            let Some(current) = seen.take().or_else(|| self.read_slot(store, slot)) else {
                outcome.refused = Some(Refusal::Refused); // not prepared
                break;
            };
            let growth = size.saturating_sub(current.len);
            if growth > reserved {
                if !self.reserve(store, growth - reserved, &mut outcome) {
                    outcome.refused = Some(Refusal::NoRoom);
                    break;
                }
            } else {
                self.release(store, reserved - growth, &mut outcome);
            }
            reserved = growth;
            match store.set(&slot_key, &bytes, Some(current.cas)) {
                Ok(()) => {
                    self.release(store, current.len.saturating_sub(size), &mut outcome);
                    let replaced_other = current
                        .held
                        .is_some_and(|(k, expires)| k != entry.key && expires > now_ms);
                    outcome.evicted += u32::from(replaced_other);
                    outcome.stored = true;
                    outcome.refused = None;
                    return outcome;
                }
                // Written meanwhile: read it again.
                Err(StoreError::CasMismatch) => outcome.refused = Some(Refusal::LostRace),
                Err(StoreError::Refused) => {
                    outcome.refused = Some(Refusal::Refused);
                    break;
                }
            }
        }
        self.release(store, reserved, &mut outcome);
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
                    Ok(()) => {
                        outcome.ledger = Some(used + size);
                        return true;
                    }
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
            if self.evict_next(store, outcome) {
                outcome.evicted += 1;
            }
        }
        false
    }

    /// Empties the slot under the hand and moves the hand on; true when it held an entry.
    fn evict_next<S: SharedStore>(&self, store: &S, outcome: &mut StoreOutcome) -> bool {
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
            self.release(store, old.len() as u64, outcome);
            return true;
        }
        false
    }

    /// Takes `size` off the ledger.
    fn release<S: SharedStore>(&self, store: &S, size: u64, outcome: &mut StoreOutcome) {
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
                outcome.ledger = Some(used);
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
    use std::cell::Cell;
    use tollgate_core::stage::MemoryStore;

    /// A store that counts the calls made to it.
    #[derive(Default)]
    struct Counting {
        inner: MemoryStore,
        gets: Cell<u32>,
        sets: Cell<u32>,
    }

    impl Counting {
        /// (reads, writes) since the last call.
        fn take(&self) -> (u32, u32) {
            (self.gets.replace(0), self.sets.replace(0))
        }
    }

    impl SharedStore for Counting {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.gets.set(self.gets.get() + 1);
            self.inner.get(key)
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            self.sets.set(self.sets.get() + 1);
            self.inner.set(key, value, cas)
        }
    }

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

    #[test]
    fn a_miss_reads_its_slot_once_and_the_outcome_carries_the_ledger() {
        let store = Counting::default();
        let s = SlotStore::new("t", &limits(10_000, 16));
        s.prepare(&store);
        let e = entry(1, 100, u64::MAX);
        store.take();
        let lookup = s.lookup_slot(&store, &e.key, 0);
        assert_eq!(lookup.entry, None);
        let outcome = s.store_seen(&store, &e, 0, lookup.seen);
        assert!(outcome.stored);
        assert_eq!(
            store.take(),
            (2, 2),
            "lookup + ledger reads, ledger + slot writes"
        );
        assert_eq!(outcome.ledger, Some(held(&store.inner, &s)));
        let hit = s.lookup_slot(&store, &e.key, 0);
        assert_eq!(hit.entry, Some(e));
        assert_eq!(store.take(), (1, 0));
    }

    #[test]
    fn replacing_an_entry_of_the_same_size_leaves_the_ledger_alone() {
        let store = Counting::default();
        let s = SlotStore::new("t", &limits(10_000, 1));
        s.prepare(&store);
        s.store(&store, &entry(1, 100, u64::MAX), 0);
        let e = entry(2, 100, u64::MAX);
        store.take();
        let seen = s.lookup_slot(&store, &e.key, 0).seen;
        let outcome = s.store_seen(&store, &e, 0, seen);
        assert_eq!(
            (outcome.stored, outcome.evicted, outcome.ledger),
            (true, 1, None)
        );
        assert_eq!(store.take(), (1, 1));
        assert_eq!(s.stored_bytes(&store), held(&store.inner, &s));
    }

    #[test]
    fn a_slot_written_after_the_lookup_is_read_again_and_the_ledger_stays_exact() {
        let store = MemoryStore::default();
        let s = SlotStore::new("t", &limits(10_000, 1));
        s.prepare(&store);
        let late = entry(1, 100, u64::MAX);
        let seen = s.lookup_slot(&store, &late.key, 0).seen;
        // Another worker stores a larger entry of another key in the slot meanwhile.
        assert!(s.store(&store, &entry(2, 900, u64::MAX), 0).stored);
        let outcome = s.store_seen(&store, &late, 0, seen);
        assert_eq!((outcome.stored, outcome.evicted), (true, 1), "{outcome:?}");
        assert_eq!(s.lookup(&store, &late.key, 0), Some(late.clone()));
        assert_eq!(s.stored_bytes(&store), held(&store, &s));
        assert_eq!(outcome.ledger, Some(held(&store, &s)));
    }

    #[test]
    fn a_sweep_that_empties_the_stores_own_slot_does_not_lose_the_store() {
        let store = MemoryStore::default();
        let overhead = entry(0, 0, 0).encode().len() as u64;
        let max = 2 * overhead + 1_000;
        let s = SlotStore::new("t", &limits(max, 2));
        s.prepare(&store);
        // Slot 0 holds 400 body bytes, slot 1 500; the new entry (slot 0) needs 700.
        assert!(s.store(&store, &entry(2, 400, u64::MAX), 0).stored);
        assert!(s.store(&store, &entry(1, 500, u64::MAX), 0).stored);
        let new = entry(4, 700, u64::MAX);
        let seen = s.lookup_slot(&store, &new.key, 0).seen;
        let outcome = s.store_seen(&store, &new, 0, seen);
        assert_eq!((outcome.stored, outcome.evicted), (true, 2), "{outcome:?}");
        assert_eq!(s.stored_bytes(&store), held(&store, &s));
        assert_eq!(held(&store, &s), overhead + 700);
    }

    #[test]
    fn stores_from_stale_lookups_in_any_order_keep_the_bound_and_the_ledger_exact() {
        let store = MemoryStore::default();
        let max = 3_000;
        let s = SlotStore::new("t", &limits(max, 8));
        s.prepare(&store);
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        for round in 0..50 {
            // A batch of requests look up, then their answers arrive in another order.
            let batch: Vec<Entry> = (0..6)
                .map(|_| {
                    let n = u8::try_from(next(40)).unwrap();
                    entry(
                        n,
                        50 + usize::try_from(next(700)).unwrap(),
                        1_000 + next(100),
                    )
                })
                .collect();
            let mut pending: Vec<(Entry, Option<SlotSeen>)> = batch
                .into_iter()
                .map(|e| {
                    let seen = s.lookup_slot(&store, &e.key, 1_050).seen;
                    (e, seen)
                })
                .collect();
            while !pending.is_empty() {
                let i = usize::try_from(next(pending.len() as u64)).unwrap();
                let (e, seen) = pending.swap_remove(i);
                let outcome = s.store_seen(&store, &e, 1_050, seen);
                assert!(outcome.stored, "round {round}: {outcome:?}");
                assert!(held(&store, &s) <= max);
                assert_eq!(s.stored_bytes(&store), held(&store, &s), "round {round}");
                if let Some(ledger) = outcome.ledger {
                    assert_eq!(ledger, held(&store, &s), "round {round}");
                }
            }
        }
    }
}
