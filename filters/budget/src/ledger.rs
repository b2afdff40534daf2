//! The local tier: every caller's buckets in proxy-wasm shared data, shared by every worker of
//! one Envoy, updated with compare-and-swap retry loops so no update is lost.
//!
//! **Bounded key space.** Shared data has no delete and no TTL, so the ledger owns exactly
//! `slots` keys (`tollgate.budget.<n>`), created free at configuration ([`Ledger::prepare`]:
//! creating a key ignores CAS in Envoy, so keys are never created while requests run). An
//! account (policy + caller identity) lives in one slot, found by hashing the account and
//! probing up to [`PROBES`] slots; the slot stores the account's name, so a collision is
//! seen, never shared. **Eviction:** a slot held by another account is taken over only when
//! that account is idle, i.e. every bucket of it has refilled to capacity (the slot records
//! when that happens): forgetting a full bucket loses nothing, because a new bucket starts
//! full. When every probed slot is held by a busy account, the request gets a store error
//! (the stage refuses it: counted, never unmetered).
//!
//! **Reservations are charges made in advance:** reserving takes the amount from the level
//! at once, and reconciling gives back the difference. A reservation that is never
//! reconciled (its VM died) therefore stays charged, conservatively, and nothing is held
//! apart that would need sweeping: the bucket refills as usual. Each slot carries a
//! generation, bumped on eviction, so a late refund never lands on another account's bucket.

use crate::bucket::BucketState;
use tollgate_core::config::budget::BucketLimit;
use tollgate_core::stage::{SharedStore, StoreError};

/// Slots probed for an account before the store counts as full.
pub const PROBES: u32 = 8;
/// CAS attempts on one slot before giving up (contention between workers only).
pub const MAX_ATTEMPTS: u32 = 64;
/// Prefix of the ledger's shared-data keys.
pub const KEY_PREFIX: &str = "tollgate.budget.";

const VERSION: u8 = 1;
/// A free slot's value: one byte, because an empty value reads back as absent through the SDK.
const FREE: [u8; 1] = [0];

/// Why the ledger could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// Every probed slot belongs to another account that is still refilling.
    #[error("every budget slot for this caller is held by a busy account")]
    Full,
    /// The CAS loop lost too many races.
    #[error("the budget slot kept changing under contention")]
    Contended,
    /// The host refused a write.
    #[error("the shared store refused the write")]
    Refused,
}

/// Where an account was found: its slot and the slot's generation at the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    /// Slot number.
    pub slot: u32,
    /// Generation of the slot's occupant.
    pub generation: u32,
}

/// One slot's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Bumped each time another account takes the slot over.
    pub generation: u32,
    /// When every bucket will be full again (ms): from then on the slot may be taken over.
    pub idle_at_ms: u64,
    /// The account (policy and caller).
    pub account: Vec<u8>,
    /// Its buckets, in the policy's order.
    pub buckets: Vec<BucketState>,
}

