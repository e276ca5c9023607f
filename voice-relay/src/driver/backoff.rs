//! Brute-force protection: after a few failed logins for one account (user name) or from one address, further
//! logins for it are refused at once for a while that doubles with each failure ([`LoginBackoff`]). The account is
//! the user name as given, whether or not such a user exists, so a refusal looks the same for both. Memory is
//! bounded ([`LoginBackoff::max_tracked`]). Time is the caller's (no clock read here).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::auth::UserInfo;
use crate::error::AuthError;

/// Backoff after failed logins ([`super::Server::with_login_backoff`]). A failure is a refused credential (wrong
/// password or token, unknown user); a busy or throttled refusal is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginBackoff {
    /// Failures in a row one account may have before it backs off (default 5). A success clears its count.
    pub account_free: u32,
    /// Failures one address (IPv6: its /64) may have before it backs off (default 20). Successes do not clear it
    /// (an attacker could log into an account of their own); it is forgotten after `forget_after`.
    pub ip_free: u32,
    /// The first wait once over the free failures; each further failure doubles it (default 1 s).
    pub base: Duration,
    /// The longest wait (default 60 s).
    pub max: Duration,
    /// A record with no failure for this long is forgotten (default 15 minutes).
    pub forget_after: Duration,
    /// Most accounts, and most addresses, tracked (default 10 000 each). When full, records whose wait is over go
    /// first, then the one whose last failure is oldest.
    pub max_tracked: usize,
}

impl Default for LoginBackoff {
    fn default() -> Self {
        Self {
            account_free: 5,
            ip_free: 20,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            forget_after: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
        }
    }
}

/// Failures of one account or address.
#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last: Instant,
}

/// The backoff's records.
#[derive(Debug)]
pub(crate) struct Backoff {
    cfg: LoginBackoff,
    accounts: HashMap<Box<str>, Record>,
    ips: HashMap<IpAddr, Record>,
}

impl Backoff {
    pub(crate) fn new(cfg: LoginBackoff) -> Self {
        Self { cfg, accounts: HashMap::new(), ips: HashMap::new() }
    }

    /// How long after its last failure a record with `failures` blocks, given `free` failures allowed.
    fn wait(&self, failures: u32, free: u32) -> Duration {
        let Some(over) = failures.checked_sub(free).filter(|&o| o > 0) else { return Duration::ZERO };
        let factor = 1u32.checked_shl(over - 1).unwrap_or(u32::MAX);
        self.cfg.base.saturating_mul(factor).min(self.cfg.max)
    }

    fn blocks(&self, r: Option<&Record>, free: u32, now: Instant) -> bool {
        r.is_some_and(|r| now < r.last + self.wait(r.failures, free))
    }

    /// Whether a login for `user` from `ip` (already keyed: `super::auth::ip_key`) must wait.
    pub(crate) fn blocked(&self, ip: IpAddr, user: &str, now: Instant) -> bool {
        self.blocks(self.accounts.get(user), self.cfg.account_free, now)
            || self.blocks(self.ips.get(&ip), self.cfg.ip_free, now)
    }

    /// Failures counted for address `ip` (already keyed) that are not forgotten at `now`.
    pub(crate) fn ip_failures(&self, ip: IpAddr, now: Instant) -> u32 {
        self.ips
            .get(&ip)
            .filter(|r| now.saturating_duration_since(r.last) < self.cfg.forget_after)
            .map_or(0, |r| r.failures)
    }

    /// Counts the outcome of a checked login.
    pub(crate) fn record(&mut self, ip: IpAddr, user: &str, result: &Result<UserInfo, AuthError>, now: Instant) {
        match result {
            Ok(_) => {
                self.accounts.remove(user);
            }
            Err(AuthError::WrongCredential | AuthError::UnknownUser | AuthError::UnsupportedCredential) => {
                bump(&mut self.accounts, user.into(), now, &self.cfg);
                bump(&mut self.ips, ip, now, &self.cfg);
            }
            Err(_) => {}
        }
    }

    /// Records tracked (accounts, addresses), for tests.
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        (self.accounts.len(), self.ips.len())
    }
}

