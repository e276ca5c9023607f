//! A simulated world for end-to-end tests: voice-relay's sans-IO `Relay` and N clients (`Session` + `Media`), each
//! with a `NetworkConditioner` on its uplink and downlink, a virtual clock that jumps from event to event (datagrams
//! due, timers) and to each device period of a quarter frame (a sound device with that period on each side, and a
//! speaker ring mixed into as the driver does), and control connections carried as bytes (with drops on demand).
//! No sockets, no threads, no sleeps.
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::disallowed_methods,
    reason = "the simulated clock needs an origin; capture and mix CPU time is measured (printed, never asserted)"
)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use voice_client::{
    ConditionerConfig, ConnectionCommand, Event, Media, MediaConfig, NetworkConditioner, Session, SessionConfig,
    TalkMode,
};
use voice_proto::control::{ChannelConfig, Credential, Message};
use voice_relay::{Authenticator, ConnId, MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SeededRng};

pub const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
pub const SERVER: &str = "192.0.2.1:7000";
/// Device periods per frame period (each side of every client).
const DEVICE_PERIODS: usize = 4;

pub struct Peer {
    pub session: Session,
    pub media: Media,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
    /// Control bytes the relay has not taken yet (frames behind a Login wait there for its credential check).
    pub control: BytesMut,
    pub up: NetworkConditioner<(SocketAddr, Bytes)>,
    pub down: NetworkConditioner<Bytes>,
    /// Microphone signal (48 kHz mono) and how much of it was pushed.
    pub mic: Vec<f32>,
    pub mic_pos: usize,
    /// Everything played (48 kHz mono), one frame per tick from the first tick.
    pub out: Vec<f32>,
    /// Mixed audio the device has not played yet (the speaker ring).
    pub ring: VecDeque<f32>,
    /// Datagrams from the relay are received into this buffer and split off it, as the driver does.
    rx_buf: BytesMut,
    /// Heap allocations made by this peer's per-frame media work (capture, datagram handling, mix, stats), counted
    /// since the last `reset_allocations`.
    pub media_allocations: u64,
    pub stats: voice_client::SessionStats,
    pub events: Vec<Event>,
    pub logins: usize,
    /// Wall-clock time spent in `Media::capture` and `Media::mix` (for the CPU figures only; never asserted).
    pub capture_time: Duration,
    pub mix_time: Duration,
}

pub struct World {
    pub relay: Relay,
    /// Answers the relay's credential checks at once (the driver's part).
    pub auth: MemoryAuthenticator,
    pub now: Instant,
    pub start: Instant,
    pub peers: Vec<Peer>,
    pub frame_ms: u32,
    pub room: String,
    next_conn: u64,
}

impl World {
    /// A relay with rooms `lobby` (20 ms frames) and `fast` (10 ms frames), and `n` clients that join `room` with
    /// the given network conditions on every link.
    pub fn new(n: usize, room: &str, net: ConditionerConfig, talk_mode: TalkMode) -> Self {
        Self::with_media(n, room, net, talk_mode, &MediaConfig::default())
    }

    /// As [`World::new`], with every client's media settings.
    pub fn with_media(n: usize, room: &str, net: ConditionerConfig, talk_mode: TalkMode, media: &MediaConfig) -> Self {
        let mut auth = MemoryAuthenticator::new();
        for name in NAMES {
            auth = auth.with_user(name, format!("pw-{name}"));
        }
        let config = RelayConfig {
            rooms: vec![
                RoomConfig::new("lobby"),
                RoomConfig::new("fast").with_config(ChannelConfig { frame_ms: 10, ..ChannelConfig::default() }),
            ],
            ..RelayConfig::default()
        };
        let frame_ms = if room == "fast" { 10 } else { 20 };
        let start = Instant::now();
        let relay =
            Relay::new(config, Box::new(SeededRng::new(7)), start, 1_763_800_000_000).expect("valid relay config");
        let mut world =
            Self { relay, auth, now: start, start, peers: Vec::new(), frame_ms, room: room.into(), next_conn: 1 };
        for (i, name) in NAMES.iter().take(n).enumerate() {
            let cfg = SessionConfig::new(SERVER.parse().unwrap(), *name, Credential::Password(format!("pw-{name}")))
                .with_room(room)
                .with_talk_mode(talk_mode);
            let session = Session::new(cfg, start, 1000 * (i as u64 + 1));
            let media = Media::new(media.clone()).expect("media");
            world.peers.push(Peer {
                session,
                media,
                addr: SocketAddr::from(([10, 0, 0, i as u8 + 1], 5000)),
                conn: None,
                control: BytesMut::new(),
                up: NetworkConditioner::new(net, 100 + i as u64).unwrap(),
                down: NetworkConditioner::new(net, 200 + i as u64).unwrap(),
                mic: Vec::new(),
                mic_pos: 0,
                out: Vec::new(),
                ring: VecDeque::new(),
                rx_buf: BytesMut::new(),
                media_allocations: 0,
                stats: voice_client::SessionStats::default(),
                events: Vec::new(),
                logins: 0,
                capture_time: Duration::ZERO,
                mix_time: Duration::ZERO,
            });
        }
        world
    }

