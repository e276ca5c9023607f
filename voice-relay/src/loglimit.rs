//! Rate-limited log lines: a flood of the same event (refused logins, failed accepts, failed TLS handshakes) writes
//! a few lines per window, then one line saying how many were left out. Time is the caller's: no clock is read.

use std::time::{Duration, Instant};

/// Admits at most `per_window` lines per `window` (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct LogLimiter {
    window: Duration,
    per_window: u32,
    start: Option<Instant>,
    logged: u32,
    left_out: u64,
}

impl LogLimiter {
    /// At most `per_window` lines per `window`.
    pub(crate) const fn new(window: Duration, per_window: u32) -> Self {
        Self { window, per_window, start: None, logged: 0, left_out: 0 }
    }

    /// One event at `now`: `Some(left_out)` to log it (saying first that `left_out` events before it were not
    /// logged, if any), `None` to count it only.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.start.is_none_or(|s| now < s || now.saturating_duration_since(s) >= self.window) {
            self.start = Some(now);
            self.logged = 0;
        }
        if self.logged < self.per_window {
            self.logged += 1;
            Some(std::mem::take(&mut self.left_out))
        } else {
            self.left_out += 1;
            None
        }
    }
}

impl Default for LogLimiter {
    /// 10 lines per 10 s.
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "an origin for simulated times")]
    fn a_flood_logs_a_few_lines_per_window_then_says_how_many_were_left_out() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10), 3);
        let admitted: Vec<_> = (0..1000).map(|i| l.admit(t0 + Duration::from_millis(i))).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 3);
        assert_eq!(l.admit(t0 + Duration::from_secs(10)), Some(997), "the next window reports the rest");
        assert_eq!(l.admit(t0 + Duration::from_secs(11)), Some(0));
        assert_eq!(l.admit(t0), Some(0), "time going back starts a window");
    }
}
