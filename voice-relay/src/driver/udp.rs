//! Batched UDP I/O for the driver: `recvmmsg` / `sendmmsg` on Linux (through `nix`'s safe wrappers), one
//! `recv_from` / `send_to` per datagram elsewhere.
//!
//! Receive buffers are carved out of one large [`BytesMut`] pool with `split_to`, so every datagram handed to the
//! relay is a shared-kind buffer and the relay's fan-out (freeze + one refcount bump per recipient) does not
//! allocate. When the pool runs low it is cleared and `reserve`d again: once every datagram of earlier batches has
//! been sent and dropped (the driver sends everything before it receives again), the pool is the only owner of its
//! allocation and `reserve` reuses it in place, so the steady state allocates nothing.
#![allow(clippy::disallowed_methods, reason = "the driver owns the clock: it reads `now` for the relay")]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use voice_proto::{MAX_DATAGRAM_LEN, Transmit};

use crate::metrics::LatencyHistogram;
use crate::relay::Relay;
use crate::relay::shard::Shard;

/// How a receive waits for its first datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Block until one arrives (at most the socket's read timeout, `SO_RCVTIMEO`), then take what else is queued:
    /// one system call per wake-up, no reactor in between (`MSG_WAITFORONE` on Linux).
    Block,
    /// Take only what is already queued (the idle poll's tick).
    NoWait,
}

/// Most datagrams taken or sent per system call.
pub(crate) const BATCH: usize = 64;

/// Datagrams of a receive batch handled before their copies are sent (`forward_batch`), by default.
pub const DEFAULT_UDP_CHUNK: usize = 64;

/// Bytes per receive slot: one more than the largest valid datagram, so a longer one (truncated by the kernel to
/// this size) is still seen as oversize by the relay and dropped.
const SLOT: usize = MAX_DATAGRAM_LEN + 1;

/// Receive pool size, in slots: several batches before the pool is recycled.
const POOL_SLOTS: usize = 4 * BATCH;

