//! Credential checks for the core task: the relay emits [`Event::Authenticate`](crate::Event::Authenticate), the
//! core task hands the request to a [`Verifier`], and the answer goes back into the relay with
//! `Relay::handle_auth_result`.
//!
//! Before anything else, a login whose account or address is backing off after failed logins is refused at once
//! ([`AuthError::Throttled`]; see [`LoginBackoff`]). Cheap checks ([`Authenticator::is_cheap`]: tokens, in-memory
//! users) run at once on the core task, without the relay's lock. Slow ones (argon2id: tens of milliseconds by
//! design) run on a fixed set of [`AuthPool::workers`] long-lived threads (`voice-relay-auth0`…), with at most
//! [`AuthPool::queue`] more waiting and at most [`AuthPool::per_ip`] running or waiting for one address; beyond
//! that a login is refused at once with [`AuthError::Busy`]. Waiting checks go by their address's failed logins,
//! fewest first, and a full pool makes room for an address with fewer failures than the worst one waiting: a
//! legitimate first try waits only for the checks running. So a flood of password logins costs a bounded amount
//! of CPU, threads and memory: each worker thread keeps its own hashing memory (see
//! [`Authenticator::release_memory`]), and gives it back after [`AUTH_IDLE_RELEASE`] without work.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::backoff::{Backoff, LoginBackoff};
use super::control::Cmd;
use crate::auth::{AuthId, AuthRequest, Authenticator, UserInfo};
use crate::error::AuthError;

/// Most workers [`AuthPool`] takes.
pub const MAX_AUTH_WORKERS: usize = 64;

/// A verification thread that had no work for this long calls [`Authenticator::release_memory`] (once).
pub const AUTH_IDLE_RELEASE: Duration = Duration::from_secs(2);

/// The bounded pool that checks slow credentials ([`super::Server::with_auth_pool`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthPool {
    /// Checks running at once, each on one of the pool's own threads (default: the machine's cores; 1 to
    /// [`MAX_AUTH_WORKERS`]). Each thread keeps its hash's memory while busy (19 MiB for the default argon2id
    /// costs) and releases it when idle.
    pub workers: usize,
    /// Checks waiting for a worker (default 4 per worker). A login beyond `workers + queue` is refused at once
    /// ([`AuthError::Busy`]: the client gets Error `RATE_LIMITED`).
    pub queue: usize,
    /// Checks running or waiting for one client address (an IPv6 address counts by its /64; default 4). Beyond,
    /// refused at once like a full queue, so one address cannot take the whole queue.
    pub per_ip: usize,
}

impl Default for AuthPool {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let workers = cores.min(MAX_AUTH_WORKERS);
        Self { workers, queue: 4 * workers, per_ip: 4 }
    }
}

/// The address a limit counts under: an IPv4 address, or an IPv6 address's /64 (one host usually has a whole /64).
pub(crate) fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())
        }
    }
}

/// Checks admitted to the pool, in total and per address.
#[derive(Debug, Default)]
struct Admitted {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Whether a check may enter the pool.
enum Admit {
    Yes(Slot),
    /// The client's address has [`AuthPool::per_ip`] checks in already.
    OwnShareFull,
    /// The pool and its queue are full.
    PoolFull,
}

/// One admitted check: released (its counts given back) when dropped.
struct Slot {
    admitted: Arc<Mutex<Admitted>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut a = self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        a.total = a.total.saturating_sub(1);
        if let Some(n) = a.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                a.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A check for a worker thread.
struct Job {
    request: AuthRequest,
    /// The client's address's failed logins when the check was queued: fewer go first.
    failures: u32,
    _slot: Slot,
}

/// The core task's side: checks requests inline or on the pool, and keeps the login backoff.
pub(super) struct Verifier {
    auth: Arc<dyn Authenticator>,
    pool: AuthPool,
    admitted: Arc<Mutex<Admitted>>,
    /// To the worker threads (started at the first slow check).
    jobs: Option<Jobs>,
    /// Where the workers answer (weak: they must not keep the core task alive at shutdown).
    cmds: mpsc::WeakSender<Cmd>,
    backoff: Backoff,
    /// Address and user name of every check not answered yet, for the backoff.
    in_flight: HashMap<AuthId, (IpAddr, Box<str>)>,
    /// Waiting checks taken off the queue for a client with fewer failed logins: to be answered busy.
    evicted: Vec<AuthId>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("pool", &self.pool).field("in_flight", &self.in_flight.len()).finish()
    }
}

impl Verifier {
    pub(super) fn new(
        auth: Arc<dyn Authenticator>,
        pool: AuthPool,
        backoff: LoginBackoff,
        cmds: mpsc::WeakSender<Cmd>,
    ) -> Self {
        let workers = pool.workers.clamp(1, MAX_AUTH_WORKERS);
        let pool = AuthPool { workers, queue: pool.queue.min(1 << 20), per_ip: pool.per_ip.max(1) };
        Self {
            auth,
            pool,
            admitted: Arc::default(),
            jobs: None,
            cmds,
            backoff: Backoff::new(backoff),
            in_flight: HashMap::new(),
            evicted: Vec::new(),
        }
    }

