//! The tokio driver: real sockets and a clock around the sans-IO [`Relay`] (feature `tokio`, on by default).
//!
//! # Threads, tasks and queues
//!
//! ```text
//!  UDP thread i (plain thread, one per socket; n ≥ 1, SO_REUSEPORT when n > 1) — owns shard i, no lock
//!    socket i ──recvmmsg (blocks for the first, ≤64)──► apply queued ShardCmds ─► shard.handle_datagram ─► poll_transmit
//!             ◄──sendmmsg (≤64)──────────────────────── copies (Bytes shared by every recipient)
//!             due shard timers ─► ShardEvents ──────────────────────────────────────────────┐ (unbounded queue)
//!        ▲ ShardCmds (one unbounded queue per thread, in the control plane's order)          │
//!        │            ┌───────────── core task (tokio, current thread) — owns the control plane ▼──────────────┐
//!        └────────────│  Cmd queue (bounded, 1024) ◄── Opened / Bytes / Closed ── connection tasks (1 per TCP)│
//!                     │  per-connection Out queue (bounded, 256) ──► Frame / Close ──► connection task writes │
//!                     │  timer: one tokio Sleep armed from the control plane's deadlines ─► handle_timeout   │
//!                     └─────────────────────────────────────────────────────────────────────────────────────┘
//!  accept task: TcpListener::accept ─► spawns a connection task, sends Cmd::Opened
//! ```
//!
//! * **The UDP threads** (`voice-relay-udp0`…) own the UDP sockets and the shards, and run the forwarding loop as
//!   plain blocking code, the way a hand-written fan-out loop would: one `recvmmsg` with `MSG_WAITFORONE` sleeps in
//!   the kernel until a datagram arrives and returns it with whatever queued behind it (up to 64; one `recv_from`
//!   each elsewhere); then the control plane's queued commands are applied (so a command sent before a datagram
//!   arrived is in force for it), the batch is fed to the thread's shard with one `Instant::now()` (taken when
//!   `recvmmsg` returns) and the transmits are sent with `sendmmsg` in batches of 64 before the thread receives
//!   again (so a receive buffer's datagrams are all sent and dropped before the buffer pool is recycled: no
//!   allocation in steady state; `tests/driver_no_alloc.rs`). No reactor and no lock sit in between. Then the
//!   shard's due timers run (speaking timeout, binding idle timeout, the receiver-report flush once per hint
//!   interval) and its events go to the core task. The socket's read timeout (20 ms) bounds how long a thread takes
//!   to see a shutdown, commands while no datagram comes, and its timers (they are late by at most that).
//! * **One core task** owns the control plane and its timer. It waits (with `select!`, in this priority order)
//!   on shutdown, the command queue from the control tasks, the timer, and the shards' events; after each it
//!   delivers the control events and sends the control plane's commands to every UDP thread.
//! * **Forward latency**: every datagram sent because of a received batch is recorded in a fixed log-scale
//!   histogram (from the return of that batch's `recvmmsg` to the return of the `sendmmsg` that sent it), served
//!   with the counters by [`MetricsHandle`] (the `voice-server` crate serves them over HTTP). HELLO_ACKs are not
//!   in it: a shard sends one only when the control plane's command confirming the binding comes back (so that an
//!   acknowledged client is known to every thread), not as an answer to a batch.
//! * **Logins** ([`auth`](crate::auth)): the control plane emits [`Event::Authenticate`](crate::Event::Authenticate); the
//!   core task checks it with the [`Authenticator`] given to [`Server::bind`] — refused at once while the account
//!   or the address backs off after failed logins ([`LoginBackoff`]), at once when [`Authenticator::is_cheap`]
//!   (tokens), otherwise on the pool's own long-lived threads, bounded in total and per address by [`AuthPool`]
//!   (busy beyond: refused at once) — and feeds the answer back with [`Relay::handle_auth_result`]. The
//!   connection's frames behind the Login wait in its buffer meanwhile (order kept; bounded: a client that keeps
//!   sending is closed).
//! * **Before login** ([`ConnLimits`]): connections that have not logged in are bounded in total and per address
//!   (beyond its address's limit, a new one is closed at once, before any TLS handshake; beyond the total, it
//!   takes the place of the oldest connection of the busiest address if that holds more), and the relay closes one that has no session
//!   `login_timeout` after it opened, whatever it sends; only whole frames count as activity. Failed accepts (out
//!   of file descriptors) pause the accept loop, longer each time in a row (up to 1 s); repeated warnings are
//!   rate-limited (a few lines per 10 s, then how many were left out).
//! * **Idle poll** ([`IdlePoll`], on by default): after 1 s without accepted audio a UDP thread stops sleeping in
//!   `recvmmsg` and instead takes what queued every 20 ms, so idle sessions' keepalives stop waking it one by one;
//!   the first audio packet puts it back. Price: while idle, a HELLO, a PING or the first audio packet waits up to
//!   20 ms.
//! * **One task per TCP connection** (module `control`) only moves bytes: it reads into a buffer and sends the bytes to
//!   the core over the bounded command queue (a full queue makes readers wait: backpressure); the core keeps each
//!   connection's reassembly buffer, calls [`Relay::handle_control_bytes`], encodes each `Event::Send` into a frame
//!   and `try_send`s it to the connection's bounded output queue. `Event::Close` drops that queue after the frames
//!   before it, which ends the task; a connection whose output queue is full (a client that does not read) is closed
//!   and its session detached (it may resume).
//! * **Graceful shutdown** ([`ShutdownHandle::shutdown`]): the core calls [`Relay::shutdown`] (Goodbye
//!   `SHUTTING_DOWN` and close for every connection), the accept task stops, and [`Server::run`] returns the relay
//!   once every connection task has written its Goodbye and ended, or after [`SHUTDOWN_GRACE`]; the UDP threads
//!   stop then.
//!
//! # Several UDP threads (`SO_REUSEPORT`, one shard each)
//!
//! [`Server::with_udp_threads`]`(n)` binds `n` sockets to the same address with `SO_REUSEPORT` (Linux); the kernel
//! spreads clients over them by 4-tuple hash, so one client's datagrams always reach the same thread, in order.
//! Each thread owns a shard: a full replica of the forwarding tables plus the per-packet state of the addresses it
//! receives (see the crate docs, *A data plane without a lock*), so it forwards any packet it receives to the whole
//! room from its own socket without touching another thread's memory. The threads share nothing on the packet
//! path; the control plane's changes reach them as commands. Default: 1 thread. Credential checks never run on a
//! UDP thread.

