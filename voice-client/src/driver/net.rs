//! The network thread: a current-thread tokio runtime owning the UDP socket and the control connection. Every UDP
//! datagram passes a [`NetworkConditioner`] on the way out and one on the way in (pass-through until
//! [`Client::set_network`](crate::Client::set_network) configures them); a tokio timer waits for the next due one.
#![allow(
    clippy::disallowed_methods,
    reason = "the driver owns the clock: datagrams are stamped with their receive time, reconnects wait"
)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle as TaskHandle;

use super::{ControlTls, MediaIn, NetOut, NetworkStats, Queues};
use crate::{ConditionerConfig, ConnectionCommand, Error, NetworkConditioner};

/// The two conditioners of the UDP path and the counters shared with the application.
struct Chaos {
    up: NetworkConditioner<voice_proto::Transmit>,
    down: NetworkConditioner<(SocketAddr, BytesMut)>,
    stats: Arc<Mutex<NetworkStats>>,
    queues: Arc<Queues>,
    /// Datagrams from another host than the server's.
    foreign: u64,
}

impl Chaos {
    fn publish(&self) {
        if let Ok(mut s) = self.stats.lock() {
            *s = NetworkStats {
                up_config: *self.up.config(),
                down_config: *self.down.config(),
                up: self.up.stats(),
                down: self.down.stats(),
                foreign_dropped: self.foreign,
                queue_dropped_in: self.queues.into_media.dropped(),
                queue_dropped_out: self.queues.into_net.dropped(),
            };
        }
    }

