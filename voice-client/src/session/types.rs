//! The session's configuration, events, commands and statistics.

use std::net::SocketAddr;
use std::time::Duration;

use voice_proto::PublicId;
use voice_proto::control::{ChannelConfig, Credential, ErrorCode, Member, RoomInfo};

/// How the session decides whether captured audio is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TalkMode {
    /// Nothing is sent unless the push-to-talk key is down ([`Session::set_ptt`](crate::Session::set_ptt)). The
    /// default, so nothing is ever sent by accident.
    #[default]
    PushToTalk,
    /// Frames are sent when voice activity is detected (the capture side's VAD gate decides which frames reach
    /// the session).
    VoiceActivation,
    /// Every captured frame is sent (bots, music).
    Continuous,
}

/// What a [`Session`](crate::Session) needs to know up front.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Address of the server's control (TCP) port. The relay's UDP port comes from `LoginOk`, on the same IP.
    /// Given to [`SessionConfig::new`].
    pub server: SocketAddr,
    /// User name. Given to [`SessionConfig::new`].
    pub user: String,
    /// Password or token. Given to [`SessionConfig::new`].
    pub credential: Credential,
    /// Free-form client software name sent at login. Default `voice-client/<version>`.
    pub client_name: String,
    /// Room joined automatically after login (after the room list arrived); `None` joins nothing. Default `None`.
    pub room: Option<String>,
    /// Password of `room`, if it has one. Default `None`.
    pub room_password: Option<String>,
    /// Talk mode at start. Default push-to-talk.
    pub talk_mode: TalkMode,
    /// Period of receiver reports (PROTOCOL.md §2.7 asks for 1–5 s). Default 1 s, so FEC follows loss quickly.
    pub report_interval: Duration,
    /// Period of UDP pings (RTT). Default 1 s.
    pub ping_interval: Duration,
    /// Period of control-channel pings (TCP RTT and liveness). Default 5 s.
    pub control_ping_interval: Duration,
    /// Bounds of the jitter buffers' target delay. Default 0 ..= 1 s.
    pub jitter_delay_bounds: (Duration, Duration),
}

impl SessionConfig {
    /// A configuration with the defaults: push-to-talk, no room, reports every second.
    #[must_use]
    pub fn new(server: SocketAddr, user: impl Into<String>, credential: Credential) -> Self {
        Self {
            server,
            user: user.into(),
            credential,
            client_name: concat!("voice-client/", env!("CARGO_PKG_VERSION")).to_string(),
            room: None,
            room_password: None,
            talk_mode: TalkMode::PushToTalk,
            report_interval: Duration::from_secs(1),
            ping_interval: Duration::from_secs(1),
            control_ping_interval: Duration::from_secs(5),
            jitter_delay_bounds: (Duration::ZERO, Duration::from_secs(1)),
        }
    }

    /// Joins `room` automatically after login.
    #[must_use]
    pub fn with_room(mut self, room: impl Into<String>) -> Self {
        self.room = Some(room.into());
        self
    }

    /// Sets the talk mode at start.
    #[must_use]
    pub fn with_talk_mode(mut self, mode: TalkMode) -> Self {
        self.talk_mode = mode;
        self
    }
}

/// Where the session is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Waiting for the driver to open the control connection (see [`ConnectionCommand::Connect`]).
    Connecting,
    /// Login (or resume) sent, no answer yet.
    Authenticating,
    /// Logged in, not in a room.
    LoggedIn,
    /// In a room; the UDP address is not bound yet (HELLO sent, no HELLO_ACK).
    Binding,
    /// In a room with a bound UDP address: audio flows.
    Streaming,
    /// The control connection dropped; the session will reconnect and resume. Audio keeps flowing over UDP.
    Reconnecting,
    /// The server ended the session or [`Session::close`](crate::Session::close) was called. Final.
    Closed,
}

/// What the session asks the driver to do with the control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionCommand {
    /// Open a (new) TCP connection to [`SessionConfig::server`]; then call
    /// [`Session::handle_connected`](crate::Session::handle_connected), or
    /// [`Session::handle_disconnected`](crate::Session::handle_disconnected) if it fails.
    Connect,
    /// Close the current control connection (after writing what
    /// [`Session::poll_control_bytes`](crate::Session::poll_control_bytes) returned).
    Close,
}

/// Encoder settings the relay or the room asks for; the capture side applies them to its
/// [`voice_codec::OpusSettings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncoderHint {
    /// Target bitrate, bits per second.
    pub bitrate_bps: u32,
    /// Use Opus in-band FEC.
    pub fec: bool,
    /// Expected loss for the encoder, percent.
    pub expected_loss_pct: u8,
    /// Frame duration of the room, ms (10, 20, 40 or 60).
    pub frame_ms: u8,
    /// Discontinuous transmission (the room's `dtx`): silent frames are not sent.
    pub dtx: bool,
}

impl EncoderHint {
    /// What a client starts with in a room: the room's bitrate, frame duration and DTX, FEC off (the relay turns
    /// it on with a BitrateHint once receivers report loss).
    #[must_use]
    pub fn for_room(config: &voice_proto::control::ChannelConfig) -> Self {
        Self {
            bitrate_bps: config.bitrate_bps,
            fec: false,
            expected_loss_pct: 0,
            frame_ms: config.frame_ms,
            dtx: config.dtx,
        }
    }

