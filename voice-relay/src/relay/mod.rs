//! The [`Relay`]: configuration, and the input / output surface. It is the control plane (`control/`) and one or
//! more shards (`shard/`, the data plane) joined in-process: every input goes to its side, and the messages
//! between the two ([`msg`]) are delivered at once, in order, before the input returns. The driver runs the same
//! two sides on different threads with queues in between.

pub(crate) mod control;
pub(crate) mod hints;
pub(crate) mod msg;
pub(crate) mod shard;
#[cfg(test)]
mod tests;

pub use hints::{BitrateController, Hint, LinkReport, MIN_HINT_BITRATE_BPS};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use voice_proto::Transmit;
use voice_proto::control::{ChannelConfig, ClientMessage, ServerMessage};

use self::control::{Control, Settings};
use self::shard::Shard;
use crate::auth::{AuthId, AuthRequest, UserInfo};
use crate::counters::Counters;
use crate::error::{AuthError, Error};
use crate::ratelimit::BucketParams;
use crate::rng::RandomSource;
use crate::room::RoomConfig;

/// Identifies one control (TCP) connection. The driver chooses the values; they only need to be unique among open
/// connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Settings of a relay. Build with `RelayConfig { udp_port: 7001, ..RelayConfig::default() }`.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Server name sent in LoginOk (≤ 64 bytes). Default `voice-relay`.
    pub server_name: String,
    /// The relay's UDP port, sent in LoginOk (the driver sets the port it bound). Default 7001.
    pub udp_port: u16,
    /// How long a session survives without a control connection (`resume_grace_s`; whole seconds, ≤ 65535 s).
    /// Default 60 s.
    pub resume_grace: Duration,
    /// A bound address that sends nothing for this long loses its binding (`PROTOCOL.md` §6.4; default 30 s).
    pub binding_idle_timeout: Duration,
    /// A control connection that sends nothing for this long is closed (`PROTOCOL.md` §5.3; default 30 s).
    pub control_idle_timeout: Duration,
    /// A control connection must log in (or resume) within this long after it opened, or it is closed; Ping and
    /// other traffic do not extend it (default 10 s; at most [`control_idle_timeout`](Self::control_idle_timeout)
    /// matters if that is shorter).
    pub login_timeout: Duration,
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
    /// Rooms that exist from the start and are never removed. Default: one, `lobby`.
    pub rooms: Vec<RoomConfig>,
    /// Whether joining an unknown room name creates it. Default `true`.
    pub allow_adhoc_rooms: bool,
    /// Voice settings of ad-hoc rooms. Default [`ChannelConfig::default`].
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
    /// Granularity of the housekeeping deadlines: binding and session expiry, idle connections, ad-hoc room removal
    /// (default 1 s). Each of these deadlines is rounded up to a multiple of it from the relay's creation, so
    /// expiry times are precise to this period and everything that expires within one period shares one wake-up.
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
            login_timeout: Duration::from_secs(10),
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
        /// The message (encode it with [`Message::encode`](voice_proto::control::Message::encode)).
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

