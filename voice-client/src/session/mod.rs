//! The sans-IO session core: control state machine, data plane, per-speaker jitter buffers.

mod control;
mod data;
mod types;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use voice_jitter::Playout;
use voice_proto::control::{ChannelConfig, ClientMessage, Member, SecretBytes};
use voice_proto::{MediaKey, PublicId, SessionSecret, SessionToken, Transmit, WhisperTarget};

pub use types::{ConnectionCommand, EncoderHint, Event, SessionConfig, SessionStats, SpeakerStats, State, TalkMode};

use crate::Error;
use data::Speaker;

/// First delay before a HELLO is repeated; it doubles up to [`HELLO_MAX_INTERVAL`].
const HELLO_INTERVAL: Duration = Duration::from_millis(500);
/// Longest delay between two HELLOs while waiting for an answer.
const HELLO_MAX_INTERVAL: Duration = Duration::from_secs(2);
/// A HELLO is repeated at least this often while in a room, to repair a NAT rebinding (PROTOCOL.md §2.5).
const REHELLO_INTERVAL: Duration = Duration::from_secs(15);
/// No datagram from the relay for this long while another member speaks: the binding may be lost (NAT
/// rebinding, address change nobody reported), so a HELLO goes out (PROTOCOL.md §2.5).
const SILENCE_REHELLO: Duration = Duration::from_secs(2);
/// First reconnect delay after the control connection dropped; doubles up to [`RECONNECT_MAX`].
const RECONNECT_MIN: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
const RECONNECT_MAX: Duration = Duration::from_secs(8);

/// What this session learned at login.
#[derive(Debug)]
struct Login {
    token: SessionToken,
    public_id: PublicId,
    secret: SessionSecret,
    /// Tags every AUDIO_UP, PING and RECEIVER_REPORT (`PROTOCOL.md` §2.8); derived from `secret` once.
    uplink: voice_proto::UplinkKey,
    relay: SocketAddr,
    grace: Duration,
}

/// The room this session is in.
#[derive(Debug)]
struct Room {
    name: String,
    config: ChannelConfig,
    members: BTreeMap<PublicId, Member>,
}

/// State of the control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// No connection; (re)connect at this time (`None`: never, the session is closed).
    Down { retry_at: Option<Instant> },
    /// Asked the driver to connect; waiting for `handle_connected`.
    Opening,
    /// Connected, login or resume sent.
    Authenticating,
    /// Connected and authenticated.
    Up,
}

