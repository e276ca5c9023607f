//! The tokio driver: real sockets and a clock around the sans-IO [`Relay`] (feature `tokio`, on by default).
//!
//! # Threads, tasks and queues
//!
//! ```text
//!                     ┌──────────────────────────── core task (owns the Relay) ─────────────────────────────┐
//!  UDP socket ──recvmmsg (≤64)──► handle_datagram ─► poll_transmit ──sendmmsg (≤64)──► UDP socket           │
//!                     │  Cmd queue (bounded, 1024) ◄── Opened / Bytes / Closed ── connection tasks (1 per TCP)│
//!                     │  per-connection Out queue (bounded, 256) ──► Frame / Close ──► connection task writes │
//!                     │  timer: one tokio Sleep armed from poll_timeout ─► handle_timeout                    │
//!                     └─────────────────────────────────────────────────────────────────────────────────────┘
//!  accept task: TcpListener::accept ─► spawns a connection task, sends Cmd::Opened
//! ```
//!
//! * **One core task** owns the [`Relay`] and the UDP socket. It waits (with `select!`, in this priority order) on
//!   shutdown, the command queue from the control tasks, the timer, and UDP readiness. On UDP readiness it takes up
//!   to 64 datagrams per `recvmmsg` (Linux; one `recv_from` each elsewhere), feeds them to the relay with one
//!   `Instant::now()` per batch, then sends every transmit with `sendmmsg` in batches of 64 before it receives again
//!   (so a receive buffer's datagrams are all sent and dropped before the buffer pool is recycled: no allocation in
//!   steady state). After every input it drains the relay in the documented order: transmits, then events, then
//!   the timeout.
//! * **One task per TCP connection** (module `control`) only moves bytes: it reads into a buffer and sends the bytes to
//!   the core over the bounded command queue (a full queue makes readers wait: backpressure); the core keeps each
//!   connection's reassembly buffer, calls [`Relay::handle_control_bytes`], encodes each `Event::Send` into a frame
//!   and `try_send`s it to the connection's bounded output queue. `Event::Close` drops that queue after the frames
//!   before it, which ends the task; a connection whose output queue is full (a client that does not read) is closed
//!   and its session detached (it may resume).
//! * **Graceful shutdown** ([`ShutdownHandle::shutdown`]): the core calls [`Relay::shutdown`] (Goodbye
//!   `SHUTTING_DOWN` and close for every connection), the accept task stops, and [`Server::run`] returns the relay
//!   once every connection task has written its Goodbye and ended, or after [`SHUTDOWN_GRACE`].
//!
//! # Threading: one core, by design
//!
//! The relay state is one single-threaded state machine, so this driver runs it on **one task**: run
//! [`Server::run`] on a current-thread runtime in a dedicated thread (the control tasks then share that thread,
//! which is cheap: control traffic is small), or on a multi-thread runtime (control tasks spread over the workers,
//! the core task stays one task). The UDP path is therefore bounded by one core.
//!
//! Scaling past one core is **not** done here. The two designs and their trade-off: (a) `SO_REUSEPORT` with one
//! socket and one relay shard per thread — the kernel spreads datagrams by 4-tuple hash, so a session's packets do
//! not reliably reach the shard that knows it (and a room's members sit on different shards): it needs either
//! steering (e.g. a per-shard port announced in LoginOk) or cross-shard forwarding; (b) one shared `Relay` behind a
//! lock: every datagram takes the lock, which becomes the contention point and costs more than it saves on two
//! cores. Per-room sharding with a per-shard UDP port is the natural next step.

mod control;
mod http;
mod udp;

pub use http::{MAX_REQUEST_BYTES, MetricsHandle, MetricsSnapshot};
#[doc(hidden)]
pub use udp::UdpPath;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};

use self::control::{Cmd, Out};
use self::udp::{BATCH, BatchRecv, BatchSend};
use crate::error::DriverError;
use crate::relay::{ConnId, Event, Relay};

/// After a shutdown, how long [`Server::run`] waits for connection tasks to write their Goodbye and end.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Receive and send buffer size asked for the UDP socket (Linux; capped by the kernel's limits).
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Capacity of the command queue from the control tasks to the core task.
const CMD_QUEUE: usize = 1024;