    pub fn frame_samples(&self) -> usize {
        self.frame_ms as usize * 48
    }

    /// Runs until every peer is streaming (bounded).
    pub fn connect_all(&mut self) {
        for _ in 0..200 {
            self.tick();
            if self.peers.iter().all(|p| p.session.state() == voice_client::State::Streaming) {
                // Let member lists settle.
                for _ in 0..5 {
                    self.tick();
                }
                return;
            }
        }
        panic!("not all peers streaming: {:?}", self.peers.iter().map(|p| p.session.state()).collect::<Vec<_>>());
    }

    /// One frame period, in device periods of a quarter frame: capture, network, timers, playout.
    pub fn tick(&mut self) {
        let fs = self.frame_samples();
        let period = fs / DEVICE_PERIODS;
        let step = Duration::from_millis(u64::from(self.frame_ms)) / DEVICE_PERIODS as u32;
        for _ in 0..DEVICE_PERIODS {
            // Between device periods the clock jumps from event to event (a datagram due out of a conditioner, a
            // session's or the relay's timer), so each happens at its own time, not at the next device period.
            let device = self.now + step;
            let mut events = 0;
            while let Some(at) = self.next_event().filter(|&at| at < device) {
                events += 1;
                assert!(events < 10_000, "an event stays due at {:?}", at - self.start);
                self.now = self.now.max(at);
                self.network();
            }
            self.now = device;
            let now = self.now;
            for p in &mut self.peers {
                let mut chunk = vec![0.0f32; period];
                let end = (p.mic_pos + period).min(p.mic.len());
                if p.mic_pos < end {
                    chunk[..end - p.mic_pos].copy_from_slice(&p.mic[p.mic_pos..end]);
                }
                p.mic_pos += period;
                let t = Instant::now();
                let (media, session) = (&mut p.media, &mut p.session);
                let counted = allocation_counter::measure(|| media.capture(session, now, &chunk).expect("capture"));
                p.capture_time += t.elapsed();
                p.media_allocations += counted.count_total;
            }
            self.network();
            for p in &mut self.peers {
                // As the driver: mix while the speaker ring holds less than a device period and 2 ms; then the
                // device plays a period.
                let t = Instant::now();
                for _ in 0..4 {
                    if p.ring.len() >= period + 96 {
                        break;
                    }
                    let (media, session, ring) = (&mut p.media, &mut p.session, &mut p.ring);
                    let counted = allocation_counter::measure(|| {
                        let audio = media.mix(session, now).expect("mix");
                        ring.extend(audio.iter().copied());
                    });
                    p.media_allocations += counted.count_total;
                }
                p.mix_time += t.elapsed();
                for _ in 0..period {
                    p.out.push(p.ring.pop_front().unwrap_or(0.0));
                }
                let (session, stats) = (&p.session, &mut p.stats);
                p.media_allocations += allocation_counter::measure(|| session.stats_into(stats)).count_total;
            }
        }
        // Receiver reports, pings etc. created by timers go out on the next step.
    }

    /// The earliest time something is due in the network or a timer (conditioners, sessions, relay), if any.
    fn next_event(&self) -> Option<Instant> {
        let peers =
            self.peers.iter().flat_map(|p| [p.up.poll_timeout(), p.down.poll_timeout(), p.session.poll_timeout()]);
        peers.chain([self.relay.poll_timeout()]).flatten().min()
    }