/// One more failure for `key` at `now`, making room first if the map is full.
fn bump<K: Eq + Hash + Clone>(map: &mut HashMap<K, Record>, key: K, now: Instant, cfg: &LoginBackoff) {
    if let Some(r) = map.get_mut(&key) {
        // A record idle past `forget_after` starts again.
        r.failures =
            if now.saturating_duration_since(r.last) >= cfg.forget_after { 1 } else { r.failures.saturating_add(1) };
        r.last = now;
        return;
    }
    if map.len() >= cfg.max_tracked.max(1) {
        // Records whose longest wait is over go first (they block nothing now), then the oldest.
        let stale = cfg.forget_after.min(cfg.max);
        map.retain(|_, r| now.saturating_duration_since(r.last) < stale);
        if map.len() >= cfg.max_tracked.max(1)
            && let Some(oldest) = map.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    map.insert(key, Record { failures: 1, last: now });
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Result<UserInfo, AuthError> = Err(AuthError::WrongCredential);
    const UNKNOWN: Result<UserInfo, AuthError> = Err(AuthError::UnknownUser);

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "an origin for simulated times")]
    fn an_account_backs_off_after_its_free_failures_doubling_up_to_the_max() {
        let t0 = Instant::now();
        let mut b = Backoff::new(LoginBackoff::default());
        // 61 wrong passwords in one second, from many addresses: only the first 5 are checked.
        let mut checked = 0;
        for i in 0..61u8 {
            let now = t0 + Duration::from_millis(u64::from(i) * 16);
            if !b.blocked(ip(i), "alice", now) {
                checked += 1;
                b.record(ip(i), "alice", &FAIL, now);
            }
        }
        assert_eq!(checked, 6, "5 free failures, then the 6th starts a 1 s wait");
        let last = t0 + Duration::from_millis(5 * 16);
        assert!(b.blocked(ip(99), "alice", last + Duration::from_millis(999)));
        assert!(!b.blocked(ip(99), "alice", last + Duration::from_secs(1)), "1 s after the 6th failure");
        // Failures 7, 8, …: 2 s, 4 s, … then capped at 60 s.
        let mut t = last + Duration::from_secs(1);
        for expected in [2u64, 4, 8, 16, 32, 60, 60] {
            b.record(ip(1), "alice", &FAIL, t);
            assert!(b.blocked(ip(99), "alice", t + Duration::from_secs(expected) - Duration::from_millis(1)));
            t += Duration::from_secs(expected);
            assert!(!b.blocked(ip(99), "alice", t), "wait {expected} s over");
        }
        // Another account is not affected; a success clears the account.
        assert!(!b.blocked(ip(99), "bob", t));
        b.record(ip(1), "alice", &FAIL, t);
        b.record(ip(1), "alice", &Ok(UserInfo::new("alice")), t);
        assert!(!b.blocked(ip(99), "alice", t));
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "an origin for simulated times")]
    fn unknown_and_existing_users_back_off_alike() {
        let t0 = Instant::now();
        let mut b = Backoff::new(LoginBackoff::default());
        for i in 0..6 {
            b.record(ip(i), "alice", &FAIL, t0);
            b.record(ip(i + 10), "nobody", &UNKNOWN, t0);
        }
        let at = t0 + Duration::from_millis(500);
        assert_eq!(b.blocked(ip(50), "alice", at), b.blocked(ip(50), "nobody", at));
        assert!(b.blocked(ip(50), "nobody", at));
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "an origin for simulated times")]
    fn an_address_backs_off_across_accounts_and_a_success_does_not_clear_it() {
        let t0 = Instant::now();
        let mut b = Backoff::new(LoginBackoff::default());
        for i in 0..21 {
            b.record(ip(1), &format!("user{i}"), &FAIL, t0);
        }
        b.record(ip(1), "mine", &Ok(UserInfo::new("mine")), t0);
        assert!(b.blocked(ip(1), "someone", t0 + Duration::from_millis(999)));
        assert!(!b.blocked(ip(2), "someone", t0));
        assert!(!b.blocked(ip(1), "someone", t0 + Duration::from_secs(1)));
        // Forgotten after `forget_after`: counting starts again.
        let later = t0 + LoginBackoff::default().forget_after;
        b.record(ip(1), "x", &FAIL, later);
        assert!(!b.blocked(ip(1), "x", later));
        // Busy and throttled refusals are not failures.
        b.record(ip(3), "y", &Err(AuthError::Busy), later);
        b.record(ip(3), "y", &Err(AuthError::Throttled), later);
        assert_eq!(b.ips.get(&ip(3)).map(|r| r.failures), None);
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "an origin for simulated times")]
    fn records_are_bounded_under_a_flood_of_names() {
        let t0 = Instant::now();
        let cfg = LoginBackoff { max_tracked: 100, ..LoginBackoff::default() };
        let mut b = Backoff::new(cfg);
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            b.record(IpAddr::from(i.to_be_bytes()), &format!("u{i}"), &FAIL, now);
        }
        let (accounts, ips) = b.tracked();
        assert!(accounts <= 100 && ips <= 100, "{accounts} accounts, {ips} addresses");
    }
}
