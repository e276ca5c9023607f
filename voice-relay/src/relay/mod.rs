//! The [`Relay`]: state, configuration, and the input / output surface. The data plane is in `data.rs`, the
//! control plane in `control.rs`, timers in `timers.rs`.

mod control;
mod data;
pub(crate) mod hints;
mod timers;

pub use hints::{BitrateController, Hint, LinkReport, MIN_HINT_BITRATE_BPS};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voice_proto::control::{ChannelConfig, ServerMessage};
use voice_proto::{KEY_LEN, Transmit};

use crate::auth::{AuthId, AuthRequest};
use crate::counters::Counters;
use crate::error::{Error, RngError};
use crate::ratelimit::{BucketParams, TokenBucket};
use crate::rng::RandomSource;
use crate::room::{Room, RoomConfig};
use crate::session::Session;
use crate::slab::Slab;

/// Identifies one control (TCP) connection. The driver chooses the values; they only need to be unique among open
/// connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Settings of a relay. Build with `RelayConfig { udp_port: 7001, ..RelayConfig::default() }`.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Server name sent in LoginOk (≤ 64 bytes).
    pub server_name: String,
    /// The relay's UDP port, sent in LoginOk.
    pub udp_port: u16,
    /// How long a session survives without a control connection (`resume_grace_s`; whole seconds, ≤ 65535 s).
    pub resume_grace: Duration,
    /// A bound address that sends nothing for this long loses its binding (`PROTOCOL.md` §6.4; default 30 s).
    pub binding_idle_timeout: Duration,
    /// A control connection that sends nothing for this long is closed (`PROTOCOL.md` §5.3; default 30 s).
    pub control_idle_timeout: Duration,
    /// A talker whose audio stops without END_OF_TALKSPURT stops "speaking" after this long (default 400 ms).
    pub speaking_timeout: Duration,
    /// AUDIO_UP packets per second one session may send (token bucket rate; default 150).
    pub packets_per_s: u32,
    /// AUDIO_UP packet burst (token bucket size; default 50).
    pub packet_burst: u32,
    /// AUDIO_UP bytes per second one session may send (default 64 000, i.e. 512 kb/s).
    pub bytes_per_s: u32,
    /// AUDIO_UP byte burst (default 16 000).
    pub byte_burst: u32,
    /// Rooms that exist from the start and are never removed.
    pub rooms: Vec<RoomConfig>,
    /// Whether joining an unknown room name creates it.
    pub allow_adhoc_rooms: bool,
    /// Voice settings of ad-hoc rooms.
    pub adhoc_config: ChannelConfig,
    /// An empty ad-hoc room is removed after this long (default 5 minutes).
    pub adhoc_linger: Duration,
    /// Chat messages kept per room and replayed on join (default 50).
    pub chat_history: usize,
    /// Bytes of chat text kept per room, whatever the message count (default 64 KiB): bounds memory when many
    /// rooms fill their history with 4000-byte messages.
    pub chat_history_bytes: usize,
    /// Control messages per second one connection may send (token bucket rate; default 20). Beyond, requests are
    /// refused with `RATE_LIMITED`.
    pub control_per_s: u32,
    /// Control message burst (default 40).
    pub control_burst: u32,
    /// Most live sessions; logins beyond get `RATE_LIMITED` (default 100 000).
    pub max_sessions: usize,
    /// Most rooms (configured + ad-hoc); ad-hoc creation beyond gets `RATE_LIMITED` (default 2 000).
    pub max_rooms: usize,
    /// Most whisper lists one session keeps (default 8).
    pub max_whisper_lists: usize,
    /// How often receiver reports are turned into bitrate hints (default 1 s: FEC follows loss within a second or two).
    pub hint_interval: Duration,
    /// Period of the housekeeping timer: binding and session expiry, idle connections, ad-hoc room removal
    /// (default 1 s; expiry times are precise to this period).
    pub housekeeping_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            server_name: "voice-relay".into(),
            udp_port: 7001,
            resume_grace: Duration::from_secs(60),
            binding_idle_timeout: Duration::from_secs(30),
            control_idle_timeout: Duration::from_secs(30),
            speaking_timeout: Duration::from_millis(400),
            packets_per_s: 150,
            packet_burst: 50,
            bytes_per_s: 64_000,
            byte_burst: 16_000,
            rooms: vec![RoomConfig::new("lobby")],
            allow_adhoc_rooms: true,
            adhoc_config: ChannelConfig::default(),
            adhoc_linger: Duration::from_secs(300),
            chat_history: 50,
            chat_history_bytes: 64 * 1024,
            control_per_s: 20,
            control_burst: 40,
            max_sessions: 100_000,
            max_rooms: 2_000,
            max_whisper_lists: 8,
            hint_interval: Duration::from_secs(1),
            housekeeping_interval: Duration::from_secs(1),
        }
    }
}