/// Most UDP batches handled in a row before the core task looks at control commands and the timer again.
const UDP_BATCHES_PER_TURN: usize = 16;

/// Totals of the driver's UDP loop, readable from any thread while it runs ([`Server::stats`]). Updated by the
/// core task after every turn of its loop (relaxed stores: each is a consistent total, not a snapshot of all three).
#[derive(Debug, Default)]
pub struct DriverStats {
    /// Datagrams received on the UDP socket.
    pub datagrams_received: AtomicU64,
    /// Datagrams handed to the kernel for sending.
    pub datagrams_sent: AtomicU64,
    /// Datagrams the kernel refused to send (dropped).
    pub send_errors: AtomicU64,
}

/// A relay bound to its UDP socket and TCP listener, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct Server {
    relay: Relay,
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    stop: Arc<watch::Sender<bool>>,
    stats: Arc<DriverStats>,
    cmd_tx: mpsc::Sender<Cmd>,
    cmd_rx: mpsc::Receiver<Cmd>,
    metrics: Option<(std::net::TcpListener, SocketAddr)>,
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

impl Server {
    /// Binds the UDP socket and the TCP listener (port 0 picks a free port; see [`udp_addr`](Self::udp_addr)).
    /// Needs no runtime: the sockets join the runtime that runs [`run`](Self::run).
    /// The relay announces the bound UDP port to clients ([`Relay::set_udp_port`]).
    pub fn bind(mut relay: Relay, udp: SocketAddr, tcp: SocketAddr) -> Result<Self, DriverError> {
        let bind = |what| move |source| DriverError::Bind { what, source };
        let udp = std::net::UdpSocket::bind(udp).map_err(bind("udp"))?;
        udp.set_nonblocking(true).map_err(bind("udp"))?;
        // Larger kernel buffers absorb bursts while the core task is descheduled. Best effort: the kernel caps
        // them at net.core.rmem_max / wmem_max, and a failure only leaves the defaults.
        #[cfg(target_os = "linux")]
        {
            use nix::sys::socket::{setsockopt, sockopt};
            let _ = setsockopt(&udp, sockopt::RcvBuf, &UDP_BUFFER_BYTES);
            let _ = setsockopt(&udp, sockopt::SndBuf, &UDP_BUFFER_BYTES);
        }
        let tcp = std::net::TcpListener::bind(tcp).map_err(bind("tcp"))?;
        tcp.set_nonblocking(true).map_err(bind("tcp"))?;
        let udp_addr = udp.local_addr().map_err(bind("udp"))?;
        relay.set_udp_port(udp_addr.port());
        let tcp_addr = tcp.local_addr().map_err(bind("tcp"))?;
        let (stop, _) = watch::channel(false);
        let (cmd_tx, cmd_rx) = mpsc::channel(CMD_QUEUE);
        Ok(Self {
            relay,
            udp,
            tcp,
            udp_addr,
            tcp_addr,
            stop: Arc::new(stop),
            stats: Arc::default(),
            cmd_tx,
            cmd_rx,
            metrics: None,
        })
    }