/// The sans-IO relay: sessions, rooms, whisper lists, timers. No sockets, no clock, no threads.
///
/// Inside, it is the control plane and one shard (the forwarding state a UDP thread of the driver owns; see the
/// crate docs, *A data plane without a lock*), with their messages delivered before each input returns. With
/// [`with_shards`](Self::with_shards) it holds several shards, as the driver does with several UDP threads.
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
///   bound address (§6.4). Both are deadlines on the housekeeping grid, so they are precise to
///   `housekeeping_interval`. A control connection silent for `control_idle_timeout` is closed (no Goodbye); only
///   whole frames count as activity. One without a session `login_timeout` after it opened is closed too.
/// * **Addresses.** An address is bound to at most one session: a HELLO that proves another session's secret from
///   an already-bound address takes the address over.
/// * **Speaking** starts with the first accepted audio packet, ends with END_OF_TALKSPURT or `speaking_timeout`
///   without audio, and is announced to the whole room (the talker included). Muting ends it.
/// * **Keys.** A room's media key rotates (next key id) whenever a member leaves it — Leave, Join elsewhere, or end
///   of session — and the new key goes to the remaining members only.
/// * **Rate limits.** Audio is charged to two token buckets (packets, bytes; all or nothing); PING and
///   RECEIVER_REPORT are charged to the packet bucket, and so is a HELLO from a bound session (a repeat or a
///   roam). Control messages are limited per connection; over the limit
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
    control: Control,
    shards: Vec<Shard>,
    /// Counters of the control plane and every shard, added up after each input.
    merged: Counters,
    /// Counters of shards dropped by [`with_shards`](Self::with_shards) or the driver (their totals stay counted).
    retired: Counters,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("sessions", &self.control.sessions.len())
            .field("rooms", &self.control.rooms.len())
            .field("connections", &self.control.conns.len())
            .field("shards", &self.shards.len())
            .field("counters", &self.merged)
            .finish_non_exhaustive()
    }
}

// The relay moves between threads with its driver.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Relay>();
};

