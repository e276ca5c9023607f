//! Body of the `relay` fuzz target, shared with the corpus-replay test (`voice-sim/tests/corpus_relay.rs`) so that
//! stable Rust replays exactly what the fuzzer runs.
//!
//! [`relay_inputs`] reads its input as a program: a sequence of operations — a raw datagram from one of a few
//! addresses, raw control bytes on one of a few connections, a time advance, or a *well-formed* action built from
//! what the relay said so far (login, join, a HELLO with a valid MAC, audio with a live token, resume, …) so the
//! fuzzer reaches deep states quickly. After every operation it checks the relay's safety invariants and panics
//! only if one is broken:
//!
//! * nothing is ever sent to an address that has not sent a HELLO with a valid MAC for some session;
//! * a datagram's answer (anything but forwarded audio) is never larger than the datagram, and goes back to it;
//! * forwarded audio is exactly as long as the AUDIO_UP it came from;
//! * every control message the relay emits encodes within the protocol's caps.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use voice_proto::control::{ChannelConfig, ClientMessage, Credential, Message, SecretBytes, ServerMessage};
use voice_proto::{Datagram, PacketKind, Ping, PublicId, ReceiverReport, ReportBlock, SessionSecret, SessionToken};

use voice_relay::{Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SeededRng};

const ADDRS: usize = 4;
const CONNS: u64 = 3;
const USERS: [&str; 3] = ["ann", "ben", "eve"];
const ROOMS: [&str; 5] = ["lobby", "staff", "text", "duo", "adhoc"];

struct Known {
    token: SessionToken,
    public_id: PublicId,
    secret: SessionSecret,
    counter: u64,
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

struct Fuzz {
    relay: Relay,
    /// Answers the relay's credential checks at once.
    auth: MemoryAuthenticator,
    now: Instant,
    known: Vec<Known>,
    authenticated: HashSet<SocketAddr>,
    control: Vec<BytesMut>,
    pool: BytesMut,
    /// Sequence number of the next AUDIO_UP (the relay refuses one it already forwarded for the session).
    seq: u64,
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i % ADDRS as u8 + 1], 5000))
}

impl Fuzz {
    fn new() -> Self {
        #[allow(clippy::disallowed_methods, reason = "a test harness: the origin of the relay's time")]
        let now = Instant::now();
        let auth = MemoryAuthenticator::new().with_user("ann", "pw").with_user("ben", "pw");
        let config = RelayConfig {
            rooms: vec![
                RoomConfig::new("lobby"),
                RoomConfig::new("staff").with_password("pw"),
                RoomConfig::new("text").with_config(ChannelConfig { allow_voice: false, ..ChannelConfig::default() }),
                RoomConfig::new("duo").with_config(ChannelConfig { max_users: 2, ..ChannelConfig::default() }),
            ],
            chat_history: 4,
            packet_burst: 5,
            ..RelayConfig::default()
        };
        // The configuration above is valid (checked by the corpus test), so `new` cannot fail.
        let relay = Relay::new(config, Box::new(SeededRng::new(1)), now, 0).expect("valid config");
        Self {
            relay,
            auth,
            now,
            known: Vec::new(),
            authenticated: HashSet::new(),
            seq: 0,
            control: (0..CONNS).map(|_| BytesMut::new()).collect(),
            pool: BytesMut::with_capacity(8192),
        }
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        if let Ok(Datagram::Hello(h)) = Datagram::decode_from_client(bytes)
            && self.known.iter().any(|k| k.token == h.token && k.secret.verify_hello(&h).is_ok())
        {
            self.authenticated.insert(from);
        }
        self.pool.reserve(bytes.len());
        self.pool.put_slice(bytes);
        let buf = self.pool.split();
        self.relay.handle_datagram(self.now, from, buf);
        self.drain(Some((from, bytes.len())));
    }

    fn control(&mut self, conn: u64, msg: ClientMessage) {
        self.relay.handle_control(self.now, ConnId(conn), msg);
        self.drain(None);
    }

