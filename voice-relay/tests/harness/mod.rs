//! A simulated network for the relay: one `Relay`, N fake clients that speak voice-proto for real (hello MACs,
//! sealed audio opened with the media keys they received over control), virtual time, no sockets.
//!
//! Invariants checked on every output, in every test:
//! * no datagram ever goes to an address that has not sent a HELLO with a valid MAC for some session
//!   (attacker addresses never do);
//! * an answer to a datagram (anything that is not forwarded audio) is never larger than that datagram;
//! * forwarded audio is exactly as long as the AUDIO_UP it came from;
//! * every control message the relay emits encodes (all caps respected) and decodes back to itself.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use voice_proto::control::{ClientMessage, Credential, ErrorCode, Message, ServerMessage, decode_frame};
use voice_proto::{
    AudioFlags, AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PacketKind, PublicId, ReplayWindow, Seq,
    SessionSecret, SessionToken, Timestamp, WhisperTarget,
};
use voice_relay::{Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng};

pub const UNIX_START_MS: u64 = 1_763_800_000_000;

/// One fake client.
pub struct Client {
    pub name: String,
    pub addr: SocketAddr,
    pub conn: ConnId,
    pub token: Option<SessionToken>,
    pub public_id: Option<PublicId>,
    pub secret: Option<SessionSecret>,
    /// Media keys received, newest last (the client keeps the two newest).
    pub keys: Vec<(KeyId, [u8; 32])>,
    pub windows: HashMap<PublicId, ReplayWindow>,
    /// Audio opened successfully: (sender, plaintext).
    pub heard: Vec<(PublicId, Vec<u8>)>,
    /// Audio that arrived but did not open (unknown key, failed AEAD, replay).
    pub undecryptable: usize,
    /// Control messages received, in order.
    pub inbox: Vec<ServerMessage>,
    pub acks: Vec<u64>,
    pub pongs: Vec<u64>,
    pub hello_counter: u64,
    pub seq: u64,
    /// The relay closed this client's control connection.
    pub closed: bool,
}

impl Client {
    pub fn errors(&self) -> Vec<ErrorCode> {
        self.inbox
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    pub fn last_error(&self) -> Option<ErrorCode> {
        self.errors().last().copied()
    }

    pub fn heard_from(&self, id: PublicId) -> usize {
        self.heard.iter().filter(|(s, _)| *s == id).count()
    }

    pub fn take_inbox(&mut self) -> Vec<ServerMessage> {
        std::mem::take(&mut self.inbox)
    }

    pub fn id(&self) -> PublicId {
        self.public_id.expect("logged in")
    }
}

pub struct Sim {
    pub relay: Relay,
    /// Answers the relay's credential checks (the driver's part).
    pub auth: MemoryAuthenticator,
    pub now: Instant,
    pub clients: Vec<Client>,
    /// Addresses that sent a HELLO with a valid MAC.
    pub authenticated: HashSet<SocketAddr>,
    /// Addresses of attackers (must never receive anything).
    pub attackers: HashSet<SocketAddr>,
    /// Datagrams delivered to addresses no client owns any more (e.g. after roaming).
    pub lost: usize,
    pub sent_datagrams: usize,
    /// Clients with an open control connection send a control Ping every 10 s of virtual time (as clients
    /// SHOULD), so the relay's 30 s control idle timeout does not close them.
    pub auto_ping: bool,
    last_ping: Instant,
    pool: BytesMut,
}

pub fn default_config() -> RelayConfig {
    RelayConfig {
        rooms: vec![
            voice_relay::RoomConfig::new("lobby"),
            voice_relay::RoomConfig::new("staff").with_password("s3cret"),
            voice_relay::RoomConfig::new("text")
                .with_config(voice_proto::control::ChannelConfig { allow_voice: false, ..Default::default() }),
            voice_relay::RoomConfig::new("duo")
                .with_config(voice_proto::control::ChannelConfig { max_users: 2, ..Default::default() }),
        ],
        ..RelayConfig::default()
    }
}

pub const NAMES: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];

impl Sim {
    pub fn new() -> Self {
        Self::with_config(default_config())
    }