/// Longest duration setting accepted: keeps every `Instant + setting` far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Relay {
    /// A relay with the configured rooms and no sessions.
    ///
    /// `now` and `unix_time_ms` are the same instant on the monotonic clock and as Unix milliseconds; the relay uses
    /// the pair to stamp chat messages without reading a clock.
    pub fn new(
        config: RelayConfig,
        rng: Box<dyn RandomSource + Send>,
        now: Instant,
        unix_time_ms: u64,
    ) -> Result<Self, Error> {
        let s = settings(config)?;
        let mut control = Control::new(s, rng, now, unix_time_ms)?;
        let mut shard = Shard::new(control.shard_settings());
        while let Some(cmd) = control.cmds.pop_front() {
            shard.apply(cmd);
        }
        let mut relay =
            Self { control, shards: vec![shard], merged: Counters::default(), retired: Counters::default() };
        relay.refresh();
        Ok(relay)
    }

    /// The same relay with `n` shards (at least 1), as the driver runs it with `n` UDP threads: each datagram goes
    /// to the shard its source address picks (a fixed hash, as the kernel's `SO_REUSEPORT` hash picks a socket), and
    /// the shards' messages to and from the control plane are delivered at once, in order. Behaviour seen from
    /// outside is the same whatever `n`; tests use it to run the multi-shard paths deterministically.
    #[must_use]
    pub fn with_shards(mut self, n: usize, now: Instant) -> Self {
        self.set_shards(n.max(1), now);
        self
    }

    /// Grows or shrinks the shard list to `n`: new shards start from the control plane's current state
    /// ([`Control::sync_commands`]); dropped ones leave their counters behind.
    pub(crate) fn set_shards(&mut self, n: usize, now: Instant) {
        self.pump();
        while self.shards.len() > n.max(1) {
            if let Some(s) = self.shards.pop() {
                self.retired.absorb(s.counters());
            }
        }
        while self.shards.len() < n {
            let mut shard = Shard::new(self.control.shard_settings());
            for cmd in self.control.sync_commands(now) {
                shard.apply(cmd);
            }
            self.shards.push(shard);
        }
        self.refresh();
    }

    /// The two sides, for the driver (no message in flight).
    #[cfg(feature = "tokio")]
    pub(crate) fn into_parts(mut self) -> (Control, Vec<Shard>, Counters) {
        self.pump();
        (self.control, self.shards, self.retired)
    }

    /// The relay from its two sides, when the driver stops. The shards' queued events are delivered.
    #[cfg(feature = "tokio")]
    pub(crate) fn from_parts(control: Control, shards: Vec<Shard>, retired: Counters) -> Self {
        let mut relay = Self { control, shards, merged: Counters::default(), retired };
        if relay.shards.is_empty() {
            // Every UDP thread failed: a fresh shard from the control plane's state.
            relay.set_shards(1, relay.control.epoch.0);
        }
        relay.pump();
        relay.refresh();
        relay
    }

    /// Delivers the messages between the control plane and the shards until none is left: commands to every
    /// shard (in order), then each shard's events to the control plane.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(cmd) = self.control.cmds.pop_front() {
                moved = true;
                if let Some((last, rest)) = self.shards.split_last_mut() {
                    for shard in rest {
                        shard.apply(cmd.clone());
                    }
                    last.apply(cmd);
                }
            }
            for (i, shard) in self.shards.iter_mut().enumerate() {
                while let Some(event) = shard.poll_event() {
                    moved = true;
                    self.control.handle_shard_event(i, event);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// The first shard (the one [`UdpPath`](crate::driver::UdpPath) feeds).
    #[cfg(feature = "tokio")]
    pub(crate) fn first_shard(&mut self) -> Option<&mut Shard> {
        self.shards.first_mut()
    }

    /// Delivers the messages and adds the counters up (after every input).
    pub(crate) fn settle(&mut self) {
        self.pump();
        self.refresh();
    }

    fn refresh(&mut self) {
        self.merged.clone_from(&self.control.counters);
        self.merged.absorb(&self.retired);
        for s in &self.shards {
            self.merged.absorb(s.counters());
        }
    }

    /// The shard that receives datagrams from `from`.
    fn shard_of(&self, from: SocketAddr) -> usize {
        let n = self.shards.len();
        if n <= 1 {
            return 0;
        }
        let ip = match from.ip() {
            std::net::IpAddr::V4(a) => u64::from(u32::from(a)),
            std::net::IpAddr::V6(a) => a.segments().iter().fold(0u64, |h, &s| h.rotate_left(16) ^ u64::from(s)),
        };
        let h = (ip ^ u64::from(from.port()).rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        usize::try_from(h >> 32).unwrap_or(0) % n
    }

    // ---- inputs ----

    /// Handles one UDP datagram received from `from`.
    ///
    /// Takes ownership of the receive buffer: an accepted AUDIO_UP is rewritten in place into AUDIO_DOWN and frozen
    /// into one [`bytes::Bytes`] that every recipient's [`Transmit`] shares; a HELLO or PING buffer is overwritten
    /// with its answer (same size). For the fan-out to be allocation-free, give buffers that are already shared-kind
    /// (e.g. `split_to` / `split` of a larger [`BytesMut`] the driver reuses); a `BytesMut` built from a `Vec` costs
    /// one allocation when frozen and cloned.
    ///
    /// Invalid input is dropped and counted ([`DropReason`](crate::DropReason)); nothing is ever sent to an address
    /// that has not proven a session secret with a HELLO, and no answer is larger than what triggered it.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: BytesMut) {
        let i = self.shard_of(from);
        if let Some(shard) = self.shards.get_mut(i) {
            shard.handle_datagram(now, from, datagram);
        }
        self.settle();
    }

    /// A control connection was accepted. (Optional: the first message on an unknown connection opens it too.)
    pub fn connection_opened(&mut self, now: Instant, conn: ConnId) {
        self.control.connection_opened(now, conn);
        self.settle();
    }

    /// A control connection is gone. Its session, if any, stays alive for the resume grace period: it keeps its
    /// room and UDP binding, and audio keeps flowing (`PROTOCOL.md` §6.3).
    pub fn connection_closed(&mut self, now: Instant, conn: ConnId) {
        self.control.connection_closed(now, conn);
        self.settle();
    }

    /// Feeds bytes read from control connection `conn`: the driver appends what it reads to the connection's buffer
    /// and passes it here; every complete frame is taken off the front and handled, an incomplete one is left.
    ///
    /// A framing error or a message that does not decode is fatal for this connection only (`PROTOCOL.md` §5.1):
    /// Error `BAD_REQUEST` or `TOO_LARGE` (Goodbye `UNSUPPORTED_VERSION` for a wrong version), then
    /// [`Event::Close`]; `buf` is cleared. Unknown message kinds are skipped.
    ///
    /// After a Login, the frames behind it stay in `buf` until its [`Event::Authenticate`] is answered
    /// ([`handle_auth_result`](Self::handle_auth_result)); then call this again with the same buffer (new bytes or
    /// not) to go on. The caller bounds how much it buffers meanwhile.
    pub fn handle_control_bytes(&mut self, now: Instant, conn: ConnId, buf: &mut BytesMut) {
        self.control.handle_control_bytes(now, conn, buf);
        self.settle();
    }

    /// Handles one decoded control message from connection `conn`. Refusals are answered with an `Error` message
    /// (see [`RequestError`](crate::RequestError)) and leave the connection open.
    ///
    /// A Login is not answered at once: it becomes an [`Event::Authenticate`]. While that check is pending, another
    /// Login or Resume on the connection is refused (`ALREADY_LOGGED_IN`) and requests that need a session get
    /// `NOT_LOGGED_IN` ([`handle_control_bytes`](Self::handle_control_bytes) instead holds them back).
    pub fn handle_control(&mut self, now: Instant, conn: ConnId, msg: ClientMessage) {
        self.control.handle_control(now, conn, msg);
        self.settle();
    }

    /// The answer to the [`Event::Authenticate`] with `id`: on success a session is created and the client gets
    /// LoginOk; otherwise it gets Error `AUTH_FAILED` (whatever the reason, so it learns nothing about which user
    /// names exist), or `RATE_LIMITED` for [`AuthError::Busy`]. An answer for a connection that closed meanwhile,
    /// or given twice, is ignored. Then feed the connection's buffered bytes again
    /// ([`handle_control_bytes`](Self::handle_control_bytes)): the frames behind the Login were held.
    pub fn handle_auth_result(&mut self, now: Instant, id: AuthId, result: Result<UserInfo, AuthError>) {
        self.control.handle_auth_result(now, id, result);
        self.settle();
    }

    /// Begins a graceful shutdown: every control connection gets Goodbye `SHUTTING_DOWN` and is closed; later
    /// logins and resumes are refused the same way. Sessions and forwarding carry on until the driver stops.
    pub fn shutdown(&mut self, now: Instant) {
        self.control.shutdown(now);
        self.settle();
    }

    /// Runs the timers that are due at `now`. Call it at (or after) [`poll_timeout`](Self::poll_timeout); calling it
    /// early or often is harmless. Only the records whose deadline came are looked at.
    pub fn handle_timeout(&mut self, now: Instant) {
        for shard in &mut self.shards {
            shard.handle_timeout(now);
        }
        if now >= self.control.next_hints {
            // The hint decision takes what every shard's receivers reported until now.
            for shard in &mut self.shards {
                shard.flush_loss();
            }
        }
        self.pump();
        self.control.handle_timeout(now);
        self.settle();
    }

    // ---- outputs ----

    /// The next UDP datagram to send, if any.
    #[inline]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.shards.iter_mut().find_map(Shard::poll_transmit)
    }

    /// The next control-plane output, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.control.events.pop_front()
    }

    /// Whether [`poll_event`](Self::poll_event) has output.
    #[must_use]
    pub fn has_events(&self) -> bool {
        !self.control.events.is_empty()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next; `None` when no timer is needed (nothing
    /// can expire, nobody is speaking, no report waits for a hint decision).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reports = self.shards.iter().any(|s| !s.loss_dirty.is_empty()).then_some(self.control.next_hints);
        self.shards.iter().filter_map(Shard::poll_timeout).chain(self.control.poll_timeout()).chain(reports).min()
    }

    // ---- getters and settings ----

    /// Sets the UDP port announced to clients in LoginOk. The driver calls it with the port it actually bound,
    /// which differs from [`RelayConfig::udp_port`] when that names port 0 ("any free port") or another socket.
    pub fn set_udp_port(&mut self, port: u16) {
        self.control.s.cfg.udp_port = port;
    }

    /// Applies a new configuration without ending a session: limits, timeouts and rooms of the control plane (the
    /// UDP side's settings, a room's `allow_voice` and the UDP port stay; see the driver's `ReloadHandle`).
    /// Fails, changing nothing, on a configuration [`Relay::new`] would refuse.
    pub fn reconfigure(&mut self, now: Instant, config: RelayConfig) -> Result<(), Error> {
        self.control.reconfigure(now, settings(config)?);
        self.settle();
        Ok(())
    }

    /// The relay's counters (the control plane's and every shard's, added up).
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.merged
    }

    /// Live sessions.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.control.sessions.len()
    }

    /// Rooms (configured and ad-hoc).
    #[must_use]
    pub fn room_count(&self) -> usize {
        self.control.rooms.len()
    }

    /// Whether a room named `name` exists.
    #[must_use]
    pub fn has_room(&self, name: &str) -> bool {
        self.control.room_by_name.contains_key(name)
    }

    /// Shards (1 unless [`with_shards`](Self::with_shards) or the driver's UDP threads made more).
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Timer entries looked at by [`handle_timeout`](Self::handle_timeout) so far, over the control plane and every
    /// shard: a measure of housekeeping work, which grows with what comes due, not with the number of sessions.
    #[must_use]
    pub fn timer_visits(&self) -> u64 {
        self.control.timer_visits + self.shards.iter().map(|s| s.timer_visits).sum::<u64>()
    }

    /// Size in bytes of the per-session records (the control plane's and one shard's, excluding their heap parts:
    /// name, whisper lists), for capacity planning.
    #[must_use]
    pub const fn session_record_size() -> usize {
        std::mem::size_of::<crate::session::Session>() + std::mem::size_of::<shard::FwdSession>()
    }
}