impl Record {
    /// Binary form: version, generation, idle_at, account length and bytes, bucket count,
    /// then (level, last_fill) per bucket; little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.account.len() + 16 * self.buckets.len());
        out.push(VERSION);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.idle_at_ms.to_le_bytes());
        let len = u16::try_from(self.account.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.account[..usize::from(len)]);
        out.push(u8::try_from(self.buckets.len()).unwrap_or(u8::MAX));
        for b in self.buckets.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(&b.level.to_le_bytes());
            out.extend_from_slice(&b.last_fill_ms.to_le_bytes());
        }
        out
    }

    /// Parses [`Record::encode`]'s form; `None` for an empty (free) or unreadable slot.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let mut r = Reader(bytes);
        if r.take(1)?[0] != VERSION {
            return None;
        }
        let generation = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
        let idle_at_ms = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let len = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let account = r.take(usize::from(len))?.to_vec();
        let n = r.take(1)?[0];
        let mut buckets = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let level = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
            let last_fill_ms = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
            buckets.push(BucketState {
                level,
                last_fill_ms,
            });
        }
        Some(Record {
            generation,
            idle_at_ms,
            account,
            buckets,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

/// FNV-1a, 64 bits: a stable hash (the same in every VM and across restarts).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The ledger over a store.
pub struct Ledger<'s, S: SharedStore + ?Sized> {
    store: &'s S,
    slots: u32,
}

/// What an update closure sees: the account's buckets, refilled to now.
pub type Buckets = [BucketState];

impl<'s, S: SharedStore + ?Sized> Ledger<'s, S> {
    /// A ledger of `slots` slots (at least 1).
    pub fn new(store: &'s S, slots: u32) -> Self {
        Self {
            store,
            slots: slots.max(1),
        }
    }

    fn key(slot: u32) -> String {
        format!("{KEY_PREFIX}{slot}")
    }

    /// Creates the slots that do not exist yet (empty): run at configuration, before any
    /// request, because creating a key is not protected by CAS.
    pub fn prepare(&self) -> Result<(), LedgerError> {
        for slot in 0..self.slots {
            let key = Self::key(slot);
            if self.store.get(&key).is_none() {
                self.store
                    .set(&key, &FREE, None)
                    .map_err(|_| LedgerError::Refused)?;
            }
        }
        Ok(())
    }

    /// Runs `f` on the account's buckets (refilled to `now`) and writes them back when it says
    /// so, retrying on CAS races; `f` may run several times and must be a pure function of
    /// the buckets. Returns its result and where the account lives.
    pub fn update<T>(
        &self,
        account: &[u8],
        limits: &[BucketLimit],
        now: u64,
        mut f: impl FnMut(&mut Buckets) -> (T, bool),
    ) -> Result<(T, Handle), LedgerError> {
        let start = u32::try_from(fnv1a(account) % u64::from(self.slots)).unwrap_or(0);
        for _ in 0..MAX_ATTEMPTS {
            let Some((slot, cas, record)) = self.find(account, limits, start, now)? else {
                return Err(LedgerError::Full);
            };
            let mut record = record;
            let (value, write) = f(&mut record.buckets);
            let handle = Handle {
                slot,
                generation: record.generation,
            };
            if !write {
                return Ok((value, handle));
            }
            record.idle_at_ms = idle_at(&record.buckets, limits, now);
            match self
                .store
                .set(&Self::key(slot), &record.encode(), Some(cas))
            {
                Ok(()) => return Ok((value, handle)),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Refused) => return Err(LedgerError::Refused),
            }
        }
        Err(LedgerError::Contended)
    }

    /// Runs `f` on the account at `handle` if it is still there (same account and
    /// generation); `Ok(None)` when it was evicted meanwhile (the change is dropped).
    pub fn update_at<T>(
        &self,
        handle: Handle,
        account: &[u8],
        limits: &[BucketLimit],
        now: u64,
        mut f: impl FnMut(&mut Buckets) -> T,
    ) -> Result<Option<T>, LedgerError> {
        let key = Self::key(handle.slot);
        for _ in 0..MAX_ATTEMPTS {
            let Some((bytes, cas)) = self.store.get(&key) else {
                return Ok(None);
            };
            let Some(mut record) = Record::decode(&bytes) else {
                return Ok(None);
            };
            if record.account != account
                || record.generation != handle.generation
                || record.buckets.len() != limits.len()
            {
                return Ok(None);
            }
            for (b, l) in record.buckets.iter_mut().zip(limits) {
                b.refill(l, now);
            }
            let value = f(&mut record.buckets);
            record.idle_at_ms = idle_at(&record.buckets, limits, now);
            match self.store.set(&key, &record.encode(), Some(cas)) {
                Ok(()) => return Ok(Some(value)),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Refused) => return Err(LedgerError::Refused),
            }
        }
        Err(LedgerError::Contended)
    }

    /// The slot of `account`: its own, else the first free or idle one probed.
    #[allow(clippy::type_complexity)]
    fn find(
        &self,
        account: &[u8],
        limits: &[BucketLimit],
        start: u32,
        now: u64,
    ) -> Result<Option<(u32, u32, Record)>, LedgerError> {
        let fresh = |generation: u32| Record {
            generation,
            idle_at_ms: now,
            account: account.to_vec(),
            buckets: limits.iter().map(|l| BucketState::full(l, now)).collect(),
        };
        let mut candidate: Option<(u32, u32, Record)> = None;
        for probe in 0..PROBES.min(self.slots) {
            let slot = (start + probe) % self.slots;
            let Some((bytes, cas)) = self.store.get(&Self::key(slot)) else {
                // Never prepared (a host that dropped shared data): not safe to create here.
                return Err(LedgerError::Refused);
            };
            match Record::decode(&bytes) {
                // Free: slots never become free again, so the account is not further on.
                None => {
                    return Ok(Some(candidate.unwrap_or((slot, cas, fresh(1)))));
                }
                Some(mut record) if record.account == account => {
                    if record.buckets.len() != limits.len() {
                        // The policy's buckets changed: start over, full.
                        record.buckets = fresh(0).buckets;
                    }
                    for (b, l) in record.buckets.iter_mut().zip(limits) {
                        b.refill(l, now);
                    }
                    return Ok(Some((slot, cas, record)));
                }
                Some(record) => {
                    if candidate.is_none() && now >= record.idle_at_ms {
                        candidate = Some((slot, cas, fresh(record.generation.wrapping_add(1))));
                    }
                }
            }
        }
        Ok(candidate)
    }
}