    /// Drains all output and checks the invariants. `trigger`: the datagram that was just handled, if any.
    fn drain(&mut self, trigger: Option<(SocketAddr, usize)>) {
        while let Some(t) = self.relay.poll_transmit() {
            assert!(self.authenticated.contains(&t.destination), "sent to unauthenticated {}", t.destination);
            let Some((from, len)) = trigger else { panic!("a datagram was sent without a datagram input") };
            if t.payload.get(1) == Some(&(PacketKind::AudioDown as u8)) {
                // The AUDIO_UP without its uplink tag (`PROTOCOL.md` §2.4).
                assert_eq!(t.payload.len() + voice_proto::UPLINK_TAG_LEN, len, "forwarded audio changed size");
            } else {
                assert!(t.payload.len() <= len, "answer larger than its trigger");
                assert_eq!(t.destination, from, "answer sent elsewhere");
            }
        }
        while let Some(e) = self.relay.poll_event() {
            if let Event::Authenticate(request) = &e {
                let conn = request.conn();
                self.relay.handle_auth_result(self.now, request.id(), self.auth.authenticate(request));
                // The frames behind the Login waited in the connection's buffer.
                if let Some(buf) = usize::try_from(conn.0).ok().and_then(|i| self.control.get_mut(i)) {
                    self.relay.handle_control_bytes(self.now, conn, buf);
                }
            }
            if let Event::Send { msg, .. } = e {
                let mut out = BytesMut::new();
                // An invariant, not an input check: the relay must never build a message over the protocol's caps.
                msg.encode(&mut out).expect("every relay message encodes within the caps");
                if let ServerMessage::LoginOk { token, public_id, secret, .. } = msg
                    && self.known.len() < 16
                {
                    self.known.push(Known { token, public_id, secret: SessionSecret::new(secret.0), counter: 0 });
                }
            }
        }
    }

    fn session(&self, k: u8) -> Option<&Known> {
        if self.known.is_empty() { None } else { self.known.get(usize::from(k) % self.known.len()) }
    }