mod auth;
mod backoff;
mod control;
mod core;
mod metrics;
mod prelogin;
mod tls;
mod udp;
mod workers;

pub use auth::{AUTH_IDLE_RELEASE, AuthPool, MAX_AUTH_WORKERS};
pub use backoff::LoginBackoff;
pub use metrics::{MetricsHandle, MetricsSnapshot};
pub use prelogin::ConnLimits;
/// The rustls version [`Server::with_tls`] takes (for building a `ServerConfig` by hand).
pub use rustls;
pub use tls::{TLS_HANDSHAKE_TIMEOUT, server_config_from_pem};
#[doc(hidden)]
pub use udp::{DEFAULT_UDP_CHUNK, UdpPath};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use self::control::Cmd;
use crate::auth::Authenticator;
use crate::counters::Counters;
use crate::error::DriverError;
use crate::metrics::LatencyHistogram;
use crate::relay::Relay;
use crate::relay::msg::ShardEvent;

/// After a shutdown, how long [`Server::run`] waits for connection tasks to write their Goodbye and end.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Receive and send buffer size asked for the UDP socket (Linux; capped by the kernel's limits).
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Capacity of the command queue from the control tasks to the core task.
const CMD_QUEUE: usize = 1024;

/// How the UDP loop waits while no audio flows ([`Server::with_idle_poll`]).
///
/// After `after` without any accepted audio packet, the loop stops waking for each datagram and instead takes
/// whatever queued up once every `period`; the first accepted audio packet switches it back. Idle sessions'
/// keepalives then cost one wake-up per `period` for all of them instead of one each; the price is that, while
/// idle, a HELLO, a PING or the first audio packet waits up to `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePoll {
    /// Time without audio before the loop goes idle (default 1 s).
    pub after: Duration,
    /// Poll period while idle (default 20 ms).
    pub period: Duration,
}

impl Default for IdlePoll {
    fn default() -> Self {
        Self { after: Duration::from_secs(1), period: Duration::from_millis(20) }
    }
}

/// Most UDP threads ([`Server::with_udp_threads`]).
pub const MAX_UDP_THREADS: usize = 64;