    /// Moves everything that is due, until nothing moves.
    pub fn network(&mut self) {
        let now = self.now;
        for _ in 0..100 {
            let mut moved = false;
            if self.relay.poll_timeout().is_some_and(|t| t <= now) {
                self.relay.handle_timeout(now);
            }
            for i in 0..self.peers.len() {
                if self.peers[i].session.poll_timeout().is_some_and(|t| t <= now) {
                    self.peers[i].session.handle_timeout(now);
                }
                moved |= self.drive_peer(i);
            }
            // Uplinks into the relay.
            for p in &mut self.peers {
                while let Some((from, bytes)) = p.up.poll(now) {
                    self.relay.handle_datagram(now, from, BytesMut::from(&bytes[..]));
                    moved = true;
                }
            }
            while let Some(t) = self.relay.poll_transmit() {
                moved = true;
                if let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.destination) {
                    p.down.push(now, t.payload);
                }
            }
            while let Some(e) = self.relay.poll_event() {
                moved = true;
                match e {
                    voice_relay::Event::Send { conn, msg } => {
                        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
                            let mut buf = BytesMut::new();
                            msg.encode(&mut buf).expect("relay messages encode");
                            p.session.handle_control_bytes(now, &buf);
                        }
                    }
                    voice_relay::Event::Close { conn } => {
                        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
                            p.conn = None;
                            p.control.clear();
                            p.session.handle_disconnected(now);
                        }
                    }
                    voice_relay::Event::Authenticate(request) => {
                        let result = self.auth.authenticate(&request);
                        self.relay.handle_auth_result(now, request.id(), result);
                        let conn = request.conn();
                        if let Some(p) = self.peers.iter_mut().find(|p| p.conn == Some(conn)) {
                            self.relay.handle_control_bytes(now, conn, &mut p.control);
                        }
                    }
                    _ => {}
                }
            }
            for p in &mut self.peers {
                let relay_addr = p.session.relay_addr();
                while let Some(bytes) = p.down.poll(now) {
                    if let Some(from) = relay_addr {
                        // As the driver receives: into a large buffer, each datagram split off it.
                        if p.rx_buf.capacity() < 2048 {
                            p.rx_buf.reserve(64 * 1024);
                        }
                        p.rx_buf.extend_from_slice(&bytes);
                        let datagram = p.rx_buf.split();
                        let session = &mut p.session;
                        let counted = allocation_counter::measure(|| session.handle_datagram(now, from, datagram));
                        p.media_allocations += counted.count_total;
                    }
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Drains one peer's session outputs. Returns whether anything moved.
    fn drive_peer(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        while let Some(cmd) = self.peers[i].session.poll_connection() {
            moved = true;
            match cmd {
                ConnectionCommand::Connect => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    self.relay.connection_opened(now, conn);
                    self.peers[i].conn = Some(conn);
                    self.peers[i].session.handle_connected(now);
                }
                ConnectionCommand::Close => {
                    if let Some(conn) = self.peers[i].conn.take() {
                        self.relay.connection_closed(now, conn);
                    }
                    self.peers[i].control.clear();
                }
            }
        }
        let p = &mut self.peers[i];
        while let Some(bytes) = p.session.poll_control_bytes() {
            moved = true;
            if let Some(conn) = p.conn {
                p.control.extend_from_slice(&bytes);
                self.relay.handle_control_bytes(now, conn, &mut p.control);
            }
        }
        while let Some(t) = p.session.poll_transmit() {
            moved = true;
            assert_eq!(t.destination.ip(), SERVER.parse::<SocketAddr>().unwrap().ip(), "UDP goes to the relay");
            p.up.push(now, (p.addr, t.payload));
        }
        while let Some(e) = p.session.poll_event() {
            if matches!(e, Event::LoggedIn { .. }) {
                p.logins += 1;
            }
            p.events.push(e);
        }
        moved
    }

    /// Drops peer `i`'s control connection (as a TCP reset would).
    pub fn drop_tcp(&mut self, i: usize) {
        if let Some(conn) = self.peers[i].conn.take() {
            self.relay.connection_closed(self.now, conn);
        }
        self.peers[i].control.clear();
        self.peers[i].session.handle_disconnected(self.now);
    }

    pub fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.tick();
        }
    }

    pub fn id(&self, i: usize) -> voice_proto::PublicId {
        self.peers[i].session.public_id().expect("logged in")
    }

    /// Sets peer `i`'s microphone to `signal`, starting at the next tick; returns the output index (of every peer)
    /// that corresponds to the tick the signal starts at.
    /// Starts counting every peer's media allocations anew.
    pub fn reset_allocations(&mut self) {
        for p in &mut self.peers {
            p.media_allocations = 0;
        }
    }

    pub fn speak(&mut self, i: usize, signal: Vec<f32>) -> usize {
        let p = &mut self.peers[i];
        p.mic = signal;
        p.mic_pos = 0;
        p.out.len()
    }
}

/// Energy of a signal.
pub fn energy(x: &[f32]) -> f64 {
    x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum()
}

/// Mean over 250 ms windows of `signal` (those with speech in them) of the best correlation with `out` at a lag of
/// 0 ..= `max_lag` samples from the same position: robust to the small time-stretches of the jitter buffer.
pub fn windowed_correlation(signal: &[f32], out: &[f32], max_lag: usize) -> f32 {
    let window = 12_000;
    let (mut sum, mut n) = (0.0f32, 0usize);
    for start in (0..signal.len().saturating_sub(window)).step_by(window) {
        let a = &signal[start..start + window];
        if energy(a) < 1.0 || start + window + max_lag > out.len() {
            continue;
        }
        let b = &out[start..start + window + max_lag];
        // Coarse search every 8 samples, then every sample around the best coarse lag.
        let corr = |lag: usize| voice_sim::audio::correlation(a, &b[lag..lag + window]);
        let coarse = (0..=max_lag).step_by(8).max_by(|&x, &y| corr(x).total_cmp(&corr(y))).unwrap_or(0);
        let fine = (coarse.saturating_sub(8)..=(coarse + 8).min(max_lag)).map(corr).fold(f32::MIN, f32::max);
        sum += fine;
        n += 1;
    }
    if n == 0 { 0.0 } else { sum / n as f32 }
}