/// Checks a configuration and derives the settings.
pub(crate) fn settings(config: RelayConfig) -> Result<Settings, Error> {
    use voice_proto::control::{MAX_NAME_LEN, MAX_PASSWORD_LEN};
    if config.server_name.len() > MAX_NAME_LEN {
        return Err(Error::ServerNameTooLong);
    }
    let resume_grace_s =
        u16::try_from(config.resume_grace.as_secs()).map_err(|_| Error::InvalidSetting { setting: "resume_grace" })?;
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
        ("login_timeout", config.login_timeout > MAX_DURATION),
        ("speaking_timeout", config.speaking_timeout > MAX_DURATION),
        ("adhoc_linger", config.adhoc_linger > MAX_DURATION),
        ("hint_interval", config.hint_interval > MAX_DURATION),
        ("housekeeping_interval", config.housekeeping_interval > MAX_DURATION),
    ] {
        if zero {
            return Err(Error::InvalidSetting { setting });
        }
    }
    let mut names = std::collections::HashSet::new();
    for rc in &config.rooms {
        if rc.name.is_empty() || rc.name.len() > MAX_NAME_LEN {
            return Err(Error::InvalidRoomName { name: rc.name.clone() });
        }
        if rc.password.as_ref().is_some_and(|p| p.len() > MAX_PASSWORD_LEN) {
            return Err(Error::PasswordTooLong { name: rc.name.clone() });
        }
        if !names.insert(rc.name.as_str()) {
            return Err(Error::DuplicateRoom { name: rc.name.clone() });
        }
    }
    Ok(Settings {
        packets: BucketParams { rate: config.packets_per_s, burst: config.packet_burst },
        bytes: BucketParams { rate: config.bytes_per_s, burst: config.byte_burst },
        control: BucketParams { rate: config.control_per_s, burst: config.control_burst },
        resume_grace_s,
        cfg: config,
    })
}
