//! Counter increments held in the VM and handed to the host together.
//!
//! Each `proxy_increment_metric` is a call out of the VM that Envoy serves (~0.3-0.6 µs); a
//! request of the benchmark chain makes twelve counter increments. Under concurrency they are
//! summed per counter here and flushed together: when the last request in flight on this VM
//! finishes (so a lone request's counts are visible the moment it ends, as before), after
//! [`FLUSH_EVERY`] finished requests, and on the VM's tick (at most [`TICK_MS`] late). Gauges
//! (in flight, stored bytes) are not batched: their value is read as "now".

/// Finished requests after which the batch is flushed even while others are in flight.
pub const FLUSH_EVERY: u32 = 64;

/// The tick period that bounds how late a batched count reaches the host, in milliseconds.
pub const TICK_MS: u64 = 1000;

/// The pending increments of one VM and the requests in flight on it.
#[derive(Debug, Default)]
pub struct CounterBatch {
    /// (metric id, summed delta), in the order first seen; a handful of series per request.
    pending: Vec<(u32, i64)>,
    in_flight: u32,
    finished_since_flush: u32,
}

impl CounterBatch {
    /// An empty batch.
    pub const fn new() -> Self {
        Self {
            pending: Vec::new(),
            in_flight: 0,
            finished_since_flush: 0,
        }
    }

    /// Adds `delta` to counter `id`'s pending sum.
    pub fn add(&mut self, id: u32, delta: i64) {
        if delta == 0 {
            return;
        }
        match self.pending.iter_mut().find(|(pending, _)| *pending == id) {
            Some((_, sum)) => *sum = sum.saturating_add(delta),
            None => self.pending.push((id, delta)),
        }
    }

    /// A request started on this VM.
    pub fn request_started(&mut self) {
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// A request ended; true when the batch should be flushed now (none left in flight, or
    /// [`FLUSH_EVERY`] ended since the last flush).
    pub fn request_finished(&mut self) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.finished_since_flush = self.finished_since_flush.saturating_add(1);
        !self.pending.is_empty()
            && (self.in_flight == 0 || self.finished_since_flush >= FLUSH_EVERY)
    }

    /// Hands every pending sum to `emit` (id, delta) and empties the batch.
    pub fn flush(&mut self, mut emit: impl FnMut(u32, i64)) {
        self.finished_since_flush = 0;
        for (id, delta) in self.pending.drain(..) {
            emit(id, delta);
        }
    }

    /// Requests in flight on this VM.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed(batch: &mut CounterBatch) -> Vec<(u32, i64)> {
        let mut out = Vec::new();
        batch.flush(|id, delta| out.push((id, delta)));
        out
    }

    #[test]
    fn a_lone_request_is_flushed_when_it_finishes() {
        let mut batch = CounterBatch::new();
        batch.request_started();
        batch.add(7, 1);
        batch.add(8, 240);
        assert!(batch.request_finished());
        assert_eq!(flushed(&mut batch), [(7, 1), (8, 240)]);
        assert_eq!(flushed(&mut batch), []);
    }

    #[test]
    fn concurrent_requests_are_summed_until_the_last_one_ends() {
        let mut batch = CounterBatch::new();
        batch.request_started();
        batch.request_started();
        batch.add(7, 1);
        batch.add(8, 240);
        assert!(!batch.request_finished(), "one still in flight");
        batch.add(7, 1);
        batch.add(8, 9);
        assert!(batch.request_finished());
        assert_eq!(flushed(&mut batch), [(7, 2), (8, 249)]);
    }

    #[test]
    fn a_busy_vm_flushes_every_so_many_finished_requests() {
        let mut batch = CounterBatch::new();
        batch.request_started(); // a long stream that stays in flight throughout
        let mut flushes = 0;
        for _ in 0..FLUSH_EVERY * 3 {
            batch.request_started();
            batch.add(7, 1);
            if batch.request_finished() {
                flushes += 1;
                assert_eq!(flushed(&mut batch), [(7, i64::from(FLUSH_EVERY))]);
            }
        }
        assert_eq!(flushes, 3);
        assert_eq!(batch.in_flight(), 1);
    }

    #[test]
    fn nothing_pending_means_nothing_to_flush_and_zero_deltas_are_dropped() {
        let mut batch = CounterBatch::new();
        batch.request_started();
        batch.add(7, 0);
        assert!(!batch.request_finished());
        assert!(flushed(&mut batch).is_empty());
    }

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let mut batch = CounterBatch::new();
        batch.add(7, i64::MAX);
        batch.add(7, 5);
        assert_eq!(flushed(&mut batch), [(7, i64::MAX)]);
    }

    #[test]
    fn more_ends_than_starts_do_not_underflow() {
        let mut batch = CounterBatch::new();
        batch.add(7, 1);
        assert!(batch.request_finished());
        assert_eq!(batch.in_flight(), 0);
    }
}
