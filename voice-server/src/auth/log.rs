//! The login log: every accepted login at `info`, refused ones at `warn` — at most [`REFUSALS_PER_WINDOW`] lines per
//! [`WINDOW_MS`], then one line saying how many were left out, so a password flood cannot flood the log.
//!
//! Lines name the user (`Debug`-quoted, so control characters in a name are escaped, never written to the
//! terminal) and the connection number the relay's driver uses in its own lines. Time is the login's
//! ([`AuthRequest::unix_time_ms`]): no clock is read.

use std::sync::Mutex;

use voice_relay::{AuthError, AuthRequest, UserInfo};

/// Length of the window refused logins are counted in, ms.
pub const WINDOW_MS: u64 = 10_000;

/// Refused logins logged per window; the others are counted, and reported when the next one is logged.
pub const REFUSALS_PER_WINDOW: u64 = 10;

/// Whether to log one refused login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Log it, saying first that `left_out` refusals before it were not logged.
    Log {
        /// Refusals not logged since the last line.
        left_out: u64,
    },
    /// Count it only.
    Skip,
}

/// Counts refused logins per window ([`WINDOW_MS`]).
#[derive(Debug, Default)]
pub(crate) struct RefusalLimiter {
    window_start_ms: u64,
    logged: u64,
    left_out: u64,
}

impl RefusalLimiter {
    /// One refused login at `now_ms`.
    pub(crate) fn admit(&mut self, now_ms: u64) -> Admit {
        if now_ms.saturating_sub(self.window_start_ms) >= WINDOW_MS || now_ms < self.window_start_ms {
            self.window_start_ms = now_ms;
            self.logged = 0;
        }
        if self.logged < REFUSALS_PER_WINDOW {
            self.logged += 1;
            Admit::Log { left_out: std::mem::take(&mut self.left_out) }
        } else {
            self.left_out += 1;
            Admit::Skip
        }
    }
}

/// Logs the outcome of `request` (see the module docs).
pub(crate) fn log_login(limiter: &Mutex<RefusalLimiter>, request: &AuthRequest, result: &Result<UserInfo, AuthError>) {
    let (user, conn) = (request.user(), request.conn().0);
    match result {
        Ok(info) => tracing::info!(?user, conn, display_name = ?info.display_name, "login accepted"),
        Err(why) => {
            let admit = limiter.lock().map_or(Admit::Log { left_out: 0 }, |mut l| l.admit(request.unix_time_ms()));
            if let Admit::Log { left_out } = admit {
                if left_out > 0 {
                    tracing::warn!(left_out, "refused logins not logged (more than {REFUSALS_PER_WINDOW} in 10 s)");
                }
                tracing::warn!(?user, conn, reason = %why, "login refused");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_up_to_the_window_limit_then_counted() {
        let mut l = RefusalLimiter::default();
        let t0 = 1_000_000;
        for i in 0..REFUSALS_PER_WINDOW {
            assert_eq!(l.admit(t0 + i), Admit::Log { left_out: 0 });
        }
        for i in 0..5 {
            assert_eq!(l.admit(t0 + 100 + i), Admit::Skip);
        }
        assert_eq!(l.admit(t0 + WINDOW_MS), Admit::Log { left_out: 5 }, "a new window says what was left out");
        assert_eq!(l.admit(t0 + WINDOW_MS + 1), Admit::Log { left_out: 0 });
        assert_eq!(l.admit(t0), Admit::Log { left_out: 0 }, "time going back starts a window, no panic");
    }
}
