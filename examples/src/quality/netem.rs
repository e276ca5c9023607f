//! The harness's network: a loopback proxy between the relay and the listening client that impairs the relay's
//! AUDIO_DOWN datagrams (loss: random or bursty; latency; jitter) and logs, for every audio packet, whether it was
//! delivered. That log is what lets the offline reference drop exactly the packets the listener never got.
//!
//! The listener connects its control connection to the proxy (`127.0.0.2`, a TCP port that forwards to the relay);
//! the relay's LoginOk names its UDP port, so the client sends its datagrams to `127.0.0.2:<relay udp port>`, where
//! the proxy listens and forwards them unchanged to the relay from a socket of its own. Datagrams from the relay go
//! back through the impairment. Every other datagram (HELLO_ACK, PONG) gets the base latency only.
//!
//! Its UDP threads ask for real-time priority (as the clients' media threads do): the network it models does not
//! share the listener's CPU, so other work on this machine must not add delay to it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use voice_sim::Rng;

/// The proxy's own loopback address (the relay listens on 127.0.0.1).
const PROXY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Longest wait of the proxy threads between checks of the stop flag.
const POLL: Duration = Duration::from_millis(5);

/// How the proxy impairs the relay → listener audio.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    /// Random (independent) loss probability, 0 ..= 1.
    pub loss: f64,
    /// Bursty loss: a Gilbert–Elliott chain with this mean burst length in packets (≥ 1), at the mean loss rate
    /// `loss`. `None`: independent losses.
    pub burst: Option<f64>,
    /// One-way latency added to every datagram.
    pub latency: Duration,
    /// Standard deviation of a normally distributed extra delay per audio datagram (clamped at zero): packets
    /// overtake each other, as on a jittery path.
    pub jitter: Duration,
}

/// One audio packet the relay sent toward the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioLog {
    /// The sender's sequence number.
    pub seq: u64,
    /// Its media timestamp (48 kHz).
    pub timestamp: u32,
    /// Whether the proxy delivered it.
    pub delivered: bool,
    /// Whether it ended a talkspurt.
    pub end_of_talkspurt: bool,
    /// Bytes of Opus it carried (the datagram less its header and tag).
    pub payload_len: usize,
}

struct Due {
    at: Instant,
    order: u64,
    bytes: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// A running proxy. Stopped (threads joined) on drop.
pub struct Netem {
    /// Where the listener connects its control connection.
    pub tcp: SocketAddr,
    log: Arc<Mutex<Vec<AudioLog>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Netem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netem").field("tcp", &self.tcp).finish_non_exhaustive()
    }
}

