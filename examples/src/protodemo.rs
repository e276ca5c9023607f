//! The wire-protocol demo: the sans-IO relay core (`voice_relay::Relay`) driven from one UDP thread, and three
//! clients on loopback UDP speaking `voice-proto`. Login and join go through the core's control input in process
//! (no TCP); everything on the data plane is real.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_proto::{
    AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, ReplayWindow, Seq, SessionSecret, SessionToken,
    Timestamp,
};
use voice_relay::{ConnId, DropReason, Event, MemoryAuthenticator, Relay, RelayConfig, SystemRng};

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

/// Drives the sans-IO relay core from a UDP socket until `stop` is set; returns the core for its counters.
fn relay(sock: UdpSocket, mut core: Relay, stop: &AtomicBool) -> Result<Relay> {
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    // One big receive buffer, split per datagram: the shared bytes the core fans out need no allocation.
    let mut pool = BytesMut::with_capacity(256 * 1024);
    while !stop.load(Ordering::Relaxed) {
        if pool.capacity() < MAX_DATAGRAM_LEN + 1 {
            pool.reserve(256 * 1024);
        }
        pool.resize(MAX_DATAGRAM_LEN + 1, 0);
        let now = Instant::now();
        if let Ok((n, from)) = sock.recv_from(&mut pool) {
            pool.truncate(n);
            core.handle_datagram(now, from, pool.split());
        }
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        while let Some(t) = core.poll_transmit() {
            sock.send_to(&t.payload, t.destination)?;
        }
        while core.poll_event().is_some() {}
    }
    Ok(core)
}

/// One client's credentials from the control plane.
struct Login {
    token: SessionToken,
    id: PublicId,
    secret: SessionSecret,
    key_id: KeyId,
    key: [u8; 32],
}

impl Login {
    fn media_key(&self) -> MediaKey {
        MediaKey::new(self.key_id, &self.key)
    }
}

/// Logs three users in and joins them to one room through the core's control input (in process: the demo skips
/// TCP); returns what each client learnt.
fn log_in(core: &mut Relay, now: Instant) -> Result<Vec<Login>> {
    for i in 0..3u64 {
        let conn = ConnId(i);
        core.connection_opened(now, conn);
        let credential = Credential::Password("demo".into());
        core.handle_control(
            now,
            conn,
            ClientMessage::Login { user: format!("user{i}"), credential, client: "demo".into() },
        );
        core.handle_control(now, conn, ClientMessage::Join { room: "demo".into(), password: None });
    }
    let mut ids = [None, None, None];
    let mut keys = [None, None, None];
    while let Some(event) = core.poll_event() {
        let Event::Send { conn, msg } = event else { continue };
        let slot = usize::try_from(conn.0)?;
        match msg {
            ServerMessage::LoginOk { token, public_id, secret, .. } => ids[slot] = Some((token, public_id, secret)),
            // The newest key wins (the room rotates keys only when members leave).
            ServerMessage::MediaKey { key_id, key } => keys[slot] = Some((key_id, key.0)),
            ServerMessage::Error { code, message } => bail!("relay refused the demo: {code:?} {message}"),
            _ => {}
        }
    }
    ids.into_iter()
        .zip(keys)
        .map(|(id, key)| match (id, key) {
            (Some((token, id, secret)), Some((key_id, key))) => {
                Ok(Login { token, id, secret: SessionSecret::new(secret.0), key_id, key })
            }
            _ => bail!("a client got no LoginOk or no media key"),
        })
        .collect()
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
    let relay_sock = UdpSocket::bind("127.0.0.1:0")?;
    let relay_addr = relay_sock.local_addr()?;
    let now = Instant::now();
    let unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let auth = (0..3).fold(MemoryAuthenticator::new(), |a, i| a.with_user(format!("user{i}"), "demo"));
    let config = RelayConfig { udp_port: relay_addr.port(), ..RelayConfig::default() };
    let mut core = Relay::new(config, Box::new(auth), Box::new(SystemRng::new()), now, unix_ms)?;
    let logins = log_in(&mut core, now)?;
    let stop = Arc::new(AtomicBool::new(false));
    let relay_stop = Arc::clone(&stop);
    let relay_thread = thread::spawn(move || relay(relay_sock, core, &relay_stop));

    let mut clients = Vec::new();
    for login in logins {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        clients.push((login, sock));
    }

    // Bind every client with an authenticated hello.
    for (login, sock) in &clients {
        let mut out = Vec::new();
        Datagram::Hello(login.secret.hello(login.token, 1)).encode(&mut out);
        sock.send_to(&out, relay_addr)?;
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let n = sock.recv(&mut buf).context("no hello-ack from the relay")?;
        match Datagram::decode_from_relay(&buf[..n]) {
            Ok(Datagram::HelloAck(ack)) if ack.public_id == login.id && login.secret.verify_hello_ack(&ack).is_ok() => {
            }
            other => bail!("unexpected answer to hello: {other:?}"),
        }
    }

    let start = Instant::now();
    let receivers = clients
        .iter()
        .map(|(login, sock)| {
            let sock = sock.try_clone()?;
            let key = login.media_key();
            Ok(thread::spawn(move || receive(sock, &key, start, packets * 2)))
        })
        .collect::<Result<Vec<_>>>()?;

    let sealing_keys: Vec<MediaKey> = clients.iter().map(|(login, _)| login.media_key()).collect();
    // A spoofer who knows client 0's token (it is in clear text) but sends from another address.
    let spoofer = UdpSocket::bind("127.0.0.1:0")?;
    let mut report = Report::default();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    for seq in 0..packets {
        for ((login, sock), key) in clients.iter().zip(&sealing_keys) {
            let (token, id) = (&login.token, &login.id);
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
    let core = relay_thread.join().map_err(|_| anyhow::anyhow!("relay thread panicked"))??;
    report.forwarded = core.counters().audio_forwarded;
    report.spoofed_dropped = core.counters().dropped(DropReason::Unbound);
    report.mean_latency_us = latency_sum as f64 / report.received.max(1) as f64;
    Ok(report)
}