/// Totals of the driver's UDP threads, readable from any thread while it runs ([`Server::stats`]). Each UDP thread
/// adds to them after every turn of its loop (relaxed: each is a running total, not a snapshot of all three).
#[derive(Debug, Default)]
pub struct DriverStats {
    /// Datagrams received on the UDP socket.
    pub datagrams_received: AtomicU64,
    /// Datagrams handed to the kernel for sending.
    pub datagrams_sent: AtomicU64,
    /// Datagrams the kernel refused to send (dropped).
    pub send_errors: AtomicU64,
    /// Control connections closed at once because their address had too many not logged in ([`ConnLimits`]).
    pub prelogin_refused: AtomicU64,
    /// Connections not logged in that were closed to make room for a newcomer ([`ConnLimits`]).
    pub prelogin_evicted: AtomicU64,
    /// Failed accepts on the control listener.
    pub accept_errors: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: AtomicU64,
}

impl DriverStats {
    /// Adds what one thread's `totals` (received, sent, send errors) grew by since `published`.
    fn add(&self, totals: [u64; 3], published: &mut [u64; 3]) {
        let fields = [&self.datagrams_received, &self.datagrams_sent, &self.send_errors];
        for ((field, total), seen) in fields.into_iter().zip(totals).zip(published.iter_mut()) {
            if total != *seen {
                field.fetch_add(total - *seen, Ordering::Relaxed);
                *seen = total;
            }
        }
    }
}

/// What the core task and the UDP threads share: read-mostly snapshots, each written by one thread. (The
/// forwarding state itself is not shared: each UDP thread owns its shard.)
#[derive(Debug)]
struct Shared {
    /// Forward-latency histogram of each UDP thread (copied there at most every [`workers::PUBLISH_EVERY`]).
    latency: Vec<Padded<Mutex<LatencyHistogram>>>,
    /// Counters of each UDP thread's shard (likewise).
    counters: Vec<Padded<Mutex<Counters>>>,
    /// A metrics snapshot's request for fresh copies: the threads copy at once when this is above what they last
    /// answered, record the request they answered in `copied`, and wake `copies` ([`MetricsHandle::snapshot`]).
    copy_request: AtomicU64,
    /// The copy request each UDP thread last answered.
    copied: Vec<Padded<AtomicU64>>,
    /// Woken whenever a UDP thread answered a copy request.
    copies: tokio::sync::Notify,
    /// Datagrams of a receive batch handled before their copies are sent ([`Server::with_udp_chunk`]).
    udp_chunk: usize,
}

/// A value on cache lines of its own: one UDP thread's snapshot, so two threads' writes never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// What a UDP thread sends the core task.
#[derive(Debug)]
enum FromShard {
    /// An event of the shard of thread `.0`.
    Event(usize, ShardEvent),
    /// The thread's socket failed (or the thread panicked): the server ends with this error.
    Failed(DriverError),
}

/// A relay bound to its UDP socket and TCP listener, ready to [`run`](Self::run).
pub struct Server {
    relay: Relay,
    /// One socket per UDP thread (several: all bound to `udp_addr` with `SO_REUSEPORT`).
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    stop: Arc<watch::Sender<bool>>,
    stats: Arc<DriverStats>,
    cmd_tx: mpsc::Sender<Cmd>,
    cmd_rx: mpsc::Receiver<Cmd>,
    idle_poll: Option<IdlePoll>,
    auth: Arc<dyn Authenticator>,
    auth_pool: AuthPool,
    conn_limits: ConnLimits,
    login_backoff: LoginBackoff,
    udp_chunk: usize,
    /// TLS on the control connections.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("relay", &self.relay)
            .field("udp_addr", &self.udp_addr)
            .field("tcp_addr", &self.tcp_addr)
            .field("udp_threads", &self.udp.len())
            .field("auth_pool", &self.auth_pool)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Asks a running [`Server`] to shut down gracefully. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Starts the graceful shutdown: every control connection gets Goodbye `SHUTTING_DOWN` and is closed, new
    /// connections are no longer accepted, and [`Server::run`] returns. Calling it again, or after the server
    /// ended, does nothing.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// Changes a running [`Server`]'s settings without dropping a session ([`Server::reload_handle`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadHandle(mpsc::WeakSender<Cmd>);

impl ReloadHandle {
    /// Checks later logins with `authenticator` (checks already running finish with the old one). Returns whether
    /// the server was running to take it.
    pub async fn set_authenticator(&self, authenticator: Arc<dyn Authenticator>) -> bool {
        let Some(cmds) = self.0.upgrade() else { return false };
        cmds.send(Cmd::SetAuthenticator(control::NewAuthenticator(authenticator))).await.is_ok()
    }