/// The client's sans-IO core: one session with the server, from login to streaming, with resume and roaming.
///
/// It reads no clock and owns no socket, thread or audio device: time and bytes come in through `handle_*`
/// methods, and what to send or do comes out of `poll_*` methods. It deals in Opus packets, not samples: the
/// [`Media`](crate::Media) struct (capture + decoders + mixer) sits between it and the audio devices.
///
/// # Methods in four groups
/// * **input**: [`handle_connected`](Self::handle_connected), [`handle_control_bytes`](Self::handle_control_bytes),
///   [`handle_disconnected`](Self::handle_disconnected), [`handle_datagram`](Self::handle_datagram),
///   [`handle_timeout`](Self::handle_timeout), [`handle_local_address_changed`](Self::handle_local_address_changed);
/// * **application**: [`join`](Self::join), [`leave`](Self::leave), [`list_rooms`](Self::list_rooms),
///   [`send_chat`](Self::send_chat), [`set_muted`](Self::set_muted), [`set_deafened`](Self::set_deafened),
///   [`set_ptt`](Self::set_ptt), [`set_talk_mode`](Self::set_talk_mode), [`set_whisper`](Self::set_whisper),
///   [`send_frame`](Self::send_frame), [`close`](Self::close);
/// * **output** — after any input or call, drain in this order: [`poll_connection`](Self::poll_connection),
///   [`poll_control_bytes`](Self::poll_control_bytes), [`poll_transmit`](Self::poll_transmit),
///   [`poll_event`](Self::poll_event), then arm a timer for [`poll_timeout`](Self::poll_timeout). Once per
///   frame period the media side calls [`poll_playout`](Self::poll_playout) for each speaker;
/// * **getters**: [`state`](Self::state), [`stats`](Self::stats), [`members`](Self::members), ….
pub struct Session {
    config: SessionConfig,
    epoch: Instant,
    conn: Conn,
    reconnect_delay: Duration,
    /// Bytes received on the control connection, not yet a whole frame.
    ctl_in: BytesMut,
    /// Frames to write on the control connection.
    ctl_out: BytesMut,
    commands: VecDeque<ConnectionCommand>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    login: Option<Login>,
    /// When the control connection was lost (for the resume grace period).
    lost_at: Option<Instant>,
    room: Option<Room>,
    /// A join is wanted (after login, or again after a failed resume).
    want_room: Option<(String, Option<String>)>,
    keys: [Option<MediaKey>; 2],
    // Data plane.
    hello_counter: u64,
    /// Waiting for a HELLO_ACK with this counter; repeat at `.1` with interval `.2`.
    hello_pending: Option<(u64, Instant, Duration)>,
    bound: bool,
    /// Last datagram from the relay.
    last_rx: Option<Instant>,
    next_rehello: Option<Instant>,
    next_ping: Option<Instant>,
    next_report: Option<Instant>,
    next_ctl_ping: Option<Instant>,
    udp_rtt: Option<Duration>,
    tcp_rtt: Option<Duration>,
    speakers: BTreeMap<PublicId, Speaker>,
    // Sending.
    talk_mode: TalkMode,
    muted: bool,
    deafened: bool,
    ptt: bool,
    /// The key was released: the next frame goes out with END_OF_TALKSPURT, then nothing.
    ptt_release_pending: bool,
    /// [`leave`](Self::leave) was called: no audio until the server confirms or another room's state arrives.
    leaving: bool,
    /// In a talkspurt: the TOC byte of the last frame sent (not marked END_OF_TALKSPURT) and when it was sent.
    talkspurt: Option<(u8, Instant)>,
    /// The muted state goes to the server at this time (after the END_OF_TALKSPURT datagram of a mute).
    state_due: Option<Instant>,
    whisper: WhisperTarget,
    seq: u64,
    timestamp: u32,
    encoder_hint: Option<EncoderHint>,
    /// The encoder settings in force (the last hint, applied or not).
    current_hint: Option<EncoderHint>,
    stats: SessionStats,
    bytes_since_report: u64,
    last_report_at: Instant,
    /// Sealed datagrams are split off this buffer (see `queue_audio_at`).
    tx_buf: BytesMut,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state())
            .field("user", &self.config.user)
            .field("room", &self.room.as_ref().map(|r| &r.name))
            .field("speakers", &self.speakers.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session. The first output is [`ConnectionCommand::Connect`]: open the control connection.
    ///
    /// `seed` picks the first audio sequence number and timestamp (use a random value; tests use a fixed one).
    #[must_use]
    pub fn new(config: SessionConfig, now: Instant, seed: u64) -> Self {
        let want_room = config.room.clone().map(|r| (r, config.room_password.clone()));
        let talk_mode = config.talk_mode;
        Self {
            config,
            epoch: now,
            conn: Conn::Opening,
            reconnect_delay: RECONNECT_MIN,
            ctl_in: BytesMut::new(),
            ctl_out: BytesMut::new(),
            commands: VecDeque::from([ConnectionCommand::Connect]),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            login: None,
            lost_at: None,
            room: None,
            want_room,
            keys: [None, None],
            hello_counter: 0,
            hello_pending: None,
            bound: false,
            last_rx: None,
            next_rehello: None,
            next_ping: None,
            next_report: None,
            next_ctl_ping: None,
            udp_rtt: None,
            tcp_rtt: None,
            speakers: BTreeMap::new(),
            talk_mode,
            muted: false,
            deafened: false,
            ptt: false,
            ptt_release_pending: false,
            leaving: false,
            talkspurt: None,
            state_due: None,
            whisper: WhisperTarget::ROOM,
            // Below 2^62 as PROTOCOL.md §4.3 asks.
            seq: seed & ((1 << 40) - 1),
            timestamp: (seed >> 8) as u32,
            encoder_hint: None,
            current_hint: None,
            stats: SessionStats::default(),
            bytes_since_report: 0,
            last_report_at: now,
            tx_buf: BytesMut::new(),
        }
    }

    // ----- getters -----

    /// Where the session is in its lifecycle.
    #[must_use]
    pub fn state(&self) -> State {
        match self.conn {
            Conn::Down { retry_at: None } => State::Closed,
            _ if self.login.is_none() => match self.conn {
                Conn::Authenticating => State::Authenticating,
                _ => State::Connecting,
            },
            Conn::Down { .. } | Conn::Opening => State::Reconnecting,
            Conn::Authenticating => State::Authenticating,
            Conn::Up if self.room.is_none() => State::LoggedIn,
            Conn::Up if self.bound => State::Streaming,
            Conn::Up => State::Binding,
        }
    }

    /// Own public id, once logged in.
    #[must_use]
    pub fn public_id(&self) -> Option<PublicId> {
        self.login.as_ref().map(|l| l.public_id)
    }

    /// The relay's UDP address, once logged in.
    #[must_use]
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.login.as_ref().map(|l| l.relay)
    }

    /// The room's name, if in one.
    #[must_use]
    pub fn room(&self) -> Option<&str> {
        self.room.as_ref().map(|r| r.name.as_str())
    }

    /// The room's voice settings, if in one.
    #[must_use]
    pub fn channel_config(&self) -> Option<ChannelConfig> {
        self.room.as_ref().map(|r| r.config)
    }

    /// Frame duration of the room (20 ms when not in a room).
    #[must_use]
    pub fn frame_ms(&self) -> u32 {
        self.room.as_ref().map_or(20, |r| u32::from(r.config.frame_ms))
    }

    /// Members of the room (including this session).
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.room.iter().flat_map(|r| r.members.values())
    }

    /// The talk mode.
    #[must_use]
    pub fn talk_mode(&self) -> TalkMode {
        self.talk_mode
    }

    /// Muted by the user.
    #[must_use]
    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// Deafened by the user.
    #[must_use]
    pub fn is_deafened(&self) -> bool {
        self.deafened
    }

    /// Whether a captured frame handed to [`send_frame`](Self::send_frame) now would be sent: in a room with a
    /// media key and a bound address, not muted, and (in push-to-talk mode) the key down or just released. The
    /// capture side uses it to skip encoding.
    #[must_use]
    pub fn wants_audio(&self) -> bool {
        let talking = match self.talk_mode {
            TalkMode::PushToTalk => self.ptt || self.ptt_release_pending,
            TalkMode::VoiceActivation | TalkMode::Continuous => true,
        };
        talking
            && !self.muted
            && !self.leaving
            && self.bound
            && self.keys[0].is_some()
            && self.room.as_ref().is_some_and(|r| r.config.allow_voice)
    }

    /// Figures for a debug overlay.
    #[must_use]
    pub fn stats(&self) -> SessionStats {
        let mut s = SessionStats::default();
        self.stats_into(&mut s);
        s
    }

    /// [`stats`](Self::stats) written into `out`, reusing its speaker list's memory: allocation-free once it has
    /// held as many speakers (for a media loop that publishes them every frame).
    pub fn stats_into(&self, out: &mut SessionStats) {
        let mut speakers = std::mem::take(&mut out.speakers);
        speakers.clear();
        speakers.extend(self.speakers.iter().map(|(id, sp)| sp.stats(*id, self.is_speaking(*id))));
        *out = SessionStats { udp_rtt: self.udp_rtt, tcp_rtt: self.tcp_rtt, speakers, ..self.stats.clone() };
    }

    fn is_speaking(&self, id: PublicId) -> bool {
        self.room.as_ref().and_then(|r| r.members.get(&id)).is_some_and(|m| m.speaking)
    }

    // ----- output -----

    /// What to do with the control connection, if anything.
    pub fn poll_connection(&mut self) -> Option<ConnectionCommand> {
        self.commands.pop_front()
    }

    /// Bytes to write on the control connection.
    pub fn poll_control_bytes(&mut self) -> Option<Bytes> {
        (!self.ctl_out.is_empty()).then(|| self.ctl_out.split().freeze())
    }

    /// A datagram to send to the relay.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Something for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// New encoder settings to apply, once per change (the capture side polls this every frame).
    pub fn poll_encoder_hint(&mut self) -> Option<EncoderHint> {
        self.encoder_hint.take()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = match self.conn {
            Conn::Down { retry_at } => retry_at,
            _ => None,
        };
        [
            retry,
            self.hello_pending.map(|(_, at, _)| at),
            self.next_rehello,
            self.next_ping,
            self.next_report,
            self.next_ctl_ping.filter(|_| self.conn == Conn::Up),
            self.silence_check(),
            self.state_due,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- input -----

    /// Timers: reconnect, HELLO repetition, pings, receiver reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Conn::Down { retry_at: Some(at) } = self.conn {
            if now >= at {
                self.conn = Conn::Opening;
                self.commands.push_back(ConnectionCommand::Connect);
            }
        }
        if let Some((_, at, interval)) = self.hello_pending {
            if now >= at {
                let next = (interval * 2).min(HELLO_MAX_INTERVAL);
                self.send_hello(now, next);
            }
        }
        if self.silence_check().is_some_and(|at| now >= at) {
            self.send_hello(now, HELLO_INTERVAL);
        }
        if self.next_rehello.is_some_and(|at| now >= at) {
            self.send_hello(now, HELLO_INTERVAL);
        }
        if self.next_ping.is_some_and(|at| now >= at) {
            self.send_ping(now);
        }
        if self.next_report.is_some_and(|at| now >= at) {
            self.send_report(now);
        }
        if self.state_due.is_some_and(|at| now >= at) {
            self.send_state();
        }
        if self.conn == Conn::Up && self.next_ctl_ping.is_some_and(|at| now >= at) {
            let nonce = self.micros(now);
            self.send_control(&ClientMessage::Ping { nonce });
            self.next_ctl_ping = Some(now + self.config.control_ping_interval);
        }
    }

    /// The local address may have changed (network change, new interface): bind the new one with a fresh HELLO.
    /// Audio keeps flowing; the relay switches to the new address when the HELLO arrives.
    pub fn handle_local_address_changed(&mut self, now: Instant) {
        if self.login.is_some() && self.room.is_some() {
            self.send_hello(now, HELLO_INTERVAL);
        }
    }

    // ----- application -----

    /// Holds (`true`) or releases the push-to-talk key. On release, the next frame is sent with
    /// END_OF_TALKSPURT, then nothing until the key is pressed again.
    pub fn set_ptt(&mut self, down: bool) {
        // Only a talkspurt that is going on needs its end sent (a key released while muted sends nothing, also
        // not after unmuting).
        if self.ptt && !down && self.talkspurt.is_some() {
            self.ptt_release_pending = true;
        }
        if down {
            self.ptt_release_pending = false;
        }
        self.ptt = down;
    }

    /// Changes the talk mode.
    pub fn set_talk_mode(&mut self, mode: TalkMode) {
        self.talk_mode = mode;
    }

    /// Selects who hears what this session sends: [`WhisperTarget::ROOM`] or a list set with
    /// [`set_whisper`](Self::set_whisper).
    /// A talkspurt going on ends first (END_OF_TALKSPURT to the old target), so those no longer addressed stop at
    /// once instead of concealing; the next frame starts a talkspurt to the new target.
    pub fn select_whisper_target(&mut self, target: WhisperTarget) {
        if target != self.whisper {
            // Nothing to end (or nothing that can be sent) is fine: the switch happens either way.
            let _ = self.end_talkspurt();
        }
        self.whisper = target;
    }

    /// The target outgoing audio is sent to.
    #[must_use]
    pub fn whisper_target(&self) -> WhisperTarget {
        self.whisper
    }

    /// The next playout decision of remote speaker `id`, to be carried out by its decoder. Call it whenever that
    /// speaker's decoder output holds less than a frame (a slot lasts one frame plus the stretch applied), so
    /// about once per frame period. `None` for an unknown speaker and while deafened.
    pub fn poll_playout(&mut self, now: Instant, id: PublicId) -> Option<Playout<Bytes>> {
        if self.deafened {
            return None;
        }
        self.speakers.get_mut(&id).map(|sp| sp.jitter.poll_playout(now))
    }

    /// Packets in remote speaker `id`'s jitter buffer (0 for an unknown speaker).
    #[must_use]
    pub fn jitter_depth(&self, id: PublicId) -> usize {
        self.speakers.get(&id).map_or(0, |sp| sp.jitter.depth())
    }

    /// Remote speakers (members that have sent audio since this session joined), in id order.
    pub fn speakers(&self) -> impl Iterator<Item = PublicId> + '_ {
        self.speakers.keys().copied()
    }

    /// Whether a remote speaker (a member that has sent audio) is known.
    #[must_use]
    pub fn has_speaker(&self, id: PublicId) -> bool {
        self.speakers.contains_key(&id)
    }

    /// When to suspect a lost binding: [`SILENCE_REHELLO`] after the last datagram from the relay, while bound,
    /// no HELLO is pending and another member is speaking.
    fn silence_check(&self) -> Option<Instant> {
        let me = self.public_id();
        let others_speak = self.members().any(|m| m.speaking && Some(m.id) != me);
        if !self.bound || self.hello_pending.is_some() || !others_speak || self.deafened {
            return None;
        }
        self.last_rx.map(|t| t + SILENCE_REHELLO)
    }

    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    fn require_up(&self) -> Result<(), Error> {
        if self.conn == Conn::Up { Ok(()) } else { Err(Error::NotConnected) }
    }
}

/// Keeps the newest media key and the one before it (PROTOCOL.md §3.4).
fn rotate_key(keys: &mut [Option<MediaKey>; 2], key_id: voice_proto::KeyId, key: &SecretBytes) {
    if keys[0].as_ref().is_some_and(|k| k.id() == key_id) {
        keys[0] = Some(MediaKey::new(key_id, &key.0));
        return;
    }
    keys[1] = keys[0].take();
    keys[0] = Some(MediaKey::new(key_id, &key.0));
}