/// When every bucket will be full again.
fn idle_at(buckets: &[BucketState], limits: &[BucketLimit], now: u64) -> u64 {
    buckets
        .iter()
        .zip(limits)
        .map(|(b, l)| b.ms_until_full(l, now))
        .max()
        .unwrap_or(0)
        .saturating_add(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::budget::BudgetUnit;
    use tollgate_core::stage::MemoryStore;

    const LIMITS: [BucketLimit; 1] = [BucketLimit {
        unit: BudgetUnit::Tokens,
        max_tokens: 100,
        tokens_per_fill: 100,
        fill_interval_ms: 60_000,
    }];

    fn take(ledger: &Ledger<'_, MemoryStore>, account: &[u8], n: i64, now: u64) -> Handle {
        ledger
            .update(account, &LIMITS, now, |b| {
                b[0].take(n);
                ((), true)
            })
            .unwrap()
            .1
    }

    fn level(ledger: &Ledger<'_, MemoryStore>, account: &[u8], now: u64) -> i64 {
        ledger
            .update(account, &LIMITS, now, |b| (b[0].level, false))
            .unwrap()
            .0
    }

    #[test]
    fn a_record_survives_its_binary_form() {
        let r = Record {
            generation: 7,
            idle_at_ms: 99,
            account: b"p\x1falice".to_vec(),
            buckets: vec![
                BucketState {
                    level: -5,
                    last_fill_ms: 3,
                },
                BucketState {
                    level: 1 << 40,
                    last_fill_ms: u64::MAX,
                },
            ],
        };
        assert_eq!(Record::decode(&r.encode()), Some(r));
        assert_eq!(Record::decode(&[]), None);
        assert_eq!(Record::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn the_ledger_owns_exactly_its_slots() {
        let store = MemoryStore::default();
        let ledger = Ledger::new(&store, 16);
        ledger.prepare().unwrap();
        for i in 0..200u32 {
            let _ = ledger.update(format!("user{i}").as_bytes(), &LIMITS, 0, |b| {
                b[0].take(1);
                ((), true)
            });
        }
        assert_eq!(store.len(), 16);
    }

    #[test]
    fn an_unprepared_store_is_an_error_not_an_unsafe_create() {
        let store = MemoryStore::default();
        let ledger = Ledger::new(&store, 4);
        assert_eq!(
            ledger.update(b"a", &LIMITS, 0, |_| ((), true)).unwrap_err(),
            LedgerError::Refused
        );
    }

    #[test]
    fn colliding_accounts_keep_their_own_buckets() {
        let store = MemoryStore::default();
        let ledger = Ledger::new(&store, 1 + PROBES); // few slots: collisions certain
        ledger.prepare().unwrap();
        take(&ledger, b"a", 30, 0);
        take(&ledger, b"b", 50, 0);
        assert_eq!(level(&ledger, b"a", 0), 70);
        assert_eq!(level(&ledger, b"b", 0), 50);
    }

    #[test]
    fn a_busy_slot_is_never_taken_over_and_the_store_says_full() {
        let store = MemoryStore::default();
        let ledger = Ledger::new(&store, 1);
        ledger.prepare().unwrap();
        take(&ledger, b"a", 30, 0);
        let err = ledger
            .update(b"b", &LIMITS, 59_999, |_| ((), true))
            .unwrap_err();
        assert_eq!(err, LedgerError::Full);
        assert_eq!(level(&ledger, b"a", 59_999), 70);
    }

    #[test]
    fn an_idle_slot_is_taken_over_and_a_late_refund_to_its_old_owner_is_dropped() {
        let store = MemoryStore::default();
        let ledger = Ledger::new(&store, 1);
        ledger.prepare().unwrap();
        let old = take(&ledger, b"a", 30, 0);
        // At 60 s a's bucket is full again: b may take the slot.
        let new = take(&ledger, b"b", 10, 60_000);
        assert_eq!(new.generation, old.generation + 1);
        let refund = ledger
            .update_at(old, b"a", &LIMITS, 60_001, |b| b[0].give(&LIMITS[0], 30))
            .unwrap();
        assert_eq!(refund, None);
        assert_eq!(level(&ledger, b"b", 60_001), 90);
    }

    /// A store whose every first write after a read loses a race against another worker that
    /// takes one token: the CAS loop must re-read and apply both changes.
    struct Racing {
        inner: MemoryStore,
        races: std::cell::Cell<u32>,
    }

    impl SharedStore for Racing {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            if self.races.get() > 0 && cas.is_some() {
                self.races.set(self.races.get() - 1);
                // The other worker's update lands first.
                let other = Ledger::new(&self.inner, 4);
                other
                    .update(b"a", &LIMITS, 0, |b| {
                        b[0].take(1);
                        ((), true)
                    })
                    .unwrap();
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn a_lost_cas_race_is_retried_and_no_update_is_lost() {
        let store = Racing {
            inner: MemoryStore::default(),
            races: std::cell::Cell::new(3),
        };
        let ledger = Ledger::new(&store, 4);
        ledger.prepare().unwrap();
        ledger
            .update(b"a", &LIMITS, 0, |b| {
                b[0].take(10);
                ((), true)
            })
            .unwrap();
        let l = Ledger::new(&store.inner, 4);
        assert_eq!(level(&l, b"a", 0), 100 - 10 - 3);
    }
}