    /// Applies `config` to the running relay without ending a session ([`Relay::reconfigure`]: the control
    /// plane's limits, timeouts and rooms). `None` if the server is not running; `Some(Err)` (nothing changed) for
    /// a configuration [`Relay::new`] would refuse.
    pub async fn reconfigure(&self, config: crate::RelayConfig) -> Option<Result<(), crate::Error>> {
        let cmds = self.0.upgrade()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        cmds.send(Cmd::Reconfigure { config: Box::new(config), reply }).await.ok()?;
        drop(cmds);
        rx.await.ok()
    }
}

impl Server {
    /// Binds the UDP socket and the TCP listener (port 0 picks a free port; see [`udp_addr`](Self::udp_addr)).
    /// Logins are checked with `authenticator` (see the module docs; an `Arc` of one works too). Needs no runtime:
    /// the sockets join the runtime that runs [`run`](Self::run).
    pub fn bind(
        relay: Relay,
        authenticator: impl Authenticator + 'static,
        udp: SocketAddr,
        tcp: SocketAddr,
    ) -> Result<Self, DriverError> {
        let udp = std::net::UdpSocket::bind(udp).map_err(|source| DriverError::Bind { what: "udp", source })?;
        Self::bind_with_udp(relay, Arc::new(authenticator), udp, tcp)
    }

    /// [`bind`](Self::bind) with an already bound UDP socket.
    fn bind_with_udp(
        mut relay: Relay,
        auth: Arc<dyn Authenticator>,
        udp: std::net::UdpSocket,
        tcp: SocketAddr,
    ) -> Result<Self, DriverError> {
        let bind = |what| move |source| DriverError::Bind { what, source };
        tune_udp(&udp).map_err(bind("udp"))?;
        let tcp = std::net::TcpListener::bind(tcp).map_err(bind("tcp"))?;
        tcp.set_nonblocking(true).map_err(bind("tcp"))?;
        let udp_addr = udp.local_addr().map_err(bind("udp"))?;
        // Clients learn the UDP port from LoginOk: announce the one bound (the configured port may be 0).
        relay.set_udp_port(udp_addr.port());
        let tcp_addr = tcp.local_addr().map_err(bind("tcp"))?;
        let (stop, _) = watch::channel(false);
        let (cmd_tx, cmd_rx) = mpsc::channel(CMD_QUEUE);
        Ok(Self {
            relay,
            udp: vec![udp],
            tcp,
            udp_addr,
            tcp_addr,
            stop: Arc::new(stop),
            stats: Arc::default(),
            cmd_tx,
            cmd_rx,
            idle_poll: Some(IdlePoll::default()),
            auth,
            auth_pool: AuthPool::default(),
            conn_limits: ConnLimits::default(),
            login_backoff: LoginBackoff::default(),
            udp_chunk: DEFAULT_UDP_CHUNK,
            tls: None,
        })
    }

    /// How the UDP loop waits while no audio flows: [`IdlePoll::default`] (the default: poll every 20 ms after 1 s
    /// without audio), or `None` to always wake per datagram. A zero `period` means `None`.
    #[must_use]
    pub fn with_idle_poll(mut self, idle_poll: Option<IdlePoll>) -> Self {
        self.idle_poll = idle_poll.filter(|p| !p.period.is_zero());
        self
    }

    /// Runs the UDP path on `threads` threads (default 1; at most [`MAX_UDP_THREADS`]; Linux only beyond 1): the
    /// socket is replaced by `threads` sockets bound to the same address with `SO_REUSEPORT`, so the kernel spreads
    /// clients over them by address hash (one client's datagrams always reach the same thread, in order). Each
    /// thread runs its own `recvmmsg` → shard → `sendmmsg` loop on its own shard of the forwarding state (no lock;
    /// see the module docs). The idle poll
    /// ([`with_idle_poll`](Self::with_idle_poll)) applies to each thread.
    pub fn with_udp_threads(mut self, threads: usize) -> Result<Self, DriverError> {
        let bind = |source| DriverError::Bind { what: "udp", source };
        if threads == 0 || threads > MAX_UDP_THREADS {
            return Err(bind(std::io::Error::new(std::io::ErrorKind::InvalidInput, "UDP threads must be 1 to 64")));
        }
        if threads == self.udp.len() {
            return Ok(self);
        }
        #[cfg(not(target_os = "linux"))]
        {
            return Err(bind(std::io::Error::new(std::io::ErrorKind::Unsupported, "several UDP threads need Linux")));
        }
        #[cfg(target_os = "linux")]
        {
            // Every socket on the port needs SO_REUSEPORT before its bind: rebind them all on the same address.
            self.udp.clear();
            for _ in 0..threads {
                let sock = workers::reuseport_socket(self.udp_addr).map_err(bind)?;
                tune_udp(&sock).map_err(bind)?;
                self.udp.push(sock);
            }
            Ok(self)
        }
    }