    pub fn with_config(config: RelayConfig) -> Self {
        let mut auth = MemoryAuthenticator::new();
        for n in NAMES {
            auth = auth.with_user(n, format!("pw-{n}"));
        }
        let now = Instant::now();
        // `crate::SHARDS`: each test binary says how many shards its relay runs (tests/sim_sharded.rs runs the
        // same simulations over 2, the clients' addresses spread over them).
        let relay = Relay::new(config, Box::new(SeededRng::new(0x5eed)), now, UNIX_START_MS)
            .expect("valid config")
            .with_shards(crate::SHARDS, now);
        Self {
            relay,
            auth,
            now,
            clients: Vec::new(),
            authenticated: HashSet::new(),
            attackers: HashSet::new(),
            lost: 0,
            sent_datagrams: 0,
            auto_ping: true,
            last_ping: now,
            pool: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// A client named `NAMES[i]` at 10.0.0.(i+1):(4000+i), control connection i+1, connected but not logged in.
    pub fn add_client(&mut self) -> usize {
        let i = self.clients.len();
        let c = Client {
            name: NAMES[i].to_string(),
            addr: SocketAddr::from(([10, 0, 0, i as u8 + 1], 4000 + i as u16)),
            conn: ConnId(i as u64 + 1),
            token: None,
            public_id: None,
            secret: None,
            keys: Vec::new(),
            windows: HashMap::new(),
            heard: Vec::new(),
            undecryptable: 0,
            inbox: Vec::new(),
            acks: Vec::new(),
            pongs: Vec::new(),
            hello_counter: 0,
            seq: 1000,
            closed: false,
        };
        self.relay.connection_opened(self.now, c.conn);
        self.clients.push(c);
        i
    }

    pub fn attacker(&mut self, last_octet: u8) -> SocketAddr {
        let a = SocketAddr::from(([203, 0, 113, last_octet], 6666));
        self.attackers.insert(a);
        a
    }

    /// Sends `msg` as frame bytes on client `i`'s control connection, then delivers all output.
    pub fn control(&mut self, i: usize, msg: ClientMessage) {
        let mut buf = BytesMut::new();
        msg.encode(&mut buf).expect("test messages encode");
        let conn = self.clients[i].conn;
        self.relay.handle_control_bytes(self.now, conn, &mut buf);
        self.pump();
    }

    pub fn login(&mut self, i: usize) {
        let user = self.clients[i].name.clone();
        let credential = Credential::Password(format!("pw-{user}"));
        self.control(i, ClientMessage::Login { user, credential, client: "sim".into() });
        assert!(self.clients[i].token.is_some(), "{} logged in: {:?}", self.clients[i].name, self.clients[i].inbox);
    }

    pub fn join(&mut self, i: usize, room: &str) {
        self.control(i, ClientMessage::Join { room: room.into(), password: None });
    }

    /// Login, join `room`, hello; inbox cleared.
    pub fn ready(&mut self, i: usize, room: &str) {
        self.login(i);
        self.join(i, room);
        self.hello(i);
        assert_eq!(self.clients[i].acks.len(), 1, "{} bound", self.clients[i].name);
    }

    /// `n` clients ready in `room`, inboxes cleared.
    pub fn room_of(n: usize, room: &str) -> Self {
        let mut sim = Self::new();
        for _ in 0..n {
            let i = sim.add_client();
            sim.ready(i, room);
        }
        for c in &mut sim.clients {
            c.inbox.clear();
        }
        sim
    }

    /// The bytes of a fresh HELLO of client `i` (next counter).
    pub fn hello_bytes(&mut self, i: usize) -> Vec<u8> {
        let c = &mut self.clients[i];
        c.hello_counter += 1;
        let secret = c.secret.as_ref().expect("logged in");
        let mut v = Vec::new();
        Datagram::Hello(secret.hello(c.token.expect("token"), c.hello_counter)).encode(&mut v);
        v
    }

    pub fn hello(&mut self, i: usize) {
        let bytes = self.hello_bytes(i);
        let addr = self.clients[i].addr;
        self.datagram(addr, &bytes);
    }

    /// Seals `plain` with client `i`'s newest key and sends it from its address.
    pub fn audio(&mut self, i: usize, target: u16, plain: &[u8], end: bool) {
        let bytes = self.audio_bytes(i, target, plain, end);
        let addr = self.clients[i].addr;
        self.datagram(addr, &bytes);
    }

    pub fn audio_bytes(&mut self, i: usize, target: u16, plain: &[u8], end: bool) -> Vec<u8> {
        let c = &mut self.clients[i];
        let (kid, key) = *c.keys.last().expect("has a media key");
        let key = MediaKey::new(kid, &key);
        c.seq += 1;
        let header = AudioHeader {
            flags: if end { AudioFlags::END_OF_TALKSPURT } else { AudioFlags::NONE },
            key_id: kid,
            seq: Seq(c.seq),
            timestamp: Timestamp((c.seq as u32).wrapping_mul(960)),
            target: WhisperTarget(target),
        };
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let uplink = c.secret.as_ref().expect("logged in").uplink_key();
        let n = key.seal_audio_up(&uplink, c.token.expect("token"), c.id(), &header, plain, &mut buf).expect("seals");
        buf[..n].to_vec()
    }

    /// Client `i`'s uplink tag key (protocol version 2, `PROTOCOL.md` §2.8).
    pub fn uplink(&self, i: usize) -> voice_proto::UplinkKey {
        self.clients[i].secret.as_ref().expect("logged in").uplink_key()
    }

    /// A PING of client `i`, tagged.
    pub fn ping_bytes(&self, i: usize, echo: u64) -> Vec<u8> {
        let ping = voice_proto::Ping { token: self.clients[i].token.expect("token"), echo, tag: [0; 8] };
        let mut v = Vec::new();
        self.uplink(i).tagged(Datagram::Ping(ping)).encode(&mut v);
        v
    }

    /// A RECEIVER_REPORT of client `i`, tagged.
    pub fn report_bytes(&self, i: usize, rtt_ms: Option<u16>, blocks: &[voice_proto::ReportBlock]) -> Vec<u8> {
        let token = self.clients[i].token.expect("token");
        let report = voice_proto::ReceiverReport::new(token, rtt_ms, blocks).expect("at most 16 blocks");
        let mut v = Vec::new();
        self.uplink(i).tagged(Datagram::ReceiverReport(report)).encode(&mut v);
        v
    }

    /// Delivers a datagram to the relay from `from` and checks the amplification rules on what it triggers.
    pub fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        // A HELLO with a valid MAC for any client's session authenticates `from`.
        if let Ok(Datagram::Hello(h)) = Datagram::decode_from_client(bytes) {
            for c in &self.clients {
                if c.token == Some(h.token) && c.secret.as_ref().is_some_and(|s| s.verify_hello(&h).is_ok()) {
                    self.authenticated.insert(from);
                }
            }
        }
        self.pool.reserve(MAX_DATAGRAM_LEN * 2);
        self.pool.put_slice(bytes);
        let buf = self.pool.split();
        self.relay.handle_datagram(self.now, from, buf);
        let mut out = Vec::new();
        while let Some(t) = self.relay.poll_transmit() {
            if t.payload.get(1) == Some(&(PacketKind::AudioDown as u8)) {
                // Protocol version 2: the relay cuts the uplink tag off (and nothing else changes size).
                assert_eq!(t.payload.len() + voice_proto::UPLINK_TAG_LEN, bytes.len(), "forwarded audio = up − tag");
            } else {
                assert!(
                    t.payload.len() <= bytes.len(),
                    "reply larger than its trigger: {} > {}",
                    t.payload.len(),
                    bytes.len()
                );
                assert_eq!(t.destination, from, "replies go to the sender only");
            }
            out.push(t);
        }
        for t in out {
            self.deliver(t.destination, &t.payload);
        }
        self.pump();
    }

    fn deliver(&mut self, to: SocketAddr, payload: &[u8]) {
        assert!(!self.attackers.contains(&to), "datagram sent to an attacker address {to}");
        assert!(self.authenticated.contains(&to), "datagram sent to unauthenticated address {to}");
        self.sent_datagrams += 1;
        let Some(c) = self.clients.iter_mut().find(|c| c.addr == to) else {
            self.lost += 1;
            return;
        };
        let mut buf = payload.to_vec();
        match Datagram::decode_from_relay(payload).expect("relay sends valid datagrams") {
            Datagram::AudioDown(a) => {
                let start = payload.len() - a.payload.len();
                let Some((_, key)) = c.keys.iter().rev().take(2).find(|(k, _)| *k == a.header.key_id) else {
                    c.undecryptable += 1;
                    return;
                };
                let key = MediaKey::new(a.header.key_id, key);
                let w = c.windows.entry(a.sender).or_default();
                match w.open(&key, a.sender, &a.header, &mut buf[start..]) {
                    Ok(plain) => c.heard.push((a.sender, plain.to_vec())),
                    Err(_) => c.undecryptable += 1,
                }
            }
            Datagram::HelloAck(ack) => {
                let s = c.secret.as_ref().expect("secret");
                s.verify_hello_ack(&ack).expect("hello-ack MAC verifies");
                assert_eq!(Some(ack.public_id), c.public_id);
                c.acks.push(ack.counter);
            }
            Datagram::Pong(p) => c.pongs.push(p.echo),
            other => panic!("unexpected datagram {other:?}"),
        }
    }

    /// Delivers every pending control event (and any transmit) to the clients.
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.relay.poll_transmit() {
                progressed = true;
                self.deliver(t.destination, &t.payload);
            }
            while let Some(e) = self.relay.poll_event() {
                progressed = true;
                match e {
                    Event::Send { conn, msg } => {
                        // Every message the relay emits must encode and decode to itself.
                        let mut b = BytesMut::new();
                        msg.encode(&mut b).expect("relay message encodes");
                        let f = decode_frame(&mut b).expect("frame").expect("complete");
                        assert_eq!(ServerMessage::decode(&f).expect("decodes").as_ref(), Some(&msg));
                        let Some(c) = self.clients.iter_mut().find(|c| c.conn == conn) else { continue };
                        assert!(!c.closed, "message after close");
                        match &msg {
                            ServerMessage::LoginOk { token, public_id, secret, .. } => {
                                c.token = Some(*token);
                                c.public_id = Some(*public_id);
                                c.secret = Some(SessionSecret::new(secret.0));
                            }
                            ServerMessage::MediaKey { key_id, key } => c.keys.push((*key_id, key.0)),
                            _ => {}
                        }
                        c.inbox.push(msg);
                    }
                    Event::Close { conn } => {
                        if let Some(c) = self.clients.iter_mut().find(|c| c.conn == conn) {
                            c.closed = true;
                        }
                    }
                    // The driver's part: check the credential at once (frames are fed one message at a time, so
                    // none wait behind the Login).
                    Event::Authenticate(request) => {
                        let result = self.auth.authenticate(&request);
                        self.relay.handle_auth_result(self.now, request.id(), result);
                    }
                    _ => {}
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Advances virtual time by `d`, firing every timer on the way at its deadline (and auto-pinging).
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        let step = Duration::from_secs(10);
        while self.auto_ping && self.last_ping + step <= end {
            let d = (self.last_ping + step).saturating_duration_since(self.now);
            self.advance_exact(d);
            self.last_ping = self.now;
            for i in 0..self.clients.len() {
                if !self.clients[i].closed {
                    let conn = self.clients[i].conn;
                    self.relay.handle_control(self.now, conn, ClientMessage::Ping { nonce: 0 });
                    self.pump();
                    self.clients[i].inbox.retain(|m| *m != ServerMessage::Pong { nonce: 0 });
                }
            }
        }
        let rest = end.saturating_duration_since(self.now);
        self.advance_exact(rest);
    }

    fn advance_exact(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.relay.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.relay.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.relay.handle_timeout(self.now);
        self.pump();
    }

    /// Client `i`'s control connection drops (the driver reports it closed).
    pub fn disconnect(&mut self, i: usize) {
        self.relay.connection_closed(self.now, self.clients[i].conn);
        self.clients[i].closed = true;
    }

    /// Client `i` reconnects its control channel on a new connection id.
    pub fn reconnect(&mut self, i: usize, conn: u64) {
        self.clients[i].conn = ConnId(conn);
        self.clients[i].closed = false;
        self.relay.connection_opened(self.now, ConnId(conn));
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}