/// Receives datagrams in batches into slots of a reused pool.
#[derive(Debug)]
pub(crate) struct BatchRecv {
    pool: BytesMut,
    /// Length and source of each datagram of the current batch.
    got: Vec<(usize, SocketAddr)>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl BatchRecv {
    pub(crate) fn new() -> Self {
        Self {
            pool: BytesMut::with_capacity(POOL_SLOTS * SLOT),
            got: Vec::with_capacity(BATCH),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Makes sure the pool holds at least one batch of initialised slots.
    fn refill(&mut self) {
        if self.pool.len() < BATCH * SLOT {
            self.pool.clear();
            self.pool.reserve(POOL_SLOTS * SLOT);
            self.pool.resize(POOL_SLOTS * SLOT, 0);
        }
    }

    /// Takes up to [`BATCH`] datagrams from `sock` (waiting for the first as `wait` says) and gives each to `f`
    /// with the batch's receive time (read once, right after the system call returned) and its source. Returns how
    /// many were taken and that time; `Err(WouldBlock)` when none came (nothing queued, or the read timeout passed).
    pub(crate) fn recv(
        &mut self,
        sock: &UdpSocket,
        wait: Wait,
        mut f: impl FnMut(Instant, SocketAddr, BytesMut),
    ) -> io::Result<(usize, Instant)> {
        self.refill();
        self.got.clear();
        self.recv_into(sock, wait)?;
        let now = Instant::now();
        let mut region = self.pool.split_to(self.got.len() * SLOT);
        for &(len, from) in &self.got {
            let mut d = region.split_to(SLOT);
            d.truncate(len);
            f(now, from, d);
        }
        Ok((self.got.len(), now))
    }

    #[cfg(target_os = "linux")]
    fn recv_into(&mut self, sock: &UdpSocket, wait: Wait) -> io::Result<()> {
        use std::io::IoSliceMut;

        use nix::sys::socket::{MsgFlags, recvmmsg};

        let flags = match wait {
            Wait::Block => MsgFlags::MSG_WAITFORONE,
            Wait::NoWait => MsgFlags::MSG_DONTWAIT,
        };
        let mut chunks = self.pool[..BATCH * SLOT].chunks_mut(SLOT);
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
        let results = recvmmsg(fd, &mut self.headers, slices.iter_mut(), flags, None)?;
        for m in results {
            // UDP datagrams always carry a source address; one without (or of another family) is skipped.
            if let Some(from) = m.address.as_ref().and_then(to_std) {
                self.got.push((m.bytes.min(SLOT), from));
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn recv_into(&mut self, sock: &UdpSocket, wait: Wait) -> io::Result<()> {
        // Portable fallback: one `recv_from` per datagram, each into its own slot. Blocking: the first only (the
        // socket is in blocking mode with a read timeout); not waiting: the socket is non-blocking meanwhile.
        let slots = self.pool[..BATCH * SLOT].chunks_mut(SLOT);
        if wait == Wait::Block {
            for slot in slots.take(1) {
                let (len, from) = sock.recv_from(slot)?;
                self.got.push((len.min(SLOT), from));
            }
            return Ok(());
        }
        sock.set_nonblocking(true)?;
        let mut result = Ok(());
        for slot in slots {
            match sock.recv_from(slot) {
                Ok((len, from)) => self.got.push((len.min(SLOT), from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.got.is_empty() => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        sock.set_nonblocking(false)?;
        result
    }
}

#[cfg(target_os = "linux")]
fn to_std(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Sends transmits in batches; keeps those the socket could not take yet.
#[derive(Debug)]
pub(crate) struct BatchSend {
    pending: Vec<Transmit>,
    /// Datagrams the kernel refused (e.g. unreachable destination); they are dropped.
    pub(crate) errors: u64,
    /// Datagrams handed to the kernel.
    pub(crate) sent: u64,
    /// Receive time of the batch that caused the pending transmits (none for timer or control output).
    origin: Option<Instant>,
    /// Receive-to-send time of every datagram sent that had an origin.
    pub(crate) latency: LatencyHistogram,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    #[cfg(target_os = "linux")]
    addrs: Vec<Option<nix::sys::socket::SockaddrStorage>>,
}

impl BatchSend {
    pub(crate) fn new() -> Self {
        Self {
            pending: Vec::with_capacity(BATCH),
            errors: 0,
            sent: 0,
            origin: None,
            latency: LatencyHistogram::new(),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
            #[cfg(target_os = "linux")]
            addrs: Vec::with_capacity(BATCH),
        }
    }

    /// Whether transmits wait for the socket to become writable.
    pub(crate) fn is_blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Sends what is pending, then everything `next` yields, in batches. `Err(WouldBlock)` when the socket's send
    /// buffer is full: the rest stays pending (and `next` is not drained further) until the next call, after
    /// [`wait_writable`]. Datagrams the kernel refuses are dropped and counted in `errors`.
    ///
    /// `origin` is the receive time of the datagram batch that caused the transmits (none for other output); each
    /// datagram sent is recorded in `latency` as the time from its origin to the return of the `sendmmsg` that
    /// sent it. Transmits still pending from an earlier call keep their earlier origin.
    pub(crate) fn send(
        &mut self,
        sock: &UdpSocket,
        origin: Option<Instant>,
        mut next: impl FnMut() -> Option<Transmit>,
    ) -> io::Result<()> {
        if self.pending.is_empty() {
            self.origin = origin;
        }
        loop {
            while self.pending.len() < BATCH {
                match next() {
                    Some(t) => self.pending.push(t),
                    None => break,
                }
            }
            if self.pending.is_empty() {
                return Ok(());
            }
            match self.send_batch(sock) {
                Ok(n) => {
                    let n = n.min(self.pending.len());
                    if let Some(origin) = self.origin {
                        self.latency.record_n(origin.elapsed(), n as u64);
                    }
                    self.sent += n as u64;
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The first datagram of the batch was refused (the kernel reports an error only when nothing was
                // sent): drop it and go on with the rest.
                Err(_) => {
                    self.errors += 1;
                    self.pending.remove(0);
                }
            }
        }
    }

    /// Sends the pending transmits (at most [`BATCH`]); returns how many went.
    #[cfg(target_os = "linux")]
    fn send_batch(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        use std::io::IoSlice;

        use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmmsg};

        let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
        self.addrs.clear();
        self.addrs.extend(self.pending.iter().map(|t| Some(SockaddrStorage::from(t.destination))));
        let n = self.pending.len();
        let pending = &self.pending;
        let slices: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(pending.get(i).map_or(&[][..], |t| &t.payload[..]))]);
        let cmsgs: [ControlMessage<'_>; 0] = [];
        let sent =
            sendmmsg(fd, &mut self.headers, slices[..n].iter(), &self.addrs[..n], cmsgs, MsgFlags::MSG_DONTWAIT)?;
        Ok(sent.count())
    }

    #[cfg(not(target_os = "linux"))]
    fn send_batch(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        // Portable fallback: one `send_to` per datagram (the socket is in blocking mode: it waits for room).
        let mut sent = 0;
        for t in &self.pending {
            match sock.send_to(&t.payload, t.destination) {
                Ok(_) => sent += 1,
                Err(e) if sent > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if sent > 0 => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }
}

/// What one [`forward_batch`] did.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Datagrams received (and fed to the shard).
    pub(crate) received: usize,
    /// How sending their output went (`WouldBlock`: some transmits wait in `send`).
    pub(crate) sent: io::Result<()>,
    /// The shard's count of accepted audio packets after the batch (none when nothing was received).
    pub(crate) audio_accepted: Option<u64>,
    /// When the batch was received.
    pub(crate) at: Instant,
}

/// One turn of the UDP fast path: one `recvmmsg` batch (waiting for its first datagram as `wait` says); then,
/// before the first datagram is handled, `before` brings the shard up to date (the driver applies the control
/// plane's queued commands: a command sent before a datagram arrived is applied before that datagram is handled);
/// then the datagrams are fed to the shard with the batch's receive time, `chunk` at a time: after each chunk the
/// shard's transmits are moved to `out` and sent with `sendmmsg` before the next chunk is handled, so the first
/// datagrams' copies do not wait for the whole batch ([`DEFAULT_UDP_CHUNK`]; `chunk` ≥ [`BATCH`]: one send pass
/// per batch). No lock anywhere: the shard belongs to this thread. While the socket cannot take more, the rest only
/// queues in `out`. `Err` only when receiving failed (`WouldBlock`: nothing was queued).
#[allow(clippy::too_many_arguments, reason = "the thread's parts, borrowed separately")]
pub(crate) fn forward_batch(
    shard: &mut Shard,
    before: impl FnOnce(&mut Shard),
    recv: &mut BatchRecv,
    send: &mut BatchSend,
    out: &mut VecDeque<Transmit>,
    sock: &UdpSocket,
    wait: Wait,
    chunk: usize,
) -> io::Result<Batch> {
    let chunk = chunk.max(1);
    let mut handled = 0usize;
    let mut sent = Ok(());
    let mut before = Some(before);
    let (received, now) = recv.recv(sock, wait, |now, from, d| {
        if let Some(f) = before.take() {
            f(shard);
            // What the commands sent (HELLO_ACKs of bindings the control plane confirmed) goes first, with no
            // origin: it was not caused by this batch.
            if !shard.transmits.is_empty() {
                while let Some(t) = shard.poll_transmit() {
                    out.push_back(t);
                }
                sent = send.send(sock, None, || out.pop_front());
            }
        }
        shard.handle_datagram(now, from, d);
        handled += 1;
        if handled.is_multiple_of(chunk) {
            while let Some(t) = shard.poll_transmit() {
                out.push_back(t);
            }
            if sent.is_ok() {
                sent = send.send(sock, Some(now), || out.pop_front());
            }
        }
    })?;
    while let Some(t) = shard.poll_transmit() {
        out.push_back(t);
    }
    if sent.is_ok() {
        sent = send.send(sock, Some(now), || out.pop_front());
    }
    let audio_accepted = (received > 0).then(|| shard.counters().audio_accepted);
    Ok(Batch { received, sent, audio_accepted, at: now })
}

/// Waits until `sock` can take a datagram again, at most `limit` (Linux: `poll`; elsewhere the socket is in
/// blocking mode and its sends wait by themselves).
pub(crate) fn wait_writable(sock: &UdpSocket, limit: Duration) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (sock, limit);
        Ok(())
    }
}

/// Locks a histogram (or counters) shared between a UDP thread and the core task.
pub(crate) fn lock<T>(h: &Mutex<T>) -> MutexGuard<'_, T> {
    h.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Initial capacity of a thread's outgoing queue (grows to the largest batch's fan-out, then stays).
pub(crate) const OUT_CAPACITY: usize = 4096;

/// The driver's UDP fast path without the thread around it, for tests (e.g. counting allocations per forwarded
/// packet through real sockets): the same `forward_batch` a UDP thread runs, on the relay's shard, with the
/// shard's events delivered to the control plane after each batch (in-process, where a thread sends them over its
/// queue). Not a stable API.
#[derive(Debug)]
pub struct UdpPath {
    relay: Relay,
    recv: BatchRecv,
    send: BatchSend,
    out: VecDeque<Transmit>,
    chunk: usize,
}

impl UdpPath {
    /// The path around `relay`, with the same buffers a UDP thread uses.
    #[must_use]
    pub fn new(relay: Relay) -> Self {
        Self {
            relay,
            recv: BatchRecv::new(),
            send: BatchSend::new(),
            out: VecDeque::with_capacity(OUT_CAPACITY),
            chunk: DEFAULT_UDP_CHUNK,
        }
    }

    /// The same path sending each `chunk` datagrams' copies before handling the next ones (as
    /// `Server::with_udp_chunk`).
    #[must_use]
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }

    /// The relay, e.g. to feed it control messages.
    pub fn relay_mut(&mut self) -> &mut Relay {
        &mut self.relay
    }

    /// One batch: waits for a datagram on `sock` (in blocking mode: at most its read timeout), takes it and those
    /// queued behind it (at most 64) through the relay's first shard, and sends the output. Returns how many were
    /// received (0 when none came in time).
    pub fn turn(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        let Self { relay, recv, send, out, chunk } = self;
        let result = match relay.first_shard() {
            Some(shard) => forward_batch(shard, |_| {}, recv, send, out, sock, Wait::Block, *chunk),
            None => Err(io::Error::other("a relay without shards")),
        };
        relay.settle();
        // In-process, the control plane answered at once: send what its commands made the shard send (the
        // HELLO_ACKs of the bindings it confirmed), as a thread does on its next turn.
        if let Some(shard) = relay.first_shard()
            && !shard.transmits.is_empty()
        {
            while let Some(t) = shard.poll_transmit() {
                out.push_back(t);
            }
            send.send(sock, None, || out.pop_front())?;
        }
        match result {
            Ok(b) => b.sent.map(|()| b.received),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Datagrams handed to the kernel so far.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.send.sent
    }
}
