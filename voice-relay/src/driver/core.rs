//! The core task: the control plane of the relay (which it owns: no lock), the control connections' queues, the
//! timer, and the queues to and from the UDP threads' shards. It does no UDP I/O: transmits come only from
//! datagrams, and the UDP thread whose shard handled a datagram sends its output.
#![allow(clippy::disallowed_methods, reason = "the driver owns the clock: it reads `now` for the relay")]

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::{mpsc, watch};
use voice_proto::control::Message;

use super::auth::Verifier;
use super::control::{Cmd, Out};
use super::udp;
use super::{DriverStats, FromShard, MetricsSnapshot, SHUTDOWN_GRACE, Shared, stopped};
use crate::auth::{AuthId, UserInfo};
use crate::counters::Counters;
use crate::error::{AuthError, DriverError};
use crate::relay::control::Control;
use crate::relay::msg::ShardCmd;
use crate::relay::{ConnId, Event};
use voice_proto::control::ServerMessage;

/// The core task's ends of the queues to and from the shards.
#[derive(Debug)]
pub(super) struct ShardLinks {
    /// One command queue per UDP thread (unbounded: commands come from rate-limited control messages and timers,
    /// and a thread drains its queue at least every 20 ms).
    pub(super) cmds: Vec<std::sync::mpsc::Sender<ShardCmd>>,
    /// The shards' events (and a thread's failure).
    pub(super) events: mpsc::UnboundedReceiver<FromShard>,
    /// Counters of shards no thread runs any more.
    pub(super) retired: Counters,
}

/// Most control bytes buffered for a connection. The relay takes every complete frame off the buffer, so it
/// holds at most one incomplete frame (< `MAX_FRAME_LEN` + prefix) plus one read, except while a login is checked:
/// then the frames behind the Login wait in it, and a client that keeps sending is closed rather than buffered
/// without bound.
const BUFFERED_BYTES_MAX: usize = 2 * voice_proto::control::MAX_FRAME_LEN;

/// A control connection as the core task sees it.
#[derive(Debug)]
struct ConnState {
    /// Its output queue.
    tx: mpsc::Sender<Out>,
    /// The client's address.
    peer: std::net::SocketAddr,
    /// Counts the connection among those not logged in, until it logs in (or closes).
    prelogin: Option<super::prelogin::PreLoginSlot>,
    /// Bytes read but not yet taken by the relay (an incomplete frame, or frames behind a Login being checked).
    buf: BytesMut,
}

/// The state of the core task.
#[derive(Debug)]
pub(super) struct Core {
    control: Control,
    links: ShardLinks,
    shared: Arc<Shared>,
    conns: HashMap<ConnId, ConnState>,
    /// Encoding buffer for control frames.
    frame: BytesMut,
    stats: Arc<DriverStats>,
    /// Credential checks (inline or on the verification pool).
    verifier: Verifier,
}

impl Core {
    pub(super) fn new(
        control: Control,
        links: ShardLinks,
        shared: Arc<Shared>,
        stats: Arc<DriverStats>,
        verifier: Verifier,
    ) -> Self {
        let frame = BytesMut::with_capacity(64 * 1024);
        Self { control, links, shared, conns: HashMap::new(), frame, stats, verifier }
    }

    /// The control plane and the retired shards' counters, when the server stops.
    pub(super) fn into_parts(self) -> (Control, Counters) {
        (self.control, self.links.retired)
    }

    /// Sends the control plane's queued commands to every shard, in order.
    fn send_commands(&mut self) {
        while let Some(cmd) = self.control.cmds.pop_front() {
            if let Some((last, rest)) = self.links.cmds.split_last() {
                for tx in rest {
                    // A thread that ended takes no more commands; the server is stopping then.
                    let _ = tx.send(cmd.clone());
                }
                let _ = last.send(cmd);
            }
        }
    }

    /// Hands one message of a UDP thread to the control plane.
    fn on_shard_message(&mut self, msg: FromShard) -> Result<(), DriverError> {
        match msg {
            FromShard::Event(shard, event) => self.control.handle_shard_event(shard, event),
            FromShard::Failed(e) => return Err(e),
        }
        Ok(())
    }

