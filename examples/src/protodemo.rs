//! The wire-protocol demo: one relay thread and three clients on loopback UDP, using only `voice-proto`.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use voice_proto::{
    AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, ReplayWindow, Seq, SessionSecret, SessionToken,
    Timestamp, rewrite_up_to_down,
};

/// What the demo measured.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Audio packets sealed and sent by all clients.
    pub sent: u64,
    /// Packets the relay forwarded (one per recipient).
    pub forwarded: u64,
    /// Packets that opened at the receivers.
    pub received: u64,
    /// Duplicates refused by receivers' replay windows.
    pub replays_refused: u64,
    /// Spoofed packets (valid token, unbound address) the relay dropped.
    pub spoofed_dropped: u64,
    /// Mean one-way latency client → relay → client, microseconds.
    pub mean_latency_us: f64,
}

struct Session {
    secret: SessionSecret,
    id: PublicId,
    bound: Option<SocketAddr>,
    last_counter: u64,
}

/// Runs the relay loop until `stop` is set, returning (forwarded, spoofed_dropped).
fn relay(sock: UdpSocket, mut sessions: HashMap<SessionToken, Session>, stop: &AtomicBool) -> Result<(u64, u64)> {
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let (mut forwarded, mut spoofed) = (0u64, 0u64);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while !stop.load(Ordering::Relaxed) {
        buf.resize(MAX_DATAGRAM_LEN + 1, 0);
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        let mut pkt = buf.split_to(n);
        match Datagram::decode_from_client(&pkt) {
            Ok(Datagram::Hello(h)) => {
                let Some(s) = sessions.get_mut(&h.token) else { continue };
                if s.secret.verify_hello(&h).is_ok() && h.counter > s.last_counter {
                    s.last_counter = h.counter;
                    s.bound = Some(from);
                    let mut out = Vec::new();
                    Datagram::HelloAck(s.secret.hello_ack(s.id, h.counter)).encode(&mut out);
                    sock.send_to(&out, from)?;
                }
            }
            Ok(Datagram::AudioUp(a)) => {
                let Some(s) = sessions.get(&a.token) else { continue };
                if s.bound != Some(from) {
                    spoofed += 1;
                    continue;
                }
                let sender = s.id;
                rewrite_up_to_down(&mut pkt, sender)?;
                // One buffer, shared by every recipient.
                let shared: Bytes = pkt.freeze();
                for other in sessions.values().filter(|o| o.id != sender) {
                    if let Some(addr) = other.bound {
                        sock.send_to(&shared, addr)?;
                        forwarded += 1;
                    }
                }
            }
            _ => {}
        }
    }
    Ok((forwarded, spoofed))
}

/// Receives until `expected` packets opened or nothing arrived for a second; returns (opened, refused, latency sum µs).
fn receive(sock: UdpSocket, key: &MediaKey, start: Instant, expected: u64) -> Result<(u64, u64, u128)> {
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut windows: HashMap<PublicId, ReplayWindow> = HashMap::new();
    let (mut opened, mut refused, mut latency_us) = (0u64, 0u64, 0u128);
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    while opened < expected {
        let Ok(n) = sock.recv(&mut buf) else { break };
        let now_us = start.elapsed().as_micros();
        let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..n]) else { continue };
        let (sender, header, at) = (a.sender, a.header, n - a.payload.len());
        match windows.entry(sender).or_default().open(key, sender, &header, &mut buf[at..n]) {
            Ok(plain) => {
                let sent_us = u64::from_be_bytes(plain[..8].try_into()?);
                latency_us += now_us.saturating_sub(u128::from(sent_us));
                opened += 1;
            }
            Err(_) => refused += 1,
        }
    }
    // Late duplicates of the last packets may still be in flight; take what is already queued.
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    while let Ok(n) = sock.recv(&mut buf) {
        if let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..n]) {
            let (sender, header, at) = (a.sender, a.header, n - a.payload.len());
            if windows.entry(sender).or_default().open(key, sender, &header, &mut buf[at..n]).is_err() {
                refused += 1;
            }
        }
    }
    Ok((opened, refused, latency_us))
}