    /// Replaces the authenticator (a configuration reload): checks already running finish with the old one.
    pub(super) fn set_authenticator(&mut self, auth: Arc<dyn Authenticator>) {
        self.auth = auth;
        self.jobs = None; // the workers end once their queue is drained; new ones start with the new authenticator
    }

    /// Checks `request` from `peer` at `now`: the result at once when the account or address backs off, the check
    /// is cheap, or the pool is full ([`AuthError::Busy`]); `None` when it runs on the pool, whose answer comes
    /// back to the core task as [`Cmd::Authenticated`] (then call [`finished`](Self::finished)).
    pub(super) fn check(
        &mut self,
        request: AuthRequest,
        peer: IpAddr,
        now: Instant,
    ) -> Option<Result<UserInfo, AuthError>> {
        let ip = ip_key(peer);
        if self.backoff.blocked(ip, request.user(), now) {
            return Some(Err(AuthError::Throttled));
        }
        if self.auth.is_cheap(request.credential()) {
            let result = self.auth.authenticate(&request);
            self.backoff.record(ip, request.user(), &result, now);
            return Some(result);
        }
        let jobs = self.jobs.get_or_insert_with(|| spawn_workers(&self.auth, self.pool, &self.cmds));
        if jobs.started == 0 {
            self.jobs = None;
            return Some(Err(AuthError::Unavailable("verification threads unavailable".into())));
        }
        let queue = Arc::clone(&jobs.queue);
        let slot = match self.admit(ip) {
            Admit::Yes(slot) => slot,
            Admit::OwnShareFull => return Some(Err(AuthError::Busy)),
            Admit::PoolFull => {
                // The pool is full: a client with fewer failed logins than the worst one waiting takes the place
                // of that one's newest waiting check (answered busy). A legitimate user's first try thus gets in
                // ahead of addresses that keep failing, whatever their number.
                let evicted = queue.evict_worst(self.backoff.ip_failures(ip, now));
                let Some(evicted) = evicted else { return Some(Err(AuthError::Busy)) };
                let evicted_id = evicted.request.id();
                drop(evicted); // its slot comes back
                self.in_flight.remove(&evicted_id);
                self.evicted.push(evicted_id);
                match self.admit(ip) {
                    Admit::Yes(slot) => slot,
                    _ => return Some(Err(AuthError::Busy)),
                }
            }
        };
        let (id, user) = (request.id(), Box::<str>::from(request.user()));
        // Admission bounds the queue: the push always finds room.
        queue.push(Job { request, failures: self.backoff.ip_failures(ip, now), _slot: slot });
        self.in_flight.insert(id, (ip, user));
        None
    }

    /// Checks taken off the queue since the last call (see [`check`](Self::check)): answer each busy.
    pub(super) fn take_evicted(&mut self) -> Vec<AuthId> {
        std::mem::take(&mut self.evicted)
    }

    /// A pool check's answer came back: counted in the backoff.
    pub(super) fn finished(&mut self, id: AuthId, result: &Result<UserInfo, AuthError>, now: Instant) {
        if let Some((ip, user)) = self.in_flight.remove(&id) {
            self.backoff.record(ip, &user, result, now);
        }
    }

    /// A slot for a check from `ip`, if the pool, its queue and the address's share have room.
    fn admit(&self, ip: IpAddr) -> Admit {
        let mut a = self.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = a.per_ip.get(&ip).copied().unwrap_or(0);
        if mine >= self.pool.per_ip {
            return Admit::OwnShareFull;
        }
        if a.total >= self.pool.workers + self.pool.queue {
            return Admit::PoolFull;
        }
        a.total += 1;
        *a.per_ip.entry(ip).or_insert(0) += 1;
        Admit::Yes(Slot { admitted: Arc::clone(&self.admitted), ip })
    }
}

/// The queue between the core task and the worker threads: each worker waits on it with its own idle timeout.
#[derive(Default)]
struct JobQueue {
    /// Waiting jobs, and whether the core side is gone.
    state: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
}

/// What a worker gets from [`JobQueue::pop`].
enum Next {
    Job(Job),
    /// Nothing came within the timeout.
    Idle,
    /// The core side is gone: end.
    Closed,
}

impl JobQueue {
    fn push(&self, job: Job) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0.push_back(job);
        self.ready.notify_one();
    }

