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

use super::{ControlTls, MediaIn, NetOut, NetworkStats};
use crate::{ConditionerConfig, ConnectionCommand, Error, NetworkConditioner};

/// The two conditioners of the UDP path and the counters shared with the application.
struct Chaos {
    up: NetworkConditioner<voice_proto::Transmit>,
    down: NetworkConditioner<(SocketAddr, Bytes)>,
    stats: Arc<Mutex<NetworkStats>>,
}

impl Chaos {
    fn publish(&self) {
        if let Ok(mut s) = self.stats.lock() {
            *s = NetworkStats {
                up_config: *self.up.config(),
                down_config: *self.down.config(),
                up: self.up.stats(),
                down: self.down.stats(),
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
    to_media: Sender<MediaIn>,
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

async fn run(
    server: SocketAddr,
    tls: Option<ControlTls>,
    udp: UdpSocket,
    to_media: Sender<MediaIn>,
    mut rx: UnboundedReceiver<NetOut>,
    mut chaos: Chaos,
) {
    let mut buf = vec![0u8; 2048];
    let mut writer: Option<ControlWriter> = None;
    let mut reader: Option<TaskHandle<()>> = None;
    let mut generation = 0u64;
    let mut published = Instant::now();
    loop {
        // Deliver what the conditioners hold that is due (both directions), then wait for the next event.
        let now = Instant::now();
        while let Some(t) = chaos.up.poll(now) {
            // A full socket buffer or an unreachable port loses the datagram, as the network would.
            let _ = udp.send_to(&t.payload, t.destination).await;
        }
        while let Some((from, bytes)) = chaos.down.poll(now) {
            if to_media.send(MediaIn::Datagram(now, from, bytes)).is_err() {
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
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    chaos.down.push(Instant::now(), (from, Bytes::copy_from_slice(&buf[..n])));
                }
            }
            out = rx.recv() => match out {
                None | Some(NetOut::Shutdown) => {
                    // Write what is queued (the Leave) before closing.
                    while let Ok(NetOut::Control(b)) = rx.try_recv() {
                        if let Some(w) = &mut writer { let _ = w.write_all(&b).await; let _ = w.flush().await; }
                    }
                    if let Some(mut w) = writer.take() { let _ = w.shutdown().await; }
                    break;
                }
                Some(NetOut::Transmit(t)) => chaos.up.push(Instant::now(), t),
                Some(NetOut::Network(up, down)) => {
                    // Validated by `Client::set_network_each`.
                    let _ = chaos.up.set_config(up);
                    let _ = chaos.down.set_config(down);
                    chaos.publish();
                }
                Some(NetOut::Control(b)) => {
                    let failed = match &mut writer {
                        // Flushed: TLS holds written bytes in its own buffer until then.
                        Some(w) => w.write_all(&b).await.is_err() || w.flush().await.is_err(),
                        None => false,
                    };
                    if failed {
                        writer = None;
                        let _ = to_media.send(MediaIn::Disconnected(generation));
                    }
                }
                Some(NetOut::Connection(ConnectionCommand::Close)) => {
                    if let Some(r) = reader.take() { r.abort(); }
                    if let Some(mut w) = writer.take() { let _ = w.shutdown().await; }
                }
                Some(NetOut::Connection(ConnectionCommand::Connect)) => {
                    if let Some(r) = reader.take() { r.abort(); }
                    writer = None;
                    generation += 1;
                    // Bounded: while it waits, no datagram moves (the session retries with backoff on failure).
                    match open_control(server, tls.as_ref()).await {
                        Ok((mut read, write)) => {
                            writer = Some(write);
                            let tx = to_media.clone();
                            let g = generation;
                            let _ = tx.send(MediaIn::Connected(g));
                            reader = Some(tokio::spawn(async move {
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
                            }));
                        }
                        Err(e) => { let _ = to_media.send(MediaIn::ConnectFailed(generation, e.to_string())); }
                    }
                }
            }
        }
    }
    if let Some(r) = reader.take() {
        r.abort();
    }
}