/// Runs the demo with `packets` 20 ms audio packets per client, sent every `pace`; returns what it measured.
pub fn run(packets: u64, pace: Duration) -> Result<Report> {
    let key = Arc::new(MediaKey::new(KeyId(1), &[0x5A; 32]));
    let relay_sock = UdpSocket::bind("127.0.0.1:0")?;
    let relay_addr = relay_sock.local_addr()?;
    let mut sessions = HashMap::new();
    let mut clients = Vec::new();
    for i in 0..3u32 {
        let token = SessionToken(0x1000 + i);
        let secret = [i as u8 + 1; 32];
        sessions.insert(
            token,
            Session { secret: SessionSecret::new(secret), id: PublicId(i + 1), bound: None, last_counter: 0 },
        );
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        clients.push((token, PublicId(i + 1), SessionSecret::new(secret), sock));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let relay_stop = Arc::clone(&stop);
    let relay_thread = thread::spawn(move || relay(relay_sock, sessions, &relay_stop));

    // Bind every client with an authenticated hello.
    for (token, id, secret, sock) in &clients {
        let mut out = Vec::new();
        Datagram::Hello(secret.hello(*token, 1)).encode(&mut out);
        sock.send_to(&out, relay_addr)?;
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let n = sock.recv(&mut buf).context("no hello-ack from the relay")?;
        match Datagram::decode_from_relay(&buf[..n]) {
            Ok(Datagram::HelloAck(ack)) if ack.public_id == *id && secret.verify_hello_ack(&ack).is_ok() => {}
            other => bail!("unexpected answer to hello: {other:?}"),
        }
    }

    let start = Instant::now();
    let receivers = clients
        .iter()
        .map(|(_, _, _, sock)| {
            let (sock, key) = (sock.try_clone()?, Arc::clone(&key));
            Ok(thread::spawn(move || receive(sock, &key, start, packets * 2)))
        })
        .collect::<Result<Vec<_>>>()?;

    // A spoofer who knows client 0's token (it is in clear text) but sends from another address.
    let spoofer = UdpSocket::bind("127.0.0.1:0")?;
    let mut report = Report::default();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    for seq in 0..packets {
        for (token, id, _, sock) in &clients {
            // Plaintext stands in for Opus: the send time (µs since start) and filler.
            let mut plain = [0u8; 80];
            plain[..8].copy_from_slice(&(start.elapsed().as_micros() as u64).to_be_bytes());
            let header = AudioHeader { seq: Seq(seq), timestamp: Timestamp(960 * seq as u32), ..Default::default() };
            let n = key.seal_audio_up(*token, *id, &header, &plain, &mut buf)?;
            sock.send_to(&buf[..n], relay_addr)?;
            report.sent += 1;
            if seq % 10 == 0 {
                // The network duplicates this packet: receivers must accept it once.
                sock.send_to(&buf[..n], relay_addr)?;
                spoofer.send_to(&buf[..n], relay_addr)?;
            }
        }
        if !pace.is_zero() {
            thread::sleep(pace);
        }
    }

    let mut latency_sum = 0u128;
    for r in receivers {
        let (opened, refused, latency) = r.join().map_err(|_| anyhow::anyhow!("receiver panicked"))??;
        report.received += opened;
        report.replays_refused += refused;
        latency_sum += latency;
    }
    stop.store(true, Ordering::Relaxed);
    let (forwarded, spoofed) = relay_thread.join().map_err(|_| anyhow::anyhow!("relay thread panicked"))??;
    report.forwarded = forwarded;
    report.spoofed_dropped = spoofed;
    report.mean_latency_us = latency_sum as f64 / report.received.max(1) as f64;
    Ok(report)
}