    fn pop(&self, timeout: Duration) -> Next {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            // The check from the address with the fewest failed logins first (the oldest of those): a client
            // that has not failed waits only for the checks running, not for a failing address's queue.
            let best = state.0.iter().enumerate().min_by_key(|(_, j)| j.failures).map(|(i, _)| i);
            if let Some(job) = best.and_then(|i| state.0.remove(i)) {
                return Next::Job(job);
            }
            if state.1 {
                return Next::Closed;
            }
            let (s, waited) = self.ready.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner);
            state = s;
            if waited.timed_out() && state.0.is_empty() {
                return if state.1 { Next::Closed } else { Next::Idle };
            }
        }
    }

    /// Takes off the queue the newest waiting job among those with the most failures, if that is above `than`.
    fn evict_worst(&self, than: u32) -> Option<Job> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut worst: Option<(usize, u32)> = None;
        for (i, job) in state.0.iter().enumerate() {
            if job.failures > than && worst.is_none_or(|(_, w)| job.failures >= w) {
                worst = Some((i, job.failures));
            }
        }
        state.0.remove(worst?.0)
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.ready.notify_all();
    }
}

/// The core side of the pool: closing it (dropped) ends the workers once the queue is drained.
struct Jobs {
    queue: Arc<JobQueue>,
    /// Worker threads that started.
    started: usize,
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// Starts the pool's threads; they end when the returned [`Jobs`] is dropped and the queue is drained.
fn spawn_workers(auth: &Arc<dyn Authenticator>, pool: AuthPool, cmds: &mpsc::WeakSender<Cmd>) -> Jobs {
    let queue = Arc::new(JobQueue::default());
    let mut started = 0;
    for i in 0..pool.workers {
        let (auth, queue, cmds) = (Arc::clone(auth), Arc::clone(&queue), cmds.clone());
        let spawned = std::thread::Builder::new().name(format!("voice-relay-auth{i}")).spawn(move || {
            worker(&*auth, &queue, &cmds);
        });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => tracing::error!(error = %e, "cannot start a verification thread"),
        }
    }
    Jobs { queue, started }
}

/// One verification thread: checks jobs one at a time; after [`AUTH_IDLE_RELEASE`] without work it asks the
/// authenticator to release this thread's memory.
fn worker(auth: &dyn Authenticator, jobs: &JobQueue, cmds: &mpsc::WeakSender<Cmd>) {
    let mut holding = false;
    loop {
        match jobs.pop(AUTH_IDLE_RELEASE) {
            Next::Job(job) => {
                holding = true;
                let id = job.request.id();
                let result = auth.authenticate(&job.request);
                drop(job); // the slot frees before the answer is seen: a retry finds room
                let Some(cmds) = cmds.upgrade() else { return };
                if cmds.blocking_send(Cmd::Authenticated { id, result }).is_err() {
                    return;
                }
            }
            Next::Idle => {
                if holding {
                    auth.release_memory();
                    holding = false;
                }
            }
            Next::Closed => {
                auth.release_memory();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use voice_proto::control::Credential;

    use super::*;
    use crate::relay::ConnId;

    fn job(n: u64, failures: u32, admitted: &Arc<Mutex<Admitted>>) -> Job {
        let request = AuthRequest::new(AuthId::new(ConnId(n), n), "u", Credential::Password("p".into()), 0);
        Job { request, failures, _slot: Slot { admitted: Arc::clone(admitted), ip: IpAddr::from([10, 0, 0, 1]) } }
    }

    fn next_id(q: &JobQueue) -> Option<u64> {
        match q.pop(Duration::ZERO) {
            Next::Job(j) => Some(j.request.id().n),
            _ => None,
        }
    }

    #[test]
    fn waiting_checks_go_fewest_failures_first_and_the_worst_newest_is_evicted() {
        let (q, a) = (JobQueue::default(), Arc::default());
        for (n, failures) in [(1, 5), (2, 0), (3, 9), (4, 9), (5, 0)] {
            q.push(job(n, failures, &a));
        }
        assert!(q.evict_worst(9).is_none(), "nothing worse than 9 failures waits");
        assert_eq!(q.evict_worst(0).map(|j| j.request.id().n), Some(4), "the newest of the worst");
        let order: Vec<_> = std::iter::from_fn(|| next_id(&q)).collect();
        assert_eq!(order, [2, 5, 1, 3]);
        q.close();
        assert!(matches!(q.pop(Duration::ZERO), Next::Closed));
    }
}
