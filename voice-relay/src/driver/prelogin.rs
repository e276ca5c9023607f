//! Connections that have not logged in yet, bounded in total and per address ([`ConnLimits`]): the accept loop
//! takes a [`PreLoginSlot`] for each connection before anything else (TLS handshake included); the slot goes back
//! when the connection logs in or closes. An address at its own limit is closed at once. When the total is used
//! up, a newcomer whose address holds fewer such connections than the busiest address takes the place of that
//! address's oldest one (which is closed): many addresses holding connections open cannot lock a new client out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::auth::ip_key;

/// Limits on control connections that have not logged in ([`super::Server::with_conn_limits`]). Together with the
/// relay's `login_timeout` (a connection without a session is closed that long after it opened, whatever it
/// sends), they bound what unauthenticated clients can hold: connections, file descriptors, buffers and TLS
/// state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections not logged in (TLS handshakes included), in total (default 128). Keep it well under the
    /// process's file descriptor limit, so that logged-in clients and new logins always find one. When it is used
    /// up, a newcomer from an address holding fewer such connections than the busiest address takes the place of
    /// the oldest of those (closed); otherwise it is closed at once.
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
    /// Every slot held, oldest first: its address and how to close its connection.
    held: BTreeMap<u64, (IpAddr, Arc<Notify>)>,
    next: u64,
}

impl Counts {
    fn release(&mut self, seq: u64) {
        let Some((ip, _)) = self.held.remove(&seq) else { return }; // evicted: counted out already
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
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
    seq: u64,
    evict: Arc<Notify>,
}

impl PreLoginSlot {
    /// Resolves when a newcomer took this connection's place: close it then.
    pub(crate) fn evicted(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let evict = Arc::clone(&self.evict);
        async move { evict.notified().await }
    }
}

/// What [`PreLogin::take`] gives.
#[derive(Debug)]
pub(crate) enum Taken {
    /// A slot.
    Slot(PreLoginSlot),
    /// A slot, in place of an older connection that is told to close.
    Evicted(PreLoginSlot),
    /// None: the address is at its limit, or the total is used up by addresses holding no more than this one.
    Refused,
}

impl PreLogin {
    pub(crate) fn new(limits: ConnLimits) -> Self {
        Self { limits, counts: Arc::default() }
    }

    /// A slot for a connection from `peer` (see the module docs).
    pub(crate) fn take(&self, peer: IpAddr) -> Taken {
        let ip = ip_key(peer);
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= self.limits.prelogin_per_ip {
            return Taken::Refused;
        }
        let mut evicted = false;
        if c.total >= self.limits.prelogin_total {
            // The oldest connection among those of the busiest addresses, if they hold more than this one.
            let most = c.per_ip.values().copied().max().unwrap_or(0);
            if most <= mine {
                return Taken::Refused;
            }
            let victim = c.held.iter().find(|(_, (ip, _))| c.per_ip.get(ip) == Some(&most)).map(|(s, _)| *s);
            let Some(seq) = victim else { return Taken::Refused };
            if let Some((_, evict)) = c.held.get(&seq) {
                evict.notify_one();
            }
            c.release(seq);
            evicted = true;
        }
        c.total += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        let seq = c.next;
        c.next += 1;
        let evict = Arc::new(Notify::new());
        c.held.insert(seq, (ip, Arc::clone(&evict)));
        let slot = PreLoginSlot { counts: Arc::clone(&self.counts), seq, evict };
        if evicted { Taken::Evicted(slot) } else { Taken::Slot(slot) }
    }

    /// Connections not logged in now, for tests.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for PreLoginSlot {
    fn drop(&mut self) {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).release(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0; 4]))
    }

    fn slot(t: Taken) -> Option<PreLoginSlot> {
        match t {
            Taken::Slot(s) | Taken::Evicted(s) => Some(s),
            Taken::Refused => None,
        }
    }

    #[test]
    fn slots_are_bounded_per_address_and_come_back() {
        let p = PreLogin::new(ConnLimits { prelogin_total: 5, prelogin_per_ip: 2 });
        let a = ip("10.0.0.1");
        let held: Vec<_> = (0..3).filter_map(|_| slot(p.take(a))).collect();
        assert_eq!(held.len(), 2, "per address");
        let first = slot(p.take(ip("2001:db8::1")));
        let second = slot(p.take(ip("2001:db8::ffff:1")));
        assert!(first.is_some() && second.is_some());
        assert!(matches!(p.take(ip("2001:db8::2")), Taken::Refused), "the same /64");
        drop(held);
        assert_eq!(p.total(), 2);
        assert!(slot(p.take(a)).is_some(), "a closed or logged-in connection gives its slot back");
    }

    #[tokio::test]
    async fn a_full_total_makes_room_by_closing_the_busiest_addresses_oldest() {
        let p = PreLogin::new(ConnLimits { prelogin_total: 4, prelogin_per_ip: 3 });
        let busy: Vec<_> = (0..3).filter_map(|_| slot(p.take(ip("10.0.0.1")))).collect();
        let other = slot(p.take(ip("10.0.0.2"))).expect("a slot");
        assert_eq!(p.total(), 4);
        // A newcomer from a third address: the busiest address's oldest connection makes room.
        let evicted_first = busy[0].evicted();
        let newcomer = p.take(ip("10.0.0.3"));
        assert!(matches!(newcomer, Taken::Evicted(_)));
        tokio::time::timeout(std::time::Duration::from_secs(5), evicted_first).await.expect("told to close");
        assert_eq!(p.total(), 4);
        // Until no address holds more than the newcomer's: then it is refused.
        let _more = slot(p.take(ip("10.0.0.4")));
        let _again = slot(p.take(ip("10.0.0.5")));
        assert!(matches!(p.take(ip("10.0.0.3")), Taken::Refused), "10.0.0.3 holds as many as any other");
        drop((busy, other, newcomer));
        assert!(p.total() <= 4);
    }
}