/// Output of the control plane, drained with [`Relay::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Send `msg` on control connection `conn`.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message (encode it with [`ServerMessage::encode`]).
        msg: ServerMessage,
    },
    /// Close control connection `conn` after sending everything queued for it before this event. The relay has
    /// already forgotten the connection (its session, if any, is detached and may be resumed); calling
    /// [`Relay::connection_closed`] for it afterwards is harmless. Bytes that still arrive on it must not be fed
    /// to the relay (they would be taken for a new connection with the same id).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// A Login to check: verify the credential (e.g. with an [`Authenticator`](crate::Authenticator)) and answer
    /// with [`Relay::handle_auth_result`]. Until then the connection's later frames stay in its buffer (see
    /// [`Relay::handle_control_bytes`]). The relay never checks a credential itself.
    Authenticate(AuthRequest),
}

/// A control connection's state.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) session: Option<u32>,
    /// A Login waiting for its credential check ([`Event::Authenticate`]): its id and user name.
    pub(crate) pending: Option<(AuthId, Box<str>)>,
    pub(crate) last_rx: Instant,
    /// Control message rate limit.
    pub(crate) bucket: TokenBucket,
}

/// Settings derived once from [`RelayConfig`].
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) cfg: RelayConfig,
    pub(crate) packets: BucketParams,
    pub(crate) bytes: BucketParams,
    pub(crate) control: BucketParams,
    pub(crate) resume_grace_s: u16,
}