    /// Also serves the metrics in the Prometheus text format at `GET /metrics` on `addr` (HTTP/1.1, one request per
    /// connection, requests over [`MAX_REQUEST_BYTES`] refused). Binds now (port 0 picks a free port; see
    /// [`metrics_addr`](Self::metrics_addr)).
    pub fn with_metrics(mut self, addr: SocketAddr) -> Result<Self, DriverError> {
        let bind = |source| DriverError::Bind { what: "metrics", source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        self.metrics = Some((listener, local));
        Ok(self)
    }

    /// The bound metrics address, if [`with_metrics`](Self::with_metrics) was called.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.1)
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
    /// its counters. Fails only if the UDP socket fails as a whole.
    ///
    /// The future is not `Send` (the batched-I/O headers hold raw pointers), so it cannot be given to
    /// `tokio::spawn`: drive it with `Runtime::block_on` (as [`spawn`](Self::spawn) does) or `spawn_local`. It
    /// spawns the control tasks with `tokio::spawn`, on whatever runtime drives it.
    pub async fn run(self) -> Result<Relay, DriverError> {
        let Self { relay, udp, tcp, stop, stats, cmd_tx, cmd_rx, metrics, .. } = self;
        let udp = UdpSocket::from_std(udp).map_err(DriverError::Udp)?;
        let tcp = TcpListener::from_std(tcp).map_err(|source| DriverError::Bind { what: "tcp", source })?;
        if let Some((listener, _)) = metrics {
            let listener =
                TcpListener::from_std(listener).map_err(|source| DriverError::Bind { what: "metrics", source })?;
            tokio::spawn(http::serve(listener, MetricsHandle::new(cmd_tx.downgrade()), stop.subscribe()));
        }
        tokio::spawn(control::accept_loop(tcp, cmd_tx, stop.subscribe()));
        let mut core = Core {
            relay,
            conns: HashMap::new(),
            recv: BatchRecv::new(),
            send: BatchSend::new(),
            frame: BytesMut::with_capacity(64 * 1024),
            received: 0,
            stats,
        };
        core.run(&udp, cmd_rx, stop.subscribe()).await?;
        Ok(core.relay)
    }
}

/// Resolves once the shutdown flag is set (never, if every sender is gone without setting it).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A control connection as the core task sees it.
#[derive(Debug)]
struct ConnState {
    /// Its output queue.
    tx: mpsc::Sender<Out>,
    /// Bytes read but not yet a complete frame.
    buf: BytesMut,
}

/// The state of the core task.
#[derive(Debug)]
struct Core {
    relay: Relay,
    conns: HashMap<ConnId, ConnState>,
    recv: BatchRecv,
    send: BatchSend,
    /// Encoding buffer for control frames.
    frame: BytesMut,
    /// Datagrams received so far.
    received: u64,
    stats: Arc<DriverStats>,
}

impl Core {
    async fn run(
        &mut self,
        udp: &UdpSocket,
        mut cmds: mpsc::Receiver<Cmd>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), DriverError> {
        // A deadline far enough away to mean "no timer" (tokio clamps it anyway).
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut stopping: Option<Instant> = None;
        let mut busy = false;
        loop {
            // Re-arm only when the deadline moves earlier: a timer firing early is harmless (handle_timeout just
            // finds nothing due), and re-registering on every packet is not free.
            let next = self.relay.poll_timeout();
            if let Some(t) = next
                && armed.is_none_or(|a| t < a)
            {
                armed = Some(t);
                sleep.as_mut().reset(t.into());
            }
            let grace_over = stopping.map(|t| t + SHUTDOWN_GRACE);
            tokio::select! {
                biased;
                () = stopped(&mut stop), if stopping.is_none() => {
                    let now = Instant::now();
                    stopping = Some(now);
                    self.relay.shutdown(now);
                }
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd, stopping.is_some()),
                    // The accept task and every connection task have ended: only after a shutdown.
                    None => {
                        self.flush_udp_all(udp).await?;
                        return Ok(());
                    }
                },
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    sleep.as_mut().reset(far());
                    self.relay.handle_timeout(Instant::now());
                }
                () = tokio::time::sleep_until(grace_over.unwrap_or_else(Instant::now).into()), if grace_over.is_some() => {
                    // Connection tasks that did not finish in time are left behind.
                    self.flush_udp_all(udp).await?;
                    return Ok(());
                }
                r = udp.writable(), if self.send.is_blocked() => r.map_err(DriverError::Udp)?,
                r = udp.readable(), if !self.send.is_blocked() => {
                    r.map_err(DriverError::Udp)?;
                    busy = self.receive(udp)?;
                }
            }
            self.flush_udp(udp, None)?;
            self.flush_events();
            self.stats.datagrams_received.store(self.received, Ordering::Relaxed);
            self.stats.datagrams_sent.store(self.send.sent, Ordering::Relaxed);
            self.stats.send_errors.store(self.send.errors, Ordering::Relaxed);
            if std::mem::take(&mut busy) {
                // The socket still has datagrams queued: under sustained load UDP readiness never stops, so give
                // the runtime a turn (connection tasks on this thread, the timer driver) before the next batches.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Takes up to [`UDP_BATCHES_PER_TURN`] batches of datagrams, sending each batch's output before the next.
    /// Returns whether the socket may still hold datagrams (every batch was full).
    fn receive(&mut self, udp: &UdpSocket) -> Result<bool, DriverError> {
        for _ in 0..UDP_BATCHES_PER_TURN {
            match udp::forward_batch(&mut self.relay, &mut self.recv, &mut self.send, udp) {
                Ok(b) => {
                    self.received += b.received as u64;
                    if let Err(e) = b.sent {
                        udp_error(e)?;
                    }
                    if b.received < BATCH || self.send.is_blocked() {
                        return Ok(false);
                    }
                }
                Err(e) => return udp_error(e).map(|()| false),
            }
        }
        Ok(true)
    }

    /// Sends the relay's transmits as far as the socket takes them without waiting. `origin`: the receive time of
    /// the datagram batch they answer, if they do (for the forward-latency histogram).
    fn flush_udp(&mut self, udp: &UdpSocket, origin: Option<Instant>) -> Result<(), DriverError> {
        let relay = &mut self.relay;
        match self.send.send(udp, origin, || relay.poll_transmit()) {
            Ok(()) => Ok(()),
            Err(e) => udp_error(e),
        }
    }

    /// Sends every transmit, waiting for the socket if needed (used on the way out).
    async fn flush_udp_all(&mut self, udp: &UdpSocket) -> Result<(), DriverError> {
        loop {
            self.flush_udp(udp, None)?;
            if !self.send.is_blocked() {
                return Ok(());
            }
            udp.writable().await.map_err(DriverError::Udp)?;
        }
    }

    fn command(&mut self, cmd: Cmd, stopping: bool) {
        let now = Instant::now();
        match cmd {
            Cmd::Opened { conn, tx } => {
                if stopping {
                    // Dropping `tx` closes the new connection at once.
                    return;
                }
                self.relay.connection_opened(now, conn);
                self.conns.insert(conn, ConnState { tx, buf: BytesMut::new() });
            }
            Cmd::Bytes { conn, bytes } => {
                // Bytes of a connection the core already closed are not fed to the relay (see `Event::Close`).
                let Some(c) = self.conns.get_mut(&conn) else { return };
                if c.buf.is_empty() {
                    c.buf = bytes;
                } else {
                    c.buf.extend_from_slice(&bytes);
                }
                self.relay.handle_control_bytes(now, conn, &mut c.buf);
            }
            Cmd::Closed { conn } => {
                if self.conns.remove(&conn).is_some() {
                    self.relay.connection_closed(now, conn);
                }
            }
            Cmd::Metrics { reply } => {
                let _ = reply.send(Box::new(MetricsSnapshot {
                    counters: self.relay.counters().clone(),
                    forward_latency: self.send.latency.clone(),
                    datagrams_received: self.received,
                    datagrams_sent: self.send.sent,
                    send_errors: self.send.errors,
                }));
            }
        }
    }

    /// Delivers the relay's control events to the connection tasks.
    fn flush_events(&mut self) {
        while let Some(event) = self.relay.poll_event() {
            match event {
                Event::Send { conn, msg } => {
                    let Some(c) = self.conns.get(&conn) else { continue };
                    if self.frame.capacity() < 8 * 1024 {
                        self.frame.reserve(64 * 1024);
                    }
                    // The relay only emits messages within the protocol's caps (its tests check every message
                    // encodes); if one did not, it is skipped rather than sent half-written.
                    if msg.encode(&mut self.frame).is_err() {
                        continue;
                    }
                    let frame = self.frame.split().freeze();
                    if c.tx.try_send(Out::Frame(frame)).is_err() {
                        // The client does not read (queue full) or its task ended: forget the connection (its
                        // session is detached and may resume); dropping the queue ends the task.
                        self.conns.remove(&conn);
                        self.relay.connection_closed(Instant::now(), conn);
                    }
                }
                Event::Close { conn } => {
                    if let Some(c) = self.conns.remove(&conn) {
                        // If the queue is full, dropping it closes the connection after the queued frames anyway.
                        let _ = c.tx.try_send(Out::Close);
                    }
                }
            }
        }
    }
}

/// Sorts a UDP error: `WouldBlock` and errors about one datagram or one peer are not fatal.
fn udp_error(e: io::Error) -> Result<(), DriverError> {
    match e.kind() {
        io::ErrorKind::WouldBlock
        | io::ErrorKind::Interrupted
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => Ok(()),
        _ => Err(DriverError::Udp(e)),
    }
}
