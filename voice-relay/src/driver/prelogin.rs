//! Connections that have not logged in yet, bounded in total and per address ([`ConnLimits`]): the accept loop
//! takes a [`PreLoginSlot`] for each connection before anything else (TLS handshake included); the slot goes back
//! when the connection logs in or closes. An address at its own limit is closed at once. When the total is used
//! up, a newcomer whose address holds fewer such connections than the busiest address takes the place of that
//! address's oldest one (which is closed): many addresses holding connections open cannot lock a new client out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::auth::ip_key;
use crate::ratelimit::{BucketParams, TokenBucket};

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
    /// New connections per second one address may open (token bucket rate; default 5); beyond, closed at once.
    /// Logged-in clients reconnect rarely; a client that reconnects in a loop cannot churn the pre-login slots.
    pub accepts_per_s_per_ip: u32,
    /// Burst of new connections from one address (default 20).
    pub accept_burst_per_ip: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self { prelogin_total: 128, prelogin_per_ip: 8, accepts_per_s_per_ip: 5, accept_burst_per_ip: 20 }
    }
}

/// Most addresses whose accept rate is tracked; when full, those whose bucket refilled are forgotten first.
const MAX_RATE_TRACKED: usize = 16_384;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Every slot held, oldest first: its address, how to close its connection, and whether its login is being
    /// checked (then it is not closed to make room).
    held: BTreeMap<u64, (IpAddr, Arc<Notify>, bool)>,
    next: u64,
    /// New connections per address: a bucket, and when it was last used.
    rates: HashMap<IpAddr, (TokenBucket, Instant)>,
}

impl Counts {
    fn release(&mut self, seq: u64) {
        let Some((ip, ..)) = self.held.remove(&seq) else { return }; // evicted: counted out already
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
    /// Marks the connection's login as being checked (`true`: it is not closed to make room) or not.
    pub(crate) fn set_checking(&self, checking: bool) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = c.held.get_mut(&self.seq) {
            entry.2 = checking;
        }
    }

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
    /// None: the address opens connections faster than its rate.
    RateLimited,
}

impl PreLogin {
    pub(crate) fn new(limits: ConnLimits) -> Self {
        Self { limits, counts: Arc::default() }
    }

