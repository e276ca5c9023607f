//! A loopback UDP impairment proxy: clients send their datagrams to the proxy (it listens at the address clients
//! derive from the relay's announcement: see `start_network` in the demo), the proxy forwards them to the relay from
//! one upstream socket per client (so the relay still sees one address per client), and the relay's answers come
//! back the same way. Each direction goes through a [`voice_client::NetworkConditioner`] (seeded loss, latency,
//! jitter).
//!
//! It exists because `voice_client::ClientConfig` has no conditioner hook yet; with one, the demo would condition
//! inside each client instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use voice_client::{ConditionerConfig, ConditionerStats, NetworkConditioner};

/// Largest datagram forwarded.
const MAX_DATAGRAM: usize = 2_048;

/// Counters of both directions.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetemStats {
    /// Clients → relay.
    pub up: ConditionerStats,
    /// Relay → clients.
    pub down: ConditionerStats,
}

/// A running proxy.
#[derive(Debug)]
pub struct Netem {
    stop: watch::Sender<bool>,
    stats: Arc<Mutex<NetemStats>>,
    thread: Option<JoinHandle<()>>,
}

enum Input {
    Up(SocketAddr, Bytes),
    Down(SocketAddr, Bytes),
}

impl Netem {
    /// Starts forwarding between clients arriving on `front` and the relay at `relay`, conditioning datagrams to
    /// the relay with `up` and datagrams to the clients with `down`.
    pub fn start(
        front: std::net::UdpSocket,
        relay: SocketAddr,
        up: ConditionerConfig,
        down: ConditionerConfig,
        seed: u64,
    ) -> Result<Self> {
        let up = NetworkConditioner::new(up, seed).context("uplink conditions")?;
        let down = NetworkConditioner::new(down, seed ^ 0x5eed).context("downlink conditions")?;
        front.set_nonblocking(true).context("proxy socket")?;
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(Mutex::new(NetemStats::default()));
        let shared = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("demo-netem".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return tracing::error!("proxy runtime: {e}"),
                };
                let proxy = Proxy { relay, up, down, upstream: HashMap::new(), stats: shared };
                if let Err(e) = rt.block_on(proxy.run(front, stopped)) {
                    tracing::error!("proxy: {e:#}");
                }
            })
            .context("starting the proxy thread")?;
        Ok(Self { stop, stats, thread: Some(thread) })
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> NetemStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the proxy.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        self.halt();
    }
}

struct Proxy {
    relay: SocketAddr,
    up: NetworkConditioner<(SocketAddr, Bytes)>,
    down: NetworkConditioner<(SocketAddr, Bytes)>,
    /// Per client: the socket it is forwarded from.
    upstream: HashMap<SocketAddr, Arc<UdpSocket>>,
    stats: Arc<Mutex<NetemStats>>,
}

impl Proxy {
    async fn run(mut self, front: std::net::UdpSocket, mut stop: watch::Receiver<bool>) -> Result<()> {
        let front = Arc::new(UdpSocket::from_std(front).context("proxy socket")?);
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(read_loop(Arc::clone(&front), tx.clone(), Input::Up));
        loop {
            let due = [self.up.poll_timeout(), self.down.poll_timeout()].into_iter().flatten().min();
            let sleep = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                input = rx.recv() => {
                    let now = Instant::now();
                    match input {
                        Some(Input::Up(from, b)) => {
                            if let std::collections::hash_map::Entry::Vacant(slot) = self.upstream.entry(from) {
                                let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.context("upstream socket")?);
                                // Datagrams the relay sends to this socket go back to `from`.
                                let tx = tx.clone();
                                tokio::spawn(read_loop(Arc::clone(&sock), tx, move |_, b| Input::Down(from, b)));
                                slot.insert(sock);
                            }
                            self.up.push(now, (from, b));
                        }
                        Some(Input::Down(to, b)) => self.down.push(now, (to, b)),
                        None => return Ok(()),
                    }
                }
                () = sleep => {}
            }
            let now = Instant::now();
            while let Some((from, b)) = self.up.poll(now) {
                if let Some(sock) = self.upstream.get(&from) {
                    let _ = sock.send_to(&b, self.relay).await;
                }
            }
            while let Some((to, b)) = self.down.poll(now) {
                let _ = front.send_to(&b, to).await;
            }
            if let Ok(mut s) = self.stats.lock() {
                *s = NetemStats { up: self.up.stats(), down: self.down.stats() };
            }
        }
    }
}

/// Reads datagrams from `sock` into `tx`, tagged by `tag`, until the proxy ends.
async fn read_loop(sock: Arc<UdpSocket>, tx: mpsc::UnboundedSender<Input>, tag: impl Fn(SocketAddr, Bytes) -> Input) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if tx.send(tag(from, Bytes::copy_from_slice(&buf[..n]))).is_err() {
                    return;
                }
            }
            // ICMP "port unreachable" from a client that went away surfaces here on Linux: keep reading.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return tracing::debug!("proxy read: {e}"),
        }
    }
}