    /// Serves the control connections over TLS with `config` (e.g. from [`server_config_from_pem`]): a client must
    /// complete the handshake within [`TLS_HANDSHAKE_TIMEOUT`]; one that speaks plain TCP, or fails the handshake,
    /// is dropped before the relay sees it. The UDP audio path is unchanged (sealed with the media keys, which
    /// then travel inside TLS).
    #[must_use]
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Sends the copies of each `chunk` datagrams of a receive batch (up to 64) before handling the next ones
    /// (default [`DEFAULT_UDP_CHUNK`]; 64 or more: the whole batch, then its copies). Smaller chunks cut the time a
    /// packet's copies wait behind the rest of its batch, at the cost of more, smaller `sendmmsg` calls and one
    /// lock per chunk. 0 counts as 1.
    #[must_use]
    pub fn with_udp_chunk(mut self, chunk: usize) -> Self {
        self.udp_chunk = chunk.max(1);
        self
    }

    /// Sizes the pool that checks slow credentials (default [`AuthPool::default`]: one thread per core, 4 waiting
    /// per thread, 4 per client address; beyond, logins are refused at once with Error `RATE_LIMITED`).
    #[must_use]
    pub fn with_auth_pool(mut self, pool: AuthPool) -> Self {
        self.auth_pool = pool;
        self
    }

    /// Bounds the control connections that have not logged in (default [`ConnLimits::default`]: 128 in total, 8
    /// per address); beyond, a new connection is closed at once. See also `RelayConfig::login_timeout`.
    #[must_use]
    pub fn with_conn_limits(mut self, limits: ConnLimits) -> Self {
        self.conn_limits = limits;
        self
    }

    /// How logins back off after failures, per account and per address (default [`LoginBackoff::default`]).
    #[must_use]
    pub fn with_login_backoff(mut self, backoff: LoginBackoff) -> Self {
        self.login_backoff = backoff;
        self
    }

    /// A handle that changes the running server's authenticator (e.g. on a configuration reload). It does not
    /// keep the server alive.
    #[must_use]
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle(self.cmd_tx.downgrade())
    }

    /// A handle that takes snapshots of the running relay's counters and forward-latency histogram. It does not keep
    /// the server alive.
    #[must_use]
    pub fn metrics_handle(&self) -> MetricsHandle {
        MetricsHandle::new(self.cmd_tx.downgrade())
    }

    /// The bound UDP address.
    #[must_use]
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound TCP (control) address.
    #[must_use]
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The UDP loop's totals, shared with the running server.
    #[must_use]
    pub fn stats(&self) -> Arc<DriverStats> {
        Arc::clone(&self.stats)
    }

