//! The UDP threads: each owns one socket (several: all bound to the same address with `SO_REUSEPORT`) and one
//! [`Shard`] of the forwarding state, and runs the forwarding loop as plain blocking code — no runtime, no reactor,
//! no lock: one `recvmmsg` that sleeps until a datagram arrives and returns it with whatever queued behind it, the
//! control plane's queued commands applied, the datagrams through the shard, one `sendmmsg` — the same system
//! calls a hand-written fan-out loop makes. The shard's events go to the core task over its queue.
#![allow(
    clippy::disallowed_methods,
    reason = "the driver owns the clock: `now` for the shard, and the idle poll sleeps between its ticks"
)]

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use voice_proto::Transmit;

use super::core::udp_error;
use super::udp::{self, BATCH, BatchRecv, BatchSend, Wait};
use super::{DriverStats, FromShard, IdlePoll, Shared};
use crate::error::DriverError;
use crate::relay::msg::{ShardCmd, ShardEvent};
use crate::relay::shard::Shard;

/// Longest a UDP thread blocks in one system call: how soon it sees the stop flag and the control plane's
/// commands when no datagram comes, how often an idle relay with the idle poll off wakes anyway, and how late a
/// shard's timers (speaking timeout, binding expiry) may run.
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// A UDP thread copies its totals, counters and latency histogram to where the core task reads them at most this
/// often while datagrams flow (and at every turn without any): a copy per turn would cost more than the turn at
/// low load, and two threads writing the shared totals every turn would bounce their cache lines.
pub(super) const PUBLISH_EVERY: Duration = Duration::from_millis(5);

/// Longest a UDP thread waits for the control plane to confirm a binding after it accepted a HELLO (the
/// HELLO_ACK leaves then; without the wait it would leave at the thread's next wake-up, up to [`WAIT_SLICE`] or an
/// idle-poll tick later).
const ACK_WAIT: Duration = Duration::from_millis(2);

/// Most batches one idle-poll tick takes before the thread runs its timers and publishes its figures.
const TICK_BATCHES: usize = 16;

/// A running UDP thread (it returns its shard when it ends) and the signal it sends (by dropping it) when it ends.
pub(super) type Worker = (JoinHandle<Option<Shard>>, oneshot::Receiver<()>);

/// What a UDP thread needs besides its socket.
pub(super) struct Context {
    pub(super) shared: Arc<Shared>,
    pub(super) stats: Arc<DriverStats>,
    /// Set when the server stops.
    pub(super) stop: Arc<AtomicBool>,
    pub(super) idle_poll: Option<IdlePoll>,
    /// The control plane's commands for this thread's shard.
    pub(super) cmds: Receiver<ShardCmd>,
    /// The shard's events, to the core task.
    pub(super) events: UnboundedSender<FromShard>,
}

/// Starts UDP thread `index` on `sock` with `shard`; it runs until `stop` is set or its socket fails (then the
/// failure goes to the core task: the server ends with it).
pub(super) fn spawn(index: usize, sock: UdpSocket, mut shard: Shard, cx: Context) -> io::Result<Worker> {
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let handle = std::thread::Builder::new().name(format!("voice-relay-udp{index}")).spawn(move || {
        // A panic (a bug) ends the server like a socket failure instead of silently stopping this socket's audio.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(index, &sock, &mut shard, &cx)));
        let (ran, shard) = match ran {
            Ok(r) => (r, Some(shard)),
            Err(_) => (Err(DriverError::Udp(io::Error::other("a UDP thread panicked"))), None),
        };
        if let Err(e) = ran {
            let _ = cx.events.send(FromShard::Failed(e));
        }
        drop(done_tx);
        shard
    })?;
    Ok((handle, done_rx))
}

/// Waits (without blocking the runtime) until every thread has ended, then joins them; returns their shards.
pub(super) async fn join(workers: Vec<Worker>) -> Vec<Shard> {
    let mut shards = Vec::with_capacity(workers.len());
    for (handle, done) in workers {
        let _ = done.await;
        if let Ok(Some(shard)) = handle.join() {
            shards.push(shard);
        }
    }
    shards
}

/// Applies the control plane's queued commands to the shard.
fn apply_commands(shard: &mut Shard, cmds: &Receiver<ShardCmd>) {
    while let Ok(cmd) = cmds.try_recv() {
        shard.apply(cmd);
    }
}

/// Runs the shard's due timers and sends its events to the core task; whether one was an accepted HELLO.
fn after_turn(index: usize, shard: &mut Shard, now: Instant, cx: &Context) -> bool {
    if shard.poll_timeout().is_some_and(|t| t <= now) {
        shard.handle_timeout(now);
    }
    let mut hello = false;
    while let Some(event) = shard.poll_event() {
        hello |= matches!(event, ShardEvent::Bound { .. });
        // The core task is gone only when the server stops.
        let _ = cx.events.send(FromShard::Event(index, event));
    }
    hello
}

/// After an accepted HELLO, waits (at most [`ACK_WAIT`]) for the control plane's next command — normally the
/// binding's confirmation, which lets the HELLO_ACK go — applies what came and sends what it made. Datagrams
/// that arrive meanwhile wait in the socket; this happens once per accepted HELLO, not per packet.
fn await_confirmation(
    shard: &mut Shard,
    cx: &Context,
    sock: &UdpSocket,
    send: &mut BatchSend,
    out: &mut VecDeque<Transmit>,
) -> Result<(), DriverError> {
    if let Ok(cmd) = cx.cmds.recv_timeout(ACK_WAIT) {
        shard.apply(cmd);
        apply_commands(shard, &cx.cmds);
        while let Some(t) = shard.poll_transmit() {
            out.push_back(t);
        }
        if let Err(e) = send.send(sock, None, || out.pop_front()) {
            udp_error(e)?;
        }
    }
    Ok(())
}