    /// A slot for a connection from `peer` (see the module docs).
    pub(crate) fn take(&self, peer: IpAddr, now: Instant) -> Taken {
        let ip = ip_key(peer);
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let rate = BucketParams {
            rate: self.limits.accepts_per_s_per_ip.max(1),
            burst: self.limits.accept_burst_per_ip.max(1),
        };
        if c.rates.len() >= MAX_RATE_TRACKED && !c.rates.contains_key(&ip) {
            // A bucket unused for burst / rate seconds is full again: forgetting it changes nothing.
            let refill = Duration::from_secs(u64::from(rate.burst / rate.rate) + 1);
            c.rates.retain(|_, (_, last)| now.saturating_duration_since(*last) < refill);
            if c.rates.len() >= MAX_RATE_TRACKED {
                c.rates.clear();
            }
        }
        let (bucket, last) = c.rates.entry(ip).or_insert_with(|| (TokenBucket::full(rate, now), now));
        *last = now;
        if !bucket.take(rate, now, 1) {
            return Taken::RateLimited;
        }
        let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= self.limits.prelogin_per_ip {
            return Taken::Refused;
        }
        let mut evicted = false;
        if c.total >= self.limits.prelogin_total {
            // The oldest connection among those of the busiest addresses, if they hold more than this one; a
            // connection whose login is being checked is spared (those are bounded by the verification pool).
            let count = |ip: &IpAddr| c.per_ip.get(ip).copied().unwrap_or(0);
            let open = || c.held.iter().filter(|(_, (.., checking))| !checking);
            let most = open().map(|(_, (ip, ..))| count(ip)).max().unwrap_or(0);
            if most <= mine {
                return Taken::Refused;
            }
            let victim = open().find(|(_, (ip, ..))| count(ip) == most).map(|(s, _)| *s);
            let Some(seq) = victim else { return Taken::Refused };
            if let Some((_, evict, _)) = c.held.get(&seq) {
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
        c.held.insert(seq, (ip, Arc::clone(&evict), false));
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

    impl PreLogin {
        #[allow(clippy::disallowed_methods, reason = "the tests' connections arrive well within the rate")]
        fn take_now(&self, peer: IpAddr) -> Taken {
            self.take(peer, Instant::now())
        }
    }

    fn slot(t: Taken) -> Option<PreLoginSlot> {
        match t {
            Taken::Slot(s) | Taken::Evicted(s) => Some(s),
            Taken::Refused | Taken::RateLimited => None,
        }
    }

    #[test]
    fn slots_are_bounded_per_address_and_come_back() {
        let p = PreLogin::new(ConnLimits { prelogin_total: 5, prelogin_per_ip: 2, ..ConnLimits::default() });
        let a = ip("10.0.0.1");
        let held: Vec<_> = (0..3).filter_map(|_| slot(p.take_now(a))).collect();
        assert_eq!(held.len(), 2, "per address");
        let first = slot(p.take_now(ip("2001:db8::1")));
        let second = slot(p.take_now(ip("2001:db8::ffff:1")));
        assert!(first.is_some() && second.is_some());
        assert!(matches!(p.take_now(ip("2001:db8::2")), Taken::Refused), "the same /64");
        drop(held);
        assert_eq!(p.total(), 2);
        assert!(slot(p.take_now(a)).is_some(), "a closed or logged-in connection gives its slot back");
    }

    #[tokio::test]
    async fn a_full_total_makes_room_by_closing_the_busiest_addresses_oldest() {
        let p = PreLogin::new(ConnLimits { prelogin_total: 4, prelogin_per_ip: 3, ..ConnLimits::default() });
        let busy: Vec<_> = (0..3).filter_map(|_| slot(p.take_now(ip("10.0.0.1")))).collect();
        let other = slot(p.take_now(ip("10.0.0.2"))).expect("a slot");
        assert_eq!(p.total(), 4);
        // A newcomer from a third address: the busiest address's oldest connection makes room.
        let evicted_first = busy[0].evicted();
        let newcomer = p.take_now(ip("10.0.0.3"));
        assert!(matches!(newcomer, Taken::Evicted(_)));
        tokio::time::timeout(std::time::Duration::from_secs(5), evicted_first).await.expect("told to close");
        assert_eq!(p.total(), 4);
        // Until no address holds more than the newcomer's: then it is refused.
        let _more = slot(p.take_now(ip("10.0.0.4")));
        let _again = slot(p.take_now(ip("10.0.0.5")));
        assert!(matches!(p.take_now(ip("10.0.0.3")), Taken::Refused), "10.0.0.3 holds as many as any other");
        drop((busy, other, newcomer));
        assert!(p.total() <= 4);
    }

    #[test]
    fn a_connection_whose_login_is_checked_is_not_closed_to_make_room() {
        let p = PreLogin::new(ConnLimits { prelogin_total: 2, prelogin_per_ip: 2, ..ConnLimits::default() });
        let checking = slot(p.take_now(ip("10.0.0.1"))).expect("a slot");
        checking.set_checking(true);
        let idle = slot(p.take_now(ip("10.0.0.2"))).expect("a slot");
        let third = p.take_now(ip("10.0.0.3"));
        assert!(matches!(third, Taken::Evicted(_)), "10.0.0.2's idle one made room");
        let fourth = p.take_now(ip("10.0.0.4"));
        assert!(matches!(fourth, Taken::Evicted(_)), "then 10.0.0.3's");
        checking.set_checking(false);
        let checking_gone = checking.evicted();
        let fifth = p.take_now(ip("10.0.0.5"));
        assert!(matches!(fifth, Taken::Evicted(_)), "no longer checked: the oldest goes");
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        let told = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), checking_gone).await });
        assert!(told.is_ok(), "told to close");
        drop((checking, idle, third, fourth, fifth));
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "an origin for simulated times")]
    fn an_address_that_reconnects_in_a_loop_is_held_to_its_rate() {
        let limits = ConnLimits { accepts_per_s_per_ip: 5, accept_burst_per_ip: 20, ..ConnLimits::default() };
        let p = PreLogin::new(limits);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        // 100 connections in 1 s, each closed at once (so only the rate can refuse them).
        let mut accepted = 0;
        for i in 0..100u64 {
            if matches!(p.take(a, t0 + Duration::from_millis(i * 10)), Taken::Slot(_) | Taken::Evicted(_)) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 20 + 4, "the burst, then 5 per second");
        assert!(matches!(p.take(b, t0 + Duration::from_secs(1)), Taken::Slot(_)), "another address is not affected");
        assert!(matches!(p.take(a, t0 + Duration::from_secs(2)), Taken::Slot(_)), "refilled");
    }
}
