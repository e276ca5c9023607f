//! Deadlines: a min-heap of `(deadline, key)` with lazy cancellation, the relay's timer structure.
//!
//! Housekeeping is driven by deadlines, not by scanning every session: each session, connection or room that can
//! expire has at most one entry in a heap, armed for the earliest time it could expire. When an entry comes due,
//! its owner looks at the one record it names: expired → act; still alive (it was active meanwhile) → arm again
//! for its new earliest expiry. A record that ended or re-armed elsewhere leaves a stale entry behind, recognised
//! when it pops (the record's `armed` deadline no longer matches) and dropped. So a timeout costs O(log n) per
//! entry that comes due, and nothing for the sessions that are not due: 100 000 idle sessions cost nothing until
//! their deadlines (`tests/timers.rs` counts the records visited).
//!
//! Deadlines of the slow timers (binding and session expiry, idle connections, ad-hoc rooms) are rounded up to the
//! housekeeping grid (`RelayConfig::housekeeping_interval`), so records that expire within one period share one
//! wake-up of the driver.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// A min-heap of deadlines.
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord + Copy> Deadlines<K> {
    pub(crate) fn new() -> Self {
        Self { heap: BinaryHeap::new() }
    }

    /// Arms `key` for `at`. The caller records `at` in the keyed record, to recognise this entry when it pops.
    pub(crate) fn arm(&mut self, at: Instant, key: K) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline (possibly of a stale entry: popping it early is harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next entry due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Entries in the heap, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// `at` rounded up to the grid `origin + k × period` (at itself if it is on the grid, or before `origin`).
pub(crate) fn round_up(at: Instant, origin: Instant, period: Duration) -> Instant {
    let Some(since) = at.checked_duration_since(origin) else { return at };
    let (since_ns, period_ns) = (since.as_nanos(), period.as_nanos().max(1));
    let ticks = since_ns.div_ceil(period_ns);
    let rounded = ticks.saturating_mul(period_ns);
    let extra = u64::try_from(rounded - since_ns).unwrap_or(0);
    at.checked_add(Duration::from_nanos(extra)).unwrap_or(at)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test: the origin of its times")]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Deadlines::new();
        d.arm(t0 + ms(30), 3u32);
        d.arm(t0 + ms(10), 1);
        d.arm(t0 + ms(20), 2);
        assert_eq!(d.next(), Some(t0 + ms(10)));
        assert_eq!(d.pop_due(t0 + ms(5)), None);
        assert_eq!(d.pop_due(t0 + ms(25)), Some((t0 + ms(10), 1)));
        assert_eq!(d.pop_due(t0 + ms(25)), Some((t0 + ms(20), 2)));
        assert_eq!(d.pop_due(t0 + ms(25)), None);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn rounds_up_to_the_grid() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(round_up(t0, t0, s), t0);
        assert_eq!(round_up(t0 + Duration::from_millis(1), t0, s), t0 + s);
        assert_eq!(round_up(t0 + s, t0, s), t0 + s);
        assert_eq!(round_up(t0 + Duration::from_millis(2500), t0, s), t0 + 3 * s);
    }
}