/// The loop of one UDP thread.
fn run(index: usize, sock: &UdpSocket, shard: &mut Shard, cx: &Context) -> Result<(), DriverError> {
    sock.set_nonblocking(false).map_err(DriverError::Udp)?;
    sock.set_read_timeout(Some(WAIT_SLICE)).map_err(DriverError::Udp)?;
    let mut recv = BatchRecv::new();
    let mut send = BatchSend::new();
    let mut out = VecDeque::with_capacity(udp::OUT_CAPACITY);
    let (mut received, mut published) = (0u64, [0u64; 3]);
    // When audio was last seen accepted, the shard's count then, and the next idle-poll tick.
    let (mut last_audio, mut audio_seen) = (Instant::now(), 0u64);
    // `send.latency`'s count and the shard's datagram count when they were last copied to `shared`.
    let (mut latency_published, mut counters_published) = (0u64, u64::MAX);
    let mut last_publish: Option<Instant> = None;
    // The last copy request of a metrics snapshot this thread answered.
    let mut answered = 0u64;
    let mut next_tick: Option<Instant> = None;
    while !cx.stop.load(Ordering::Relaxed) {
        if send.is_blocked() {
            udp::wait_writable(sock, WAIT_SLICE).map_err(DriverError::Udp)?;
            if let Err(e) = send.send(sock, None, || out.pop_front()) {
                udp_error(e)?;
            }
            continue;
        }
        // Idle (no audio for a while): nothing wakes this thread per datagram; it takes what queued on a tick.
        let wait = match cx.idle_poll.filter(|p| last_audio.elapsed() >= p.after) {
            Some(p) => {
                let tick = *next_tick.get_or_insert_with(|| Instant::now() + p.period);
                std::thread::sleep(tick.saturating_duration_since(Instant::now()));
                // Absolute ticks; a tick missed by far is not caught up with a burst of them.
                next_tick = Some((tick + p.period).max(Instant::now()));
                Wait::NoWait
            }
            None => {
                next_tick = None;
                Wait::Block
            }
        };
        // On a tick, what queued (batch after batch, until audio shows up or `TICK_BATCHES`); otherwise one batch,
        // and the loop comes back at once. Either way the timers, events and snapshots below run between turns, so
        // a flood after an idle spell cannot keep the thread in here.
        let mut at = None;
        for _ in 0..TICK_BATCHES {
            let apply = |shard: &mut Shard| apply_commands(shard, &cx.cmds);
            match udp::forward_batch(shard, apply, &mut recv, &mut send, &mut out, sock, wait, cx.shared.udp_chunk) {
                Ok(b) => {
                    received += b.received as u64;
                    at = Some(b.at);
                    let mut active = false;
                    if let Some(n) = b.audio_accepted
                        && n != audio_seen
                    {
                        audio_seen = n;
                        last_audio = b.at;
                        active = true;
                    }
                    if let Err(e) = b.sent {
                        udp_error(e)?;
                    }
                    // Audio flows again: back to waking per batch (`Wait::Block`) on the next turn.
                    if wait == Wait::Block || active || b.received < BATCH || send.is_blocked() {
                        break;
                    }
                }
                Err(e) => {
                    udp_error(e)?;
                    break;
                }
            }
        }
        // Nothing came (read timeout, or an empty tick): the commands still get applied (and what they send, e.g. a
        // HELLO_ACK once its binding is confirmed, goes out), the timers still run.
        let now = match at {
            Some(at) => at,
            None => {
                apply_commands(shard, &cx.cmds);
                while let Some(t) = shard.poll_transmit() {
                    out.push_back(t);
                }
                if let Err(e) = send.send(sock, None, || out.pop_front()) {
                    udp_error(e)?;
                }
                Instant::now()
            }
        };
        if after_turn(index, shard, now, cx) {
            await_confirmation(shard, cx, sock, &mut send, &mut out)?;
        }
        // A snapshot waiting for fresh copies is answered now, whatever the throttle says.
        let request = cx.shared.copy_request.load(Ordering::Acquire);
        if request == answered
            && at.is_some()
            && last_publish.is_some_and(|t| now.saturating_duration_since(t) < PUBLISH_EVERY)
        {
            continue;
        }
        last_publish = Some(now);
        cx.stats.add([received, send.sent, send.errors], &mut published);
        if latency_published != send.latency.count() {
            // Only when something was forwarded since (an uncontended lock and a copy of a few dozen counters).
            latency_published = send.latency.count();
            if let Some(h) = cx.shared.latency.get(index) {
                udp::lock(&h.0).clone_from(&send.latency);
            }
        }
        if counters_published != shard.counters().packets_in {
            counters_published = shard.counters().packets_in;
            if let Some(c) = cx.shared.counters.get(index) {
                udp::lock(&c.0).clone_from(shard.counters());
            }
        }
        if request != answered {
            answered = request;
            if let Some(a) = cx.shared.copied.get(index) {
                a.0.store(request, Ordering::Release);
            }
            cx.shared.copies.notify_waiters();
        }
    }
    // Stopping: what is still queued goes out if the socket takes it now, and the totals are brought up to date.
    let stopped = send.send(sock, None, || out.pop_front());
    cx.stats.add([received, send.sent, send.errors], &mut published);
    if let Err(e) = stopped {
        udp_error(e)?;
    }
    Ok(())
}

/// A UDP socket bound to `addr` with `SO_REUSEPORT` (every socket sharing the port needs it).
#[cfg(target_os = "linux")]
pub(super) fn reuseport_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket, sockopt};
    use std::os::fd::AsRawFd;
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(UdpSocket::from(fd))
}