/// The sans-IO relay: sessions, rooms, whisper lists, timers. No sockets, no clock, no threads.
///
/// # Methods in four groups
///
/// * **Inputs** — [`handle_datagram`](Self::handle_datagram) (a UDP datagram and its source),
///   [`handle_control`](Self::handle_control) / [`handle_control_bytes`](Self::handle_control_bytes) (a decoded
///   control message, or raw bytes read from a connection), [`connection_opened`](Self::connection_opened) /
///   [`connection_closed`](Self::connection_closed), [`handle_auth_result`](Self::handle_auth_result) (the
///   answer to an [`Event::Authenticate`]), [`handle_timeout`](Self::handle_timeout) and
///   [`shutdown`](Self::shutdown). Every input takes `now`; the relay never reads a clock.
/// * **Outputs** — [`poll_transmit`](Self::poll_transmit) (UDP datagrams), [`poll_event`](Self::poll_event)
///   (control messages, connection closes, logins to check), [`poll_timeout`](Self::poll_timeout) (when to call
///   `handle_timeout` next).
/// * **Getters** — [`counters`](Self::counters), [`session_count`](Self::session_count),
///   [`room_count`](Self::room_count).
///
/// # Drain order
///
/// After **any** input, drain [`poll_transmit`](Self::poll_transmit) until `None` (audio first: it is the
/// latency-critical output), then [`poll_event`](Self::poll_event) until `None`, then ask
/// [`poll_timeout`](Self::poll_timeout) and arm the timer. The two queues are independent: each keeps the order in
/// which its items were produced, and for one connection an [`Event::Close`] always follows the last message for it.
/// Undrained output is never lost, only delayed.
///
/// # Policies (where `PROTOCOL.md` leaves a choice)
///
/// * **Lifetime.** A session ends when its control connection has been gone for `resume_grace` (§6.3), whether or
///   not it still has a UDP binding; a binding is dropped after `binding_idle_timeout` without any datagram from the
///   bound address (§6.4). Both are checked by the housekeeping timer, so they are precise to
///   `housekeeping_interval`. A control connection silent for `control_idle_timeout` is closed (no Goodbye).
/// * **Addresses.** An address is bound to at most one session: a HELLO that proves another session's secret from
///   an already-bound address takes the address over.
/// * **Speaking** starts with the first accepted audio packet, ends with END_OF_TALKSPURT or `speaking_timeout`
///   without audio, and is announced to the whole room (the talker included). Muting ends it.
/// * **Keys.** A room's media key rotates (next key id) whenever a member leaves it — Leave, Join elsewhere, or end
///   of session — and the new key goes to the remaining members only.
/// * **Rate limits.** Audio is charged to two token buckets (packets, bytes; all or nothing); PING and
///   RECEIVER_REPORT are charged to the packet bucket. Control messages are limited per connection; over the limit
///   they get Error `RATE_LIMITED`. Chat history is bounded by count and by bytes per room.
/// * **Bitrate hints.** Every `hint_interval`, each sender that received reports (RECEIVER_REPORT blocks from
///   members of its room, or their QualityReport) is run through its [`BitrateController`] (worst loss, largest
///   jitter reported about it, its own round-trip time): FEC from the loss receivers report, the bitrate cut only
///   on congestion; a BitrateHint goes out when the result changed.
/// * **Same user twice.** Several sessions may log in with the same user name; none is replaced. A Resume on a new
///   connection while the old one is still open replaces the old connection (Goodbye `REPLACED`, then close).
/// * **Chat-only rooms** can be joined; their audio is dropped (`VoiceNotAllowed`) and SetWhisper is refused.
///
/// # Randomness and authentication
///
/// Tokens, secrets and media keys come from the [`RandomSource`] given to [`Relay::new`]. Public ids are a counter
/// from a random start, so they are never reused while the relay lives (`PROTOCOL.md` §4.2). Credentials are not
/// checked here: a Login becomes an [`Event::Authenticate`] for the driver, answered with
/// [`handle_auth_result`](Self::handle_auth_result) (see [`crate::auth`]).
pub struct Relay {
    pub(crate) s: Settings,
    pub(crate) rng: Box<dyn RandomSource + Send>,
    pub(crate) sessions: Slab<Session>,
    pub(crate) by_token: HashMap<u32, u32>,
    pub(crate) by_public: HashMap<u32, u32>,
    pub(crate) by_addr: HashMap<SocketAddr, u32>,
    pub(crate) rooms: Slab<Room>,
    pub(crate) room_by_name: HashMap<String, u32>,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    /// Sessions now speaking (for the speaking timeout); small.
    pub(crate) speaking: Vec<u32>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) counters: Counters,
    pub(crate) next_housekeeping: Instant,
    pub(crate) next_hints: Instant,
    pub(crate) next_public_id: u32,
    /// Id of the next [`AuthRequest`].
    pub(crate) next_auth: u64,
    /// `now` at construction and the Unix time in ms it corresponds to (for chat timestamps).
    pub(crate) epoch: (Instant, u64),
    pub(crate) shutting_down: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("sessions", &self.sessions.len())
            .field("rooms", &self.rooms.len())
            .field("connections", &self.conns.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Longest duration setting accepted: keeps every `Instant + setting` far from overflow.
// The relay moves between threads with its driver.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Relay>();
};