    fn next_due(&self) -> Option<Instant> {
        match (self.up.poll_timeout(), self.down.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Longest wait for the control connection to open (TCP connect and, with TLS, the handshake).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// The write half of the control connection (plain TCP or TLS).
type ControlWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// Opens the control connection: TCP, then the TLS handshake if configured; both within [`CONNECT_TIMEOUT`].
async fn open_control(
    server: SocketAddr,
    tls: Option<&ControlTls>,
) -> std::io::Result<(Box<dyn AsyncRead + Send + Unpin>, ControlWriter)> {
    let open = async {
        let stream = TcpStream::connect(server).await?;
        let _ = stream.set_nodelay(true);
        Ok::<_, std::io::Error>(match tls {
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r) as Box<dyn AsyncRead + Send + Unpin>, Box::new(w) as ControlWriter)
            }
            Some(tls) => {
                let stream = tls.connector.connect(tls.name.clone(), stream).await?;
                let (r, w) = tokio::io::split(stream);
                (Box::new(r) as Box<dyn AsyncRead + Send + Unpin>, Box::new(w) as ControlWriter)
            }
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, open).await.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// Binds the UDP socket (on the loopback interface when the server is on it) and starts the network thread.
pub(super) fn spawn(
    server: SocketAddr,
    tls: Option<ControlTls>,
    (to_media, queues): (Sender<MediaIn>, Arc<Queues>),
    rx: UnboundedReceiver<NetOut>,
    (seed, priority): (u64, Option<Arc<Mutex<super::ThreadPriorities>>>),
    stats: Arc<Mutex<NetworkStats>>,
) -> Result<JoinHandle<()>, Error> {
    let local: SocketAddr = match (server.ip().is_loopback(), server.is_ipv4()) {
        (true, true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (Ipv6Addr::LOCALHOST, 0).into(),
        (false, true) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let std_udp = std::net::UdpSocket::bind(local)?;
    std_udp.set_nonblocking(true)?;
    let chaos = Chaos {
        up: NetworkConditioner::new(ConditionerConfig::default(), seed ^ 0x5EED_0001)?,
        down: NetworkConditioner::new(ConditionerConfig::default(), seed ^ 0x5EED_0002)?,
        stats,
        queues,
        foreign: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let thread = std::thread::Builder::new().name("voice-net".into()).spawn(move || {
        if let Some(p) = priority {
            let got = super::priority::raise_current_thread_priority();
            if let Ok(mut p) = p.lock() {
                p.network = got;
            }
        }
        runtime.block_on(async move {
            match UdpSocket::from_std(std_udp) {
                Ok(udp) => run(server, tls, udp, to_media, rx, chaos).await,
                Err(_) => drop(to_media),
            }
        });
    })?;
    Ok(thread)
}

/// Control frames waiting for the writer task; beyond this the connection is taken as broken (a peer that stopped
/// reading).
const CONTROL_QUEUE: usize = 256;

/// The control connection of the current generation: opening, or open (a reader and a writer task). Everything
/// about it runs in tasks beside the UDP path, so datagrams keep moving while it opens, stalls or reconnects.
#[derive(Default)]
struct Control {
    generation: u64,
    opening: Option<TaskHandle<()>>,
    reader: Option<TaskHandle<()>>,
    writer: Option<(tokio::sync::mpsc::Sender<Bytes>, TaskHandle<()>)>,
    /// Writer tasks of closed connections still sending what they held (the Leave of a quit).
    closing: Vec<TaskHandle<()>>,
}

impl Control {
    /// Stops reading at once; the writer task sends what it holds, then closes its half (unless `abort`).
    fn close(&mut self, abort: bool) {
        for t in [self.opening.take(), self.reader.take()].into_iter().flatten() {
            t.abort();
        }
        if let Some((_, task)) = self.writer.take() {
            if abort {
                task.abort();
            } else {
                self.closing.retain(|t| !t.is_finished());
                self.closing.push(task);
            }
        }
    }

    /// Waits (bounded) for the writers of closed connections to send what they held.
    async fn drain(&mut self) {
        let closing = std::mem::take(&mut self.closing);
        let all = async {
            for t in closing {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), all).await;
    }
}

/// Writes control frames in order; a failed write reports the connection lost.
async fn write_control(mut w: ControlWriter, mut rx: tokio::sync::mpsc::Receiver<Bytes>, g: u64, tx: Sender<MediaIn>) {
    while let Some(b) = rx.recv().await {
        // Flushed: TLS holds written bytes in its own buffer until then.
        if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
            let _ = tx.send(MediaIn::Disconnected(g));
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Reads the control connection into the media thread until it closes.
async fn read_control(mut read: Box<dyn AsyncRead + Send + Unpin>, g: u64, tx: Sender<MediaIn>) {
    let mut rbuf = BytesMut::with_capacity(8192);
    loop {
        match read.read_buf(&mut rbuf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if tx.send(MediaIn::ControlBytes(g, rbuf.split().freeze())).is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(MediaIn::Disconnected(g));
}

/// Size of the buffer datagrams are received into (about 50 audio datagrams; one datagram never exceeds 2 KiB).
const RX_BUFFER: usize = 64 * 1024;

/// Receives one datagram into `buf` and splits it off.
async fn recv_datagram(udp: &UdpSocket, buf: &mut BytesMut) -> std::io::Result<(BytesMut, SocketAddr)> {
    if buf.capacity() < 2048 {
        buf.reserve(RX_BUFFER);
    }
    let (n, from) = udp.recv_buf_from(buf).await?;
    Ok((buf.split_to(n), from))
}

type Opened = (u64, std::io::Result<(Box<dyn AsyncRead + Send + Unpin>, ControlWriter)>);

async fn run(
    server: SocketAddr,
    tls: Option<ControlTls>,
    udp: UdpSocket,
    to_media: Sender<MediaIn>,
    mut rx: UnboundedReceiver<NetOut>,
    mut chaos: Chaos,
) {
    // Datagrams are received into this buffer and split off it: a new one is allocated only when it is used up
    // (and the old one is freed when the last datagram cut from it has been played).
    let mut rx_buf = BytesMut::new();
    let mut control = Control::default();
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel::<Opened>();
    let mut published = Instant::now();
    loop {
        // Deliver what the conditioners hold that is due (both directions), then wait for the next event.
        let now = Instant::now();
        while let Some(t) = chaos.up.poll(now) {
            // A full socket buffer or an unreachable port loses the datagram, as the network would.
            let _ = udp.send_to(&t.payload, t.destination).await;
        }
        while let Some((from, datagram)) = chaos.down.poll(now) {
            if chaos.queues.into_media.enter() && to_media.send(MediaIn::Datagram(now, from, datagram)).is_err() {
                control.close(true);
                return;
            }
        }
        if now.duration_since(published) >= std::time::Duration::from_millis(100) {
            chaos.publish();
            published = now;
        }
        let due = chaos.next_due();
        let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(due.unwrap_or(now)));
        tokio::select! {
            () = timer, if due.is_some() => {}
            r = recv_datagram(&udp, &mut rx_buf) => {
                if let Ok((datagram, from)) = r {
                    // Only the relay's host is listened to: anything else is dropped before it costs a copy.
                    if from.ip() == server.ip() {
                        chaos.down.push(Instant::now(), (from, datagram));
                    } else {
                        chaos.foreign += 1;
                    }
                }
            }
            Some((g, result)) = opened_rx.recv() => {
                if g != control.generation {
                    continue; // an attempt given up since
                }
                control.opening = None;
                match result {
                    Ok((read, write)) => {
                        let (tx, queue) = tokio::sync::mpsc::channel(CONTROL_QUEUE);
                        control.writer = Some((tx, tokio::spawn(write_control(write, queue, g, to_media.clone()))));
                        let _ = to_media.send(MediaIn::Connected(g));
                        control.reader = Some(tokio::spawn(read_control(read, g, to_media.clone())));
                    }
                    Err(e) => { let _ = to_media.send(MediaIn::ConnectFailed(g, e.to_string())); }
                }
            }
            out = rx.recv() => match out {
                None | Some(NetOut::Shutdown) => {
                    // Write what is queued (the Leave) before closing, for a bounded time.
                    if let Some((w, _)) = &control.writer {
                        while let Ok(NetOut::Control(b)) = rx.try_recv() {
                            let _ = w.try_send(b);
                        }
                    }
                    control.close(false);
                    control.drain().await;
                    break;
                }
                Some(NetOut::Transmit(t)) => {
                    chaos.queues.into_net.leave();
                    chaos.up.push(Instant::now(), t);
                }
                Some(NetOut::Network(up, down)) => {
                    // Validated by `Client::set_network_each`.
                    let _ = chaos.up.set_config(up);
                    let _ = chaos.down.set_config(down);
                    chaos.publish();
                }
                Some(NetOut::Control(b)) => {
                    // A writer that cannot take more (its peer stopped reading) or has failed: the connection is
                    // lost; the session reconnects.
                    if let Some((w, _)) = &control.writer {
                        if w.try_send(b).is_err() {
                            control.close(true);
                            let _ = to_media.send(MediaIn::Disconnected(control.generation));
                        }
                    }
                }
                Some(NetOut::Connection(ConnectionCommand::Close)) => control.close(false),
                Some(NetOut::Connection(ConnectionCommand::Connect)) => {
                    control.close(true);
                    control.generation += 1;
                    let (g, tx, tls) = (control.generation, opened_tx.clone(), tls.clone());
                    // Beside the UDP path: a connection that takes its time (up to `CONNECT_TIMEOUT`) moves no
                    // datagram less.
                    control.opening = Some(tokio::spawn(async move {
                        let _ = tx.send((g, open_control(server, tls.as_ref()).await));
                    }));
                }
            }
        }
    }
}