    fn step(&mut self, op: u8, r: &mut Input<'_>) -> Option<()> {
        match op % 10 {
            0 => {
                let from = addr(r.u8()?);
                let len = usize::from(r.u8()?) * 5;
                let bytes = r.take(len).to_vec();
                self.datagram(from, &bytes);
            }
            1 => {
                let conn = u64::from(r.u8()?) % CONNS;
                let len = usize::from(r.u8()?);
                let bytes = r.take(len);
                let idx = conn as usize;
                self.control[idx].extend_from_slice(bytes);
                let mut buf = std::mem::take(&mut self.control[idx]);
                self.relay.handle_control_bytes(self.now, ConnId(conn), &mut buf);
                self.control[idx] = buf;
                self.drain(None);
            }
            2 => {
                self.now += Duration::from_millis(u64::from(r.u16()?) * 10);
                self.relay.handle_timeout(self.now);
                self.drain(None);
            }
            3 => {
                let conn = u64::from(r.u8()?) % CONNS;
                let user = USERS[usize::from(r.u8()?) % USERS.len()].to_string();
                self.control(
                    conn,
                    ClientMessage::Login { user, credential: Credential::Password("pw".into()), client: "f".into() },
                );
            }
            4 => {
                let conn = u64::from(r.u8()?) % CONNS;
                let b = r.u8()?;
                let room = ROOMS[usize::from(b) % ROOMS.len()].to_string();
                let password = (b & 0x80 != 0).then(|| "pw".to_string());
                self.control(conn, ClientMessage::Join { room, password });
            }
            5 => {
                let from = addr(r.u8()?);
                let k = r.u8()?;
                let bump = u64::from(r.u8()?);
                let idx = usize::from(k) % self.known.len().max(1);
                let Some(s) = self.known.get_mut(idx) else { return Some(()) };
                // Small or zero bumps replay old counters.
                s.counter = s.counter.saturating_add(bump).saturating_sub(1);
                let mut v = Vec::new();
                Datagram::Hello(s.secret.hello(s.token, s.counter)).encode(&mut v);
                self.datagram(from, &v);
            }
            6 => {
                let from = addr(r.u8()?);
                let known = self.session(r.u8()?);
                let token = known.map_or(SessionToken(1), |s| s.token);
                let uplink = known.map(|s| s.secret.uplink_key());
                let b = r.u8()?;
                let len = voice_proto::MIN_AUDIO_UP_LEN + usize::from(r.u8()?) * 4;
                let mut v = vec![0u8; len];
                v[0] = voice_proto::VERSION;
                v[1] = PacketKind::AudioUp as u8;
                v[2] = b & 1;
                v[4..8].copy_from_slice(&token.0.to_be_bytes());
                self.seq += 1;
                v[8..16].copy_from_slice(&self.seq.to_be_bytes());
                v[21] = (b >> 1) % 3;
                // Tagged with the session's key (so it gets past the tag check) unless bit 7 asks for a forgery.
                if let Some(uplink) = uplink.filter(|_| b & 0x80 == 0) {
                    uplink.sign_in_place(&mut v).ok();
                }
                self.datagram(from, &v);
            }
            7 => {
                let from = addr(r.u8()?);
                let known = self.session(r.u8()?);
                let (token, id) = known.map_or((SessionToken(1), PublicId(1)), |s| (s.token, s.public_id));
                let uplink = known.map_or_else(|| SessionSecret::new([0; 32]).uplink_key(), |s| s.secret.uplink_key());
                let mut v = Vec::new();
                match r.u8()? % 3 {
                    0 => uplink.tagged(Datagram::Ping(Ping { token, echo: 7, tag: [0; 8] })).encode(&mut v),
                    1 => {
                        let blocks = [ReportBlock { source: id, fraction_lost: r.u8()?, ..ReportBlock::default() }];
                        // One block is within the 16-block cap.
                        let report = ReceiverReport::new(token, None, &blocks).expect("one block");
                        uplink.tagged(Datagram::ReceiverReport(report)).encode(&mut v);
                    }
                    _ => {}
                }
                self.datagram(from, &v);
            }
            8 => {
                let conn = u64::from(r.u8()?) % CONNS;
                let b = r.u8()?;
                let ids: Vec<PublicId> = self.known.iter().map(|k| k.public_id).take(usize::from(b % 4)).collect();
                let msg = match b % 9 {
                    0 => ClientMessage::Leave,
                    1 => ClientMessage::SetState { muted: b & 0x10 != 0, deafened: b & 0x20 != 0 },
                    2 => ClientMessage::Chat { text: "x".repeat(usize::from(b)) },
                    3 => ClientMessage::SetWhisper {
                        target: voice_proto::WhisperTarget(u16::from(b >> 6)),
                        members: ids,
                    },
                    4 => ClientMessage::QualityReport {
                        rtt_ms: 1,
                        loss_permille: u16::from(b) * 8,
                        jitter_ms: 1,
                        playout_delay_ms: 1,
                    },
                    5 => ClientMessage::ListRooms,
                    6 => {
                        let Some(s) = self.session(b >> 4) else { return Some(()) };
                        let mut secret = *s.secret.as_bytes();
                        secret[0] ^= b & 0x08;
                        ClientMessage::Resume { token: s.token, secret: SecretBytes(secret) }
                    }
                    7 => ClientMessage::Ping { nonce: u64::from(b) },
                    _ => ClientMessage::Pong { nonce: 0 },
                };
                self.control(conn, msg);
            }
            _ => {
                let conn = u64::from(r.u8()?) % CONNS;
                match r.u8()? % 16 {
                    0..=6 => self.relay.connection_closed(self.now, ConnId(conn)),
                    7..=14 => self.relay.connection_opened(self.now, ConnId(conn)),
                    _ => self.relay.shutdown(self.now),
                }
                self.drain(None);
            }
        }
        Some(())
    }
}

/// Runs `data` as a program of relay inputs (see the module docs); panics only if a safety invariant breaks.
pub fn relay_inputs(data: &[u8]) {
    relay_inputs_counters(data);
}

/// [`relay_inputs`], returning the relay's counters at the end (lets the corpus test check that its seeds reach
/// deep states).
pub fn relay_inputs_counters(data: &[u8]) -> voice_relay::Counters {
    let mut f = Fuzz::new();
    let mut r = Input(data);
    while let Some(op) = r.u8() {
        if f.step(op, &mut r).is_none() {
            break;
        }
    }
    let c = f.relay.counters();
    assert_eq!(c.sessions as usize, f.relay.session_count(), "session gauge drifted");
    assert_eq!(c.rooms as usize, f.relay.room_count(), "room gauge drifted");
    assert!(c.bound_sessions <= c.sessions, "more bound sessions than sessions");
    c.clone()
}