const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Initial capacity of the transmit queue: one packet to a full room without growing.
const TRANSMIT_QUEUE_CAPACITY: usize = 1024;

impl Relay {
    /// A relay with the configured rooms and no sessions.
    ///
    /// `now` and `unix_time_ms` are the same instant on the monotonic clock and as Unix milliseconds; the relay uses
    /// the pair to stamp chat messages without reading a clock.
    pub fn new(
        config: RelayConfig,
        mut rng: Box<dyn RandomSource + Send>,
        now: Instant,
        unix_time_ms: u64,
    ) -> Result<Self, Error> {
        use voice_proto::control::{MAX_NAME_LEN, MAX_PASSWORD_LEN};
        if config.server_name.len() > MAX_NAME_LEN {
            return Err(Error::ServerNameTooLong);
        }
        let resume_grace_s = u16::try_from(config.resume_grace.as_secs())
            .map_err(|_| Error::InvalidSetting { setting: "resume_grace" })?;
        for (setting, zero) in [
            ("packets_per_s", config.packets_per_s == 0),
            ("packet_burst", config.packet_burst == 0),
            ("bytes_per_s", config.bytes_per_s == 0),
            ("control_per_s", config.control_per_s == 0),
            ("control_burst", config.control_burst == 0),
            ("byte_burst", config.byte_burst < voice_proto::MAX_DATAGRAM_LEN as u32),
            ("housekeeping_interval", config.housekeeping_interval.is_zero()),
            ("hint_interval", config.hint_interval.is_zero()),
            ("resume_grace", config.resume_grace > MAX_DURATION),
            ("binding_idle_timeout", config.binding_idle_timeout > MAX_DURATION),
            ("control_idle_timeout", config.control_idle_timeout > MAX_DURATION),
            ("speaking_timeout", config.speaking_timeout > MAX_DURATION),
            ("adhoc_linger", config.adhoc_linger > MAX_DURATION),
            ("hint_interval", config.hint_interval > MAX_DURATION),
            ("housekeeping_interval", config.housekeeping_interval > MAX_DURATION),
        ] {
            if zero {
                return Err(Error::InvalidSetting { setting });
            }
        }
        let mut rooms = Slab::new();
        let mut room_by_name = HashMap::new();
        for rc in &config.rooms {
            if rc.name.is_empty() || rc.name.len() > MAX_NAME_LEN {
                return Err(Error::InvalidRoomName { name: rc.name.clone() });
            }
            if rc.password.as_ref().is_some_and(|p| p.len() > MAX_PASSWORD_LEN) {
                return Err(Error::PasswordTooLong { name: rc.name.clone() });
            }
            if room_by_name.contains_key(&rc.name) {
                return Err(Error::DuplicateRoom { name: rc.name.clone() });
            }
            let mut key = [0u8; KEY_LEN];
            rng.fill(&mut key)?;
            let idx = rooms
                .insert(Room::new(rc.clone(), false, key, now))
                .ok_or(Error::InvalidSetting { setting: "rooms" })?;
            room_by_name.insert(rc.name.clone(), idx);
        }
        let mut start = [0u8; 4];
        rng.fill(&mut start)?;
        let s = Settings {
            packets: BucketParams { rate: config.packets_per_s, burst: config.packet_burst },
            bytes: BucketParams { rate: config.bytes_per_s, burst: config.byte_burst },
            control: BucketParams { rate: config.control_per_s, burst: config.control_burst },
            resume_grace_s,
            cfg: config,
        };
        let mut counters = Counters::default();
        counters.rooms = rooms.len() as u64;
        Ok(Self {
            next_housekeeping: now + s.cfg.housekeeping_interval,
            next_hints: now + s.cfg.hint_interval,
            s,
            rng,
            sessions: Slab::new(),
            by_token: HashMap::new(),
            by_public: HashMap::new(),
            by_addr: HashMap::new(),
            rooms,
            room_by_name,
            conns: BTreeMap::new(),
            speaking: Vec::new(),
            transmits: VecDeque::with_capacity(TRANSMIT_QUEUE_CAPACITY),
            events: VecDeque::with_capacity(64),
            counters,
            // Public ids start at a random point below 2^31 so they do not reveal how many sessions came before.
            next_public_id: (u32::from_be_bytes(start) >> 1).max(1),
            next_auth: 1,
            epoch: (now, unix_time_ms),
            shutting_down: false,
        })
    }

