//! One token bucket on a virtual clock (milliseconds), exactly as the guide's fields say:
//! it starts full at `maxTokens`; every whole `fillInterval` since the last fill adds
//! `tokensPerFill`, never above `maxTokens`. Fills are discrete (at interval edges counted
//! from the bucket's first use), as in Envoy's local rate limit.
//!
//! The level is signed: a charge above what was reserved (real usage over the estimate, or a
//! reservation that was never reconciled) is a debt that later fills pay off first.

use tollgate_core::config::budget::BucketLimit;

/// The stored part of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// What the bucket holds now (negative: a debt).
    pub level: i64,
    /// The interval edge the last fill was counted at.
    pub last_fill_ms: u64,
}

/// A limit's capacity as a level (limits beyond `i64::MAX` are treated as `i64::MAX`).
pub fn capacity(limit: &BucketLimit) -> i64 {
    i64::try_from(limit.max_tokens).unwrap_or(i64::MAX)
}

impl BucketState {
    /// A bucket first used at `now`: full.
    pub fn full(limit: &BucketLimit, now: u64) -> Self {
        Self {
            level: capacity(limit),
            last_fill_ms: now,
        }
    }

    /// Adds the fills of every whole interval between the last fill and `now`. A clock that
    /// went backwards adds nothing.
    pub fn refill(&mut self, limit: &BucketLimit, now: u64) {
        let max = capacity(limit);
        let interval = limit.fill_interval_ms.max(1);
        if now > self.last_fill_ms {
            let periods = (now - self.last_fill_ms) / interval;
            if periods > 0 {
                let added = periods.saturating_mul(limit.tokens_per_fill);
                let added = i64::try_from(added).unwrap_or(i64::MAX);
                self.level = self.level.saturating_add(added);
                self.last_fill_ms = self
                    .last_fill_ms
                    .saturating_add(periods.saturating_mul(interval));
            }
        }
        self.level = self.level.min(max);
    }

    /// Takes `amount` (may leave a debt when forced).
    pub fn take(&mut self, amount: i64) {
        self.level = self.level.saturating_sub(amount);
    }

    /// Gives `amount` back, never above capacity.
    pub fn give(&mut self, limit: &BucketLimit, amount: i64) {
        self.level = self.level.saturating_add(amount).min(capacity(limit));
    }

    /// Milliseconds from `now` until the bucket holds `need` (0: it does already; `None`:
    /// never, `need` is above capacity).
    pub fn ms_until(&self, limit: &BucketLimit, need: i64, now: u64) -> Option<u64> {
        if self.level >= need {
            return Some(0);
        }
        if need > capacity(limit) || limit.tokens_per_fill == 0 {
            return None;
        }
        let missing = need.saturating_sub(self.level).unsigned_abs();
        let periods = missing.div_ceil(limit.tokens_per_fill);
        let at = self
            .last_fill_ms
            .saturating_add(periods.saturating_mul(limit.fill_interval_ms.max(1)));
        Some(at.saturating_sub(now))
    }

    /// Milliseconds from `now` until the bucket is full again.
    pub fn ms_until_full(&self, limit: &BucketLimit, now: u64) -> u64 {
        self.ms_until(limit, capacity(limit), now).unwrap_or(0)
    }

    /// Whether the bucket is full (forgetting it loses nothing).
    pub fn is_full(&self, limit: &BucketLimit) -> bool {
        self.level >= capacity(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::budget::BudgetUnit;

    const MINUTE: u64 = 60_000;
    const DAY: u64 = 24 * 60 * MINUTE;

    fn limit(max: u64, per_fill: u64, interval: u64) -> BucketLimit {
        BucketLimit {
            unit: BudgetUnit::Tokens,
            max_tokens: max,
            tokens_per_fill: per_fill,
            fill_interval_ms: interval,
        }
    }

    #[test]
    fn a_new_bucket_is_full() {
        let l = limit(10_000, 10_000, MINUTE);
        assert_eq!(BucketState::full(&l, 5).level, 10_000);
    }

    #[test]
    fn nothing_is_added_one_millisecond_before_the_interval_edge_and_a_fill_is_added_on_it() {
        let l = limit(10_000, 1_000, MINUTE);
        let mut b = BucketState::full(&l, 0);
        b.take(5_000);
        b.refill(&l, MINUTE - 1);
        assert_eq!(b.level, 5_000);
        b.refill(&l, MINUTE);
        assert_eq!(b.level, 6_000);
        assert_eq!(b.last_fill_ms, MINUTE);
        // The next edge counts from the previous one, not from the last look.
        b.refill(&l, 2 * MINUTE - 1);
        assert_eq!(b.level, 6_000);
        b.refill(&l, 2 * MINUTE);
        assert_eq!(b.level, 7_000);
    }

    #[test]
    fn several_missed_intervals_add_several_fills_up_to_capacity() {
        let l = limit(10_000, 1_000, MINUTE);
        let mut b = BucketState::full(&l, 0);
        b.take(9_000);
        b.refill(&l, 3 * MINUTE + 5);
        assert_eq!(b.level, 4_000);
        b.refill(&l, 100 * MINUTE);
        assert_eq!(b.level, 10_000);
    }

    #[test]
    fn a_daily_bucket_refills_only_after_24_hours() {
        let l = limit(1_000_000, 1_000_000, DAY);
        let mut b = BucketState::full(&l, 1_000);
        b.take(1_000_000);
        b.refill(&l, 1_000 + DAY - 1);
        assert_eq!(b.level, 0);
        assert_eq!(b.ms_until(&l, 1, 1_000 + DAY - 1), Some(1));
        b.refill(&l, 1_000 + DAY);
        assert_eq!(b.level, 1_000_000);
    }

    #[test]
    fn a_debt_is_paid_off_by_fills_before_anything_is_available() {
        let l = limit(100, 50, MINUTE);
        let mut b = BucketState::full(&l, 0);
        b.take(130); // 30 over: usage above the reservation
        assert_eq!(b.level, -30);
        assert_eq!(b.ms_until(&l, 1, 0), Some(MINUTE));
        assert_eq!(b.ms_until(&l, 21, 0), Some(2 * MINUTE));
        b.refill(&l, MINUTE);
        assert_eq!(b.level, 20);
    }

    #[test]
    fn what_never_fits_has_no_wait() {
        let l = limit(100, 50, MINUTE);
        let b = BucketState::full(&l, 0);
        assert_eq!(b.ms_until(&l, 101, 0), None);
        assert_eq!(b.ms_until(&l, 100, 0), Some(0));
    }

    #[test]
    fn giving_back_never_exceeds_capacity() {
        let l = limit(100, 100, MINUTE);
        let mut b = BucketState::full(&l, 0);
        b.take(60);
        b.refill(&l, MINUTE); // full again while the reservation was out
        b.give(&l, 60);
        assert_eq!(b.level, 100);
    }

    #[test]
    fn a_clock_that_goes_back_adds_nothing() {
        let l = limit(100, 100, MINUTE);
        let mut b = BucketState::full(&l, 10 * MINUTE);
        b.take(100);
        b.refill(&l, MINUTE);
        assert_eq!(b.level, 0);
    }

    #[test]
    fn a_lowered_capacity_caps_a_stored_level() {
        let mut b = BucketState::full(&limit(1_000, 1_000, MINUTE), 0);
        b.refill(&limit(10, 10, MINUTE), 0);
        assert_eq!(b.level, 10);
    }
}