    pub(super) async fn run(
        &mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), DriverError> {
        // A deadline far enough away to mean "no timer" (tokio clamps it anyway).
        let far = || tokio::time::Instant::now() + Duration::from_secs(86_400);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut stopping: Option<Instant> = None;
        loop {
            // Re-arm only when the deadline moves earlier: a timer firing early is harmless (handle_timeout just
            // finds nothing due), and re-registering on every wake-up is not free.
            let next = self.control.poll_timeout();
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
                    self.control.shutdown(now);
                }
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd, stopping.is_some()),
                    // The accept task and every connection task have ended: only after a shutdown.
                    None => return Ok(()),
                },
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    sleep.as_mut().reset(far());
                    self.control.handle_timeout(Instant::now());
                }
                // Events of the shards (speaking, bindings, loss reports), or a UDP thread's failure: all that
                // queued, at once.
                Some(msg) = self.links.events.recv() => {
                    self.on_shard_message(msg)?;
                    while let Ok(msg) = self.links.events.try_recv() {
                        self.on_shard_message(msg)?;
                    }
                }
                // Connection tasks that did not finish in time are left behind.
                () = tokio::time::sleep_until(grace_over.unwrap_or_else(Instant::now).into()), if grace_over.is_some() => {
                    return Ok(());
                }
            }
            self.flush_events();
        }
    }

    fn command(&mut self, cmd: Cmd, stopping: bool) {
        let now = Instant::now();
        match cmd {
            Cmd::Opened { conn, tx, peer, slot } => {
                if stopping {
                    // Dropping `tx` closes the new connection at once.
                    return;
                }
                self.control.connection_opened(now, conn);
                self.conns.insert(conn, ConnState { tx, peer, prelogin: Some(slot), buf: BytesMut::new() });
            }
            Cmd::Reconfigure { config, reply } => {
                let result = crate::relay::settings(*config).map(|s| self.control.reconfigure(now, s));
                if let Err(e) = &result {
                    tracing::warn!(error = %e, "configuration not applied");
                }
                let _ = reply.send(result);
            }
            Cmd::SetAuthenticator(auth) => {
                tracing::info!("authenticator replaced");
                self.verifier.set_authenticator(auth.0);
            }
            Cmd::Bytes { conn, bytes } => {
                // Bytes of a connection the core already closed are not fed to the relay (see `Event::Close`).
                let Some(c) = self.conns.get_mut(&conn) else { return };
                if c.buf.len() + bytes.len() > BUFFERED_BYTES_MAX {
                    // Only while its login is checked (see the constant): the relay (and its rate limits) cannot
                    // see these bytes yet.
                    tracing::warn!(conn = conn.0, "control bytes piling up while the login is checked: closed");
                    self.conns.remove(&conn);
                    self.control.connection_closed(now, conn);
                    return;
                }
                if c.buf.is_empty() {
                    c.buf = bytes;
                } else {
                    c.buf.extend_from_slice(&bytes);
                }
                self.feed(conn, now);
            }
            Cmd::Authenticated { id, result } => {
                self.verifier.finished(id, &result, now);
                self.authenticated(now, id, result);
            }
            Cmd::Closed { conn } => {
                if self.conns.remove(&conn).is_some() {
                    self.control.connection_closed(now, conn);
                }
            }
            Cmd::Shared { reply } => {
                let _ = reply.send(Arc::clone(&self.shared));
            }
            Cmd::Metrics { reply } => {
                let mut forward_latency = crate::metrics::LatencyHistogram::new();
                for worker in &self.shared.latency {
                    forward_latency.merge(&udp::lock(&worker.0));
                }
                let mut counters = self.control.counters.clone();
                counters.absorb(&self.links.retired);
                for shard in &self.shared.counters {
                    counters.absorb(&udp::lock(&shard.0));
                }
                let totals = &self.stats;
                let _ = reply.send(Box::new(MetricsSnapshot {
                    counters,
                    forward_latency,
                    datagrams_received: totals.datagrams_received.load(Ordering::Relaxed),
                    datagrams_sent: totals.datagrams_sent.load(Ordering::Relaxed),
                    send_errors: totals.send_errors.load(Ordering::Relaxed),
                    prelogin_refused: totals.prelogin_refused.load(Ordering::Relaxed),
                    prelogin_evicted: totals.prelogin_evicted.load(Ordering::Relaxed),
                    accept_errors: totals.accept_errors.load(Ordering::Relaxed),
                    tls_handshake_failures: totals.tls_handshake_failures.load(Ordering::Relaxed),
                }));
            }
        }
    }

    /// Feeds connection `conn`'s buffered bytes to the relay (it leaves an incomplete frame, and the frames behind
    /// a Login being checked).
    fn feed(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        self.control.handle_control_bytes(now, conn, &mut c.buf);
    }

    /// Hands a credential check's answer to the relay, then feeds the frames that waited behind the Login.
    fn authenticated(&mut self, now: Instant, id: AuthId, result: Result<UserInfo, AuthError>) {
        if let Some(slot) = self.conns.get(&id.conn).and_then(|c| c.prelogin.as_ref()) {
            slot.set_checking(false);
        }
        self.control.handle_auth_result(now, id, result);
        self.feed(id.conn, now);
    }

    /// Delivers the relay's control events to the connection tasks.
    ///
    /// The commands the control plane made before an event are sent to the shards before that event leaves: a
    /// client that reacts to a message (LoginOk → HELLO, RoomState → audio, MemberUpdated → …) finds every shard
    /// already told (a UDP thread applies its queue before each batch).
    fn flush_events(&mut self) {
        self.send_commands();
        while let Some(event) = self.control.events.pop_front() {
            self.send_commands();
            match event {
                Event::Send { conn, msg } => {
                    let Some(c) = self.conns.get_mut(&conn) else { continue };
                    if matches!(msg, ServerMessage::LoginOk { .. } | ServerMessage::ResumeOk { .. })
                        && c.prelogin.take().is_some()
                    {
                        // Logged in: no longer counted among the connections that have not.
                        tracing::info!(conn = conn.0, peer = %c.peer, "control connection logged in");
                    }
                    if self.frame.capacity() < 8 * 1024 {
                        self.frame.reserve(64 * 1024);
                    }
                    // The relay only emits messages within the protocol's caps (its tests check every message
                    // encodes); if one did not, it is skipped rather than sent half-written.
                    if msg.encode(&mut self.frame).is_err() {
                        continue;
                    }
                    let frame = self.frame.split().freeze();
                    if let Err(e) = c.tx.try_send(Out::Frame(frame)) {
                        if matches!(e, tokio::sync::mpsc::error::TrySendError::Full(_)) {
                            tracing::warn!(conn = conn.0, "control connection not reading (queue full): closed");
                        }
                        // The client does not read (queue full) or its task ended: forget the connection (its
                        // session is detached and may resume); dropping the queue ends the task.
                        self.conns.remove(&conn);
                        self.control.connection_closed(Instant::now(), conn);
                    }
                }
                Event::Close { conn } => {
                    if let Some(c) = self.conns.remove(&conn) {
                        // If the queue is full, dropping it closes the connection after the queued frames anyway.
                        let _ = c.tx.try_send(Out::Close);
                    }
                }
                Event::Authenticate(request) => {
                    let id = request.id();
                    let Some(peer) = self.conns.get(&id.conn).map(|c| c.peer.ip()) else { continue };
                    // Checked off the relay; slow checks come back later as `Cmd::Authenticated`.
                    let now = Instant::now();
                    // Checked: not closed to make room for newcomers meanwhile (see `super::prelogin`).
                    if let Some(slot) = self.conns.get(&id.conn).and_then(|c| c.prelogin.as_ref()) {
                        slot.set_checking(true);
                    }
                    let result = self.verifier.check(request, peer, now);
                    for evicted in self.verifier.take_evicted() {
                        self.authenticated(now, evicted, Err(AuthError::Busy));
                    }
                    if let Some(result) = result {
                        self.authenticated(now, id, result);
                    }
                }
            }
        }
        self.send_commands();
    }
}

/// Sorts a UDP error: `WouldBlock` and errors about one datagram or one peer are not fatal.
pub(super) fn udp_error(e: io::Error) -> Result<(), DriverError> {
    match e.kind() {
        // `TimedOut`: a read timeout on some platforms (Windows), like `WouldBlock` elsewhere.
        io::ErrorKind::WouldBlock
        | io::ErrorKind::TimedOut
        | io::ErrorKind::Interrupted
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable => Ok(()),
        _ => {
            tracing::error!(error = %e, "UDP socket failed");
            Err(DriverError::Udp(e))
        }
    }
}