    /// The next UDP datagram to send, if any.
    #[inline]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next control-plane output, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`poll_event`](Self::poll_event) has output (e.g. for a UDP thread to wake the control side).
    #[must_use]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next; `None` when no timer is needed (no
    /// session, no connection, no ad-hoc room waiting for removal).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let speaking = self
            .speaking
            .iter()
            .filter_map(|&i| self.sessions.get(i))
            .map(|s| s.last_audio + self.s.cfg.speaking_timeout)
            .min();
        // Configured rooms are never removed, so more rooms than configured means ad-hoc rooms exist.
        let adhoc_rooms = self.rooms.len() > self.s.cfg.rooms.len();
        let idle = self.sessions.len() == 0 && self.conns.is_empty() && !adhoc_rooms;
        let housekeeping = (!idle).then_some(self.next_housekeeping.min(self.next_hints));
        match (speaking, housekeeping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sets the UDP port announced to clients in LoginOk. The driver calls it with the port it actually bound,
    /// which differs from [`RelayConfig::udp_port`] when that names port 0 ("any free port") or another socket.
    pub fn set_udp_port(&mut self, port: u16) {
        self.s.cfg.udp_port = port;
    }

    /// The relay's counters.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Live sessions.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Rooms (configured and ad-hoc).
    #[must_use]
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether a room named `name` exists.
    #[must_use]
    pub fn has_room(&self, name: &str) -> bool {
        self.room_by_name.contains_key(name)
    }

    /// Size in bytes of the per-session record (excluding its heap parts: name, whisper lists), for capacity
    /// planning.
    #[must_use]
    pub const fn session_record_size() -> usize {
        std::mem::size_of::<Session>()
    }

    // ---- helpers shared by the submodules ----

    pub(crate) fn send(&mut self, conn: ConnId, msg: ServerMessage) {
        self.events.push_back(Event::Send { conn, msg });
    }

    /// Sends `msg` to the control connection of session `idx`, if it has one.
    pub(crate) fn send_session(&mut self, idx: u32, msg: ServerMessage) {
        if let Some(conn) = self.sessions.get(idx).and_then(|s| s.conn) {
            self.send(conn, msg);
        }
    }

    /// Sends `msg` to every member of `room` with a control connection, except `except`.
    pub(crate) fn send_room(&mut self, room: u32, msg: &ServerMessage, except: Option<u32>) {
        let Some(r) = self.rooms.get(room) else { return };
        for &m in &r.members {
            if Some(m) == except {
                continue;
            }
            if let Some(conn) = self.sessions.get(m).and_then(|s| s.conn) {
                self.events.push_back(Event::Send { conn, msg: msg.clone() });
            }
        }
    }

    /// Unix milliseconds at `now`.
    pub(crate) fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch.0).as_millis();
        self.epoch.1.saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// The state of connection `conn`, created if the driver did not announce it.
    pub(crate) fn conn_entry(&mut self, conn: ConnId, now: Instant) -> &mut Conn {
        let control = self.s.control;
        self.conns.entry(conn).or_insert_with(|| Conn {
            session: None,
            pending: None,
            last_rx: now,
            bucket: TokenBucket::full(control, now),
        })
    }

    pub(crate) fn random_key(&mut self) -> Result<[u8; KEY_LEN], RngError> {
        let mut k = [0u8; KEY_LEN];
        self.rng.fill(&mut k)?;
        Ok(k)
    }
}
