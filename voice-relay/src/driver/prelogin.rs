//! Connections that have not logged in yet, bounded in total and per address ([`ConnLimits`]): the accept loop
//! takes a [`PreLoginSlot`] for each connection before anything else (TLS handshake included) and closes the
//! connection at once when none is left; the slot goes back when the connection logs in or closes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::auth::ip_key;

/// Limits on control connections that have not logged in ([`super::Server::with_conn_limits`]). Together with the
/// relay's `login_timeout` (a connection without a session is closed that long after it opened, whatever it
/// sends), they bound what unauthenticated clients can hold: connections, file descriptors, buffers and TLS
/// state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections not logged in (TLS handshakes included), in total (default 128). Keep it well under the
    /// process's file descriptor limit, so that logged-in clients and new logins always find one.
    pub prelogin_total: usize,
    /// Connections not logged in from one address (an IPv6 address counts by its /64; default 8).
    pub prelogin_per_ip: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self { prelogin_total: 128, prelogin_per_ip: 8 }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The shared counts of connections not logged in.
#[derive(Clone, Debug)]
pub(crate) struct PreLogin {
    limits: ConnLimits,
    counts: Arc<Mutex<Counts>>,
}

/// One connection not logged in yet: counted until dropped.
#[derive(Debug)]
pub(crate) struct PreLoginSlot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl PreLogin {
    pub(crate) fn new(limits: ConnLimits) -> Self {
        Self { limits, counts: Arc::default() }
    }

    /// A slot for a connection from `peer`, or `None` if the total or the address's share is used up.
    pub(crate) fn take(&self, peer: IpAddr) -> Option<PreLoginSlot> {
        let ip = ip_key(peer);
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
        if c.total >= self.limits.prelogin_total || mine >= self.limits.prelogin_per_ip {
            return None;
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        Some(PreLoginSlot { counts: Arc::clone(&self.counts), ip })
    }

    /// Connections not logged in now, for tests.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for PreLoginSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_address_and_in_total_and_come_back() {
        let p = PreLogin::new(ConnLimits { prelogin_total: 5, prelogin_per_ip: 2 });
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4]));
        let held: Vec<_> = (0..3).filter_map(|_| p.take(a)).collect();
        assert_eq!(held.len(), 2, "per address");
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]));
        let first = p.take(v6("2001:db8::1"));
        assert!(first.is_some());
        let second = p.take(v6("2001:db8::ffff:1"));
        assert!(second.is_some());
        assert!(p.take(v6("2001:db8::2")).is_none(), "the same /64");
        let other = p.take(v6("2001:db8:1::1"));
        assert!(other.is_some());
        assert!(p.take("10.0.0.9".parse().unwrap_or(a)).is_none(), "total");
        drop(held);
        assert_eq!(p.total(), 3);
        assert!(p.take(a).is_some(), "a closed or logged-in connection gives its slot back");
    }
}