impl Netem {
    /// Starts a proxy in front of the relay at `relay_tcp` / `relay_udp` (both on 127.0.0.1).
    pub fn start(relay_tcp: SocketAddr, relay_udp: SocketAddr, impairment: Impairment, seed: u64) -> Result<Self> {
        let listener = TcpListener::bind((PROXY_IP, 0)).context("binding the proxy's TCP port on 127.0.0.2")?;
        listener.set_nonblocking(true)?;
        let tcp = listener.local_addr()?;
        let client_side = UdpSocket::bind((PROXY_IP, relay_udp.port()))
            .with_context(|| format!("binding the proxy's UDP port 127.0.0.2:{}", relay_udp.port()))?;
        let relay_side =
            UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("binding the proxy's relay-side UDP socket")?;
        relay_side.connect(relay_udp)?;
        client_side.set_read_timeout(Some(POLL))?;
        relay_side.set_read_timeout(Some(Duration::from_millis(1)))?;
        let client_side = Arc::new(client_side);
        let relay_side = Arc::new(relay_side);
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let client_addr: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let mut threads = Vec::new();

        let (st, cs, rs, ca) =
            (Arc::clone(&stop), Arc::clone(&client_side), Arc::clone(&relay_side), Arc::clone(&client_addr));
        threads.push(std::thread::Builder::new().name("netem-up".into()).spawn(move || {
            let _ = voice_client::raise_current_thread_priority();
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                match cs.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        *ca.lock().unwrap_or_else(PoisonError::into_inner) = Some(from);
                        let _ = rs.send(&buf[..n]);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {}
                }
            }
        })?);

        let (st, cs, rs, ca, lg) = (Arc::clone(&stop), client_side, relay_side, client_addr, Arc::clone(&log));
        threads.push(std::thread::Builder::new().name("netem-down".into()).spawn(move || {
            let _ = voice_client::raise_current_thread_priority();
            let mut down = Downlink { impairment, rng: Rng::new(seed), bad: false, queue: BinaryHeap::new(), order: 0 };
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                let now = Instant::now();
                while down.queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    let Some(Reverse(d)) = down.queue.pop() else { break };
                    if let Some(to) = *ca.lock().unwrap_or_else(PoisonError::into_inner) {
                        let _ = cs.send_to(&d.bytes, to);
                    }
                }
                let wait = down.queue.peek().map_or(POLL, |Reverse(d)| {
                    d.at.saturating_duration_since(now).clamp(Duration::from_micros(100), POLL)
                });
                let _ = rs.set_read_timeout(Some(wait));
                match rs.recv(&mut buf) {
                    Ok(n) => {
                        let at = Instant::now();
                        if let Some(entry) = down.offer(at, &buf[..n]) {
                            lg.lock().unwrap_or_else(PoisonError::into_inner).push(entry);
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {}
                }
            }
        })?);

        let st = Arc::clone(&stop);
        threads.push(std::thread::Builder::new().name("netem-tcp".into()).spawn(move || {
            let mut pipes = Vec::new();
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if let Ok(relay) = TcpStream::connect(relay_tcp) {
                            pipes.extend(pipe(client, relay, &st));
                        }
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
            for p in pipes {
                let _ = p.join();
            }
        })?);
        Ok(Self { tcp, log, stop, threads })
    }

    /// Every audio packet seen so far, in the order the relay sent them.
    pub fn audio_log(&self) -> Vec<AudioLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops the proxy and returns the audio log.
    pub fn stop(mut self) -> Vec<AudioLog> {
        self.halt();
        self.audio_log()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Two threads copying a TCP connection both ways until either side closes or the proxy stops.
fn pipe(a: TcpStream, b: TcpStream, stop: &Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    let mut out = Vec::new();
    for (from, to) in [(a.try_clone(), b.try_clone()), (Ok(b), Ok(a))] {
        let (Ok(mut from), Ok(mut to)) = (from, to) else { continue };
        let st = Arc::clone(stop);
        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
        let _ = to.set_nodelay(true);
        if let Ok(h) = std::thread::Builder::new().name("netem-pipe".into()).spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while !st.load(Ordering::Relaxed) {
                match std::io::Read::read(&mut from, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        }) {
            out.push(h);
        }
    }
    out
}

struct Downlink {
    impairment: Impairment,
    rng: Rng,
    /// Gilbert–Elliott state: in a loss burst.
    bad: bool,
    queue: BinaryHeap<Reverse<Due>>,
    order: u64,
}

impl Downlink {
    /// Impairs one datagram from the relay; returns its log entry if it is audio.
    fn offer(&mut self, now: Instant, bytes: &[u8]) -> Option<AudioLog> {
        let imp = self.impairment;
        let audio = bytes.len() >= 22 && bytes[0] == voice_proto::VERSION && bytes[1] == 0x02;
        let mut delay = imp.latency;
        let mut entry = None;
        if audio {
            let seq = u64::from_be_bytes(bytes[8..16].try_into().unwrap_or_default());
            let timestamp = u32::from_be_bytes(bytes[16..20].try_into().unwrap_or_default());
            let lost = self.lose();
            entry = Some(AudioLog {
                seq,
                timestamp,
                delivered: !lost,
                end_of_talkspurt: bytes[2] & 1 != 0,
                payload_len: bytes.len().saturating_sub(22 + 16),
            });
            if lost {
                return entry;
            }
            if !imp.jitter.is_zero() {
                let extra = (self.rng.normal() * imp.jitter.as_secs_f64()).max(0.0);
                delay += Duration::from_secs_f64(extra);
            }
        }
        self.order += 1;
        self.queue.push(Reverse(Due { at: now + delay, order: self.order, bytes: bytes.to_vec() }));
        entry
    }

    fn lose(&mut self) -> bool {
        let imp = self.impairment;
        if imp.loss <= 0.0 {
            return false;
        }
        match imp.burst {
            None => self.rng.uniform() < imp.loss,
            Some(mean_burst) => {
                // Gilbert–Elliott with loss only in the bad state: leave it with 1/mean_burst per packet; enter it
                // at the rate that makes the stationary loss `loss`.
                let p_bg = 1.0 / mean_burst.max(1.0);
                let p_gb = (imp.loss * p_bg / (1.0 - imp.loss).max(1e-9)).min(1.0);
                self.bad = if self.bad { self.rng.uniform() >= p_bg } else { self.rng.uniform() < p_gb };
                self.bad
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use voice_proto::{AudioHeader, KeyId, MediaKey, PublicId, Seq, SessionSecret, SessionToken, Timestamp};

    use super::*;

    /// The proxy must recognise the relay's AUDIO_DOWN of the protocol version in use (it impairs and logs only
    /// those): a real one, built as a client and the relay build it, is logged with its sequence number.
    #[test]
    fn a_real_audio_down_is_recognised_and_logged() {
        let key = MediaKey::new(KeyId(1), &[7; 32]);
        let uplink = SessionSecret::new([9; 32]).uplink_key();
        let header = AudioHeader { seq: Seq(42), timestamp: Timestamp(960), ..AudioHeader::default() };
        let mut buf = [0u8; voice_proto::MAX_DATAGRAM_LEN];
        let n = key.seal_audio_up(&uplink, SessionToken(5), PublicId(3), &header, b"opus", &mut buf).expect("seals");
        let n = voice_proto::rewrite_up_to_down(&mut buf[..n], PublicId(3)).expect("rewrites");
        let mut down = Downlink {
            impairment: Impairment::default(),
            rng: Rng::new(1),
            bad: false,
            queue: BinaryHeap::new(),
            order: 0,
        };
        #[allow(clippy::disallowed_methods, reason = "a unit test: any instant will do")]
        let now = Instant::now();
        let entry = down.offer(now, &buf[..n]).expect("recognised as audio");
        assert_eq!((entry.seq, entry.timestamp, entry.delivered), (42, 960, true));
        assert_eq!(entry.payload_len, 4, "the Opus bytes, without header and AEAD tag");
    }
}