    /// A handle that shuts this server down.
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(Arc::clone(&self.stop))
    }

    /// Runs the relay on a new thread named `voice-relay` with its own current-thread runtime (the usual way to run
    /// it; see the module docs). The thread ends, returning the relay, after a shutdown.
    pub fn spawn(self) -> Result<std::thread::JoinHandle<Result<Relay, DriverError>>, DriverError> {
        std::thread::Builder::new()
            .name("voice-relay".into())
            .spawn(move || {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(DriverError::Runtime)?;
                rt.block_on(self.run())
            })
            .map_err(DriverError::Runtime)
    }

    /// Runs the relay until shut down (see the module docs for the tasks it spawns); returns the relay, e.g. to read
    /// its counters. Fails if a UDP socket fails (not for errors about one datagram or one peer).
    ///
    /// The future is `Send`: it can run on any tokio runtime, with `tokio::spawn` or `block_on`. It spawns the
    /// control tasks with `tokio::spawn` on that runtime; the UDP threads are its own plain threads.
    pub async fn run(self) -> Result<Relay, DriverError> {
        let Self {
            relay,
            udp,
            tcp,
            stop,
            stats,
            cmd_tx,
            cmd_rx,
            idle_poll,
            auth,
            auth_pool,
            conn_limits,
            login_backoff,
            udp_chunk,
            tls,
            ..
        } = self;
        let weak_cmds = cmd_tx.downgrade();
        let udp_stop = Arc::new(AtomicBool::new(false));
        // However this future ends — returned, failed, dropped unfinished (an aborted task) or by a panic — the UDP
        // threads and the accept loop stop.
        let mut stop_all = StopOnDrop { udp: Arc::clone(&udp_stop), tasks: Arc::clone(&stop), threads: Vec::new() };
        let tcp = TcpListener::from_std(tcp).map_err(|source| DriverError::Bind { what: "tcp", source })?;
        let tls = tls.map(tokio_rustls::TlsAcceptor::from);
        let prelogin = prelogin::PreLogin::new(conn_limits);
        let accept = control::Accept { tls, cmds: cmd_tx, stop: stop.subscribe(), prelogin, stats: Arc::clone(&stats) };
        tokio::spawn(control::accept_loop(tcp, accept));
        // One shard per UDP thread, each brought to the relay's current state; they flush receiver-report totals
        // to the core task once per hint interval.
        let mut relay = relay;
        #[allow(clippy::disallowed_methods, reason = "the driver owns the clock: the new shards' buckets start now")]
        let now = std::time::Instant::now();
        relay.set_shards(udp.len(), now);
        let (control, shards, retired) = relay.into_parts();
        let shared = Arc::new(Shared {
            latency: udp.iter().map(|_| Padded::default()).collect(),
            counters: udp.iter().map(|_| Padded::default()).collect(),
            copy_request: AtomicU64::new(0),
            copied: udp.iter().map(|_| Padded::default()).collect(),
            copies: tokio::sync::Notify::new(),
            udp_chunk,
        });
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut shard_cmds = Vec::with_capacity(udp.len());
        let mut threads = Vec::with_capacity(udp.len());
        let hint_interval = control.s.cfg.hint_interval;
        for (index, (sock, mut shard)) in udp.into_iter().zip(shards).enumerate() {
            shard.s.loss_flush = Some(hint_interval);
            let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
            shard_cmds.push(cmd_tx);
            let cx = workers::Context {
                shared: Arc::clone(&shared),
                stats: Arc::clone(&stats),
                stop: Arc::clone(&udp_stop),
                idle_poll,
                cmds: cmd_rx,
                events: events_tx.clone(),
            };
            match workers::spawn(index, sock, shard, cx) {
                Ok(t) => threads.push(t),
                Err(e) => {
                    udp_stop.store(true, Ordering::Relaxed);
                    workers::join(threads).await;
                    return Err(DriverError::Runtime(e));
                }
            }
        }
        drop(events_tx);
        stop_all.threads = threads;
        let verifier = auth::Verifier::new(auth, auth_pool, login_backoff, weak_cmds);
        let links = core::ShardLinks { cmds: shard_cmds, events: events_rx, retired };
        let mut core = core::Core::new(control, links, Arc::clone(&shared), stats, verifier);
        let result = core.run(cmd_rx, stop.subscribe()).await;
        udp_stop.store(true, Ordering::Relaxed);
        let shards = workers::join(std::mem::take(&mut stop_all.threads)).await;
        let (control, retired) = core.into_parts();
        result?;
        Ok(Relay::from_parts(control, shards, retired))
    }
}

/// Stops the UDP threads (they see the flag within their 20 ms read timeout) and the control tasks when
/// [`Server::run`] ends in any way. The threads `run` has not joined itself — it was dropped unfinished, as an
/// aborted task is — are joined here, so their sockets are closed when the drop returns (a wait of at most one
/// read timeout, on whatever thread drops the future).
struct StopOnDrop {
    udp: Arc<AtomicBool>,
    tasks: Arc<watch::Sender<bool>>,
    threads: Vec<workers::Worker>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.udp.store(true, Ordering::Relaxed);
        self.tasks.send_replace(true);
        for (handle, _) in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Larger kernel buffers absorb bursts while a UDP thread is descheduled. Best effort: the kernel caps them at
/// net.core.rmem_max / wmem_max, and a failure only leaves the defaults.
fn tune_udp(sock: &std::net::UdpSocket) -> std::io::Result<()> {
    sock.set_nonblocking(true)?;
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        let _ = setsockopt(sock, sockopt::RcvBuf, &UDP_BUFFER_BYTES);
        let _ = setsockopt(sock, sockopt::SndBuf, &UDP_BUFFER_BYTES);
    }
    Ok(())
}

/// Resolves once the shutdown flag is set (never, if every sender is gone without setting it).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}
