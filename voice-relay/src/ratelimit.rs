//! Token buckets for per-session rate limits, with time passed in.

use std::time::Instant;

/// A token bucket: holds up to `burst` tokens and refills at `rate` tokens per second. Compact (32 bytes) and
/// allocation-free; all arithmetic saturates, so no input can make it panic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBucket {
    /// Tokens now, in millitokens (1/1000) so that slow rates refill smoothly.
    milli: u64,
    last: Instant,
}

/// Parameters shared by every bucket of one kind (kept in the relay, not per session).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BucketParams {
    /// Refill per second.
    pub(crate) rate: u32,
    /// Capacity.
    pub(crate) burst: u32,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(p: BucketParams, now: Instant) -> Self {
        Self { milli: u64::from(p.burst) * 1000, last: now }
    }

    /// Adds the tokens earned since the last refill (time going backwards adds nothing).
    fn refill(&mut self, p: BucketParams, now: Instant) {
        if now > self.last {
            let dt_us = u64::try_from(now.duration_since(self.last).as_micros()).unwrap_or(u64::MAX);
            // rate (tokens/s) × dt (µs) / 1000 = millitokens.
            let add = dt_us.saturating_mul(u64::from(p.rate)) / 1000;
            self.milli = self.milli.saturating_add(add).min(u64::from(p.burst) * 1000);
            self.last = now;
        }
    }

    /// Takes `cost` tokens if there are enough (after refilling up to `now`); `false` takes nothing.
    pub(crate) fn take(&mut self, p: BucketParams, now: Instant, cost: u32) -> bool {
        self.refill(p, now);
        let cost = u64::from(cost) * 1000;
        if self.milli >= cost {
            self.milli -= cost;
            true
        } else {
            false
        }
    }
}

/// Takes `cost_a` from `a` and `cost_b` from `b` only if both have enough: a packet refused by one bucket costs
/// nothing in the other.
pub(crate) fn take_both(
    (a, pa, cost_a): (&mut TokenBucket, BucketParams, u32),
    (b, pb, cost_b): (&mut TokenBucket, BucketParams, u32),
    now: Instant,
) -> bool {
    a.refill(pa, now);
    b.refill(pb, now);
    let (ca, cb) = (u64::from(cost_a) * 1000, u64::from(cost_b) * 1000);
    if a.milli >= ca && b.milli >= cb {
        a.milli -= ca;
        b.milli -= cb;
        true
    } else {
        false
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "a test: the origin of the buckets' time")]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn refills_at_rate_and_caps_at_burst() {
        let p = BucketParams { rate: 50, burst: 10 };
        let t0 = Instant::now();
        let mut b = TokenBucket::full(p, t0);
        assert!((0..10).all(|_| b.take(p, t0, 1)));
        assert!(!b.take(p, t0, 1));
        // 20 ms at 50/s = 1 token.
        assert!(b.take(p, t0 + Duration::from_millis(20), 1));
        assert!(!b.take(p, t0 + Duration::from_millis(20), 1));
        // A long pause refills only to the burst.
        let later = t0 + Duration::from_secs(100);
        assert!((0..10).all(|_| b.take(p, later, 1)));
        assert!(!b.take(p, later, 1));
        // Time going backwards never refills nor panics.
        assert!(!b.take(p, t0, 1));
    }

    #[test]
    fn take_both_is_all_or_nothing() {
        let (pa, pb) = (BucketParams { rate: 1, burst: 5 }, BucketParams { rate: 1, burst: 100 });
        let t0 = Instant::now();
        let (mut a, mut b) = (TokenBucket::full(pa, t0), TokenBucket::full(pb, t0));
        assert!(take_both((&mut a, pa, 1), (&mut b, pb, 60), t0));
        // b has 40 left: refused, and a keeps its 4 tokens.
        assert!(!take_both((&mut a, pa, 1), (&mut b, pb, 60), t0));
        assert!((0..4).all(|_| a.take(pa, t0, 1)));
        assert!(!a.take(pa, t0, 1));
    }
}