    /// These settings applied on top of `base`.
    #[must_use]
    pub fn apply_to(&self, base: voice_codec::OpusSettings) -> voice_codec::OpusSettings {
        voice_codec::OpusSettings {
            bitrate_bps: self.bitrate_bps.clamp(6_000, 510_000),
            inband_fec: self.fec,
            expected_loss_pct: self.expected_loss_pct.min(100),
            dtx: self.dtx,
            frame: voice_codec::FrameDuration::from_millis(u32::from(self.frame_ms)).unwrap_or(base.frame),
            ..base
        }
    }
}

/// Something the application should know. Drain with [`Session::poll_event`](crate::Session::poll_event).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Logged in (a fresh session).
    LoggedIn {
        /// Own public id (what other members see).
        public_id: PublicId,
        /// The server's name.
        server_name: String,
    },
    /// The room list arrived.
    RoomList(Vec<RoomInfo>),
    /// Joined a room (also sent again after a resume, with the current members).
    Joined {
        /// Room name.
        room: String,
        /// The room's voice settings.
        config: ChannelConfig,
        /// Members, including this session.
        members: Vec<Member>,
    },
    /// The UDP address is bound (HELLO acknowledged): audio flows.
    MediaReady,
    /// Left the room.
    Left,
    /// Someone joined the room.
    MemberJoined(Member),
    /// Someone left the room.
    MemberLeft(PublicId),
    /// A member changed its mute / deafen state.
    MemberUpdated(Member),
    /// A member started or stopped speaking.
    Speaking {
        /// Who.
        id: PublicId,
        /// Speaking now.
        speaking: bool,
    },
    /// A chat message (live or history).
    Chat {
        /// Author.
        from: PublicId,
        /// Author's name.
        from_name: String,
        /// The text.
        text: String,
        /// Replayed from history on join.
        history: bool,
        /// Server time, ms since the Unix epoch.
        sent_at_ms: u64,
    },
    /// The room's voice settings changed.
    ChannelConfig(ChannelConfig),
    /// The relay suggests new encoder settings (applied by [`Media`](crate::Media) automatically).
    EncoderHint(EncoderHint),
    /// A request failed; the session goes on.
    ServerError {
        /// Code.
        code: ErrorCode,
        /// Text.
        message: String,
    },
    /// A request of the application was refused locally (not connected, not in a room, a field over its cap);
    /// only the threaded `Client`, whose requests are asynchronous, reports this way.
    RequestRefused(String),
    /// The audio dump asked with `Client::set_dump` started writing into `dir`
    /// (`Some`), or stopped (`None`): every file of the previous dump is finalized when this arrives. Only the
    /// threaded `Client` reports this.
    Dump {
        /// Where the dump now writes; `None`: stopped.
        dir: Option<std::path::PathBuf>,
    },
    /// The control connection dropped; the session reconnects and resumes by itself.
    ConnectionLost,
    /// The control connection could not be opened (refused, timed out, a TLS certificate that does not verify,
    /// …: the text says); the session retries with backoff. Only the threaded `Client`, which opens connections,
    /// reports this.
    ConnectFailed(String),
    /// The session was resumed on a new control connection (same room, same identity, no re-login).
    Resumed,
    /// The session ended for good (the server's code and text, or `None` after
    /// [`Session::close`](crate::Session::close)).
    Closed {
        /// Why, if the server said.
        reason: Option<(ErrorCode, String)>,
    },
}

/// Per-speaker figures for a debug overlay.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SpeakerStats {
    /// Who.
    pub id: PublicId,
    /// The relay says this member is speaking.
    pub speaking: bool,
    /// This member's latest audio was whispered to this session (sent to a whisper list, not to the whole room),
    /// and its talkspurt has not ended: show "whispering to you".
    pub whispering: bool,
    /// Packets accepted (opened and authenticated).
    pub packets: u64,
    /// Packets lost (by sequence numbers), since the stream began.
    pub lost: u64,
    /// Loss since the stream began, percent.
    pub loss_pct: f64,
    /// RFC 3550 interarrival jitter.
    pub jitter: Duration,
    /// Packets in the jitter buffer now.
    pub depth: usize,
    /// Playout delay now.
    pub current_delay: Duration,
    /// The jitter buffer's target delay.
    pub target_delay: Duration,
    /// Frames concealed (PLC).
    pub concealed: u64,
    /// Frames recovered from FEC.
    pub fec_recovered: u64,
    /// Packets that arrived too late to play.
    pub late: u64,
}

/// Session-wide figures for a debug overlay.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Smoothed UDP round-trip time to the relay (PING/PONG).
    pub udp_rtt: Option<Duration>,
    /// Smoothed control-channel round-trip time (Ping/Pong).
    pub tcp_rtt: Option<Duration>,
    /// Audio packets sent.
    pub packets_sent: u64,
    /// Send bitrate (IP payload bytes of audio datagrams) over the last report period, bits per second.
    pub send_bitrate_bps: u32,
    /// Datagrams dropped on receipt (wrong source, malformed, replayed, failed to open, unknown key or sender).
    pub datagrams_dropped: u64,
    /// HELLOs sent.
    pub hellos_sent: u64,
    /// Times the control connection was resumed.
    pub resumes: u64,
    /// Receiver reports sent.
    pub reports_sent: u64,
    /// Per remote speaker.
    pub speakers: Vec<SpeakerStats>,
}
