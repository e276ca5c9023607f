//! The terminal client's screen state and key map (the `voice-client` binary draws it with ratatui).
//!
//! [`App`] is a plain state machine: keys come in through [`App::on_key`] ([`keys`]), which returns the
//! [`Command`]s the binary hands to the voice client; what the client reports is written into it by
//! [`events::on_event`]. Drawing is in [`view`], which escapes every string it draws (names, rooms and chat come
//! from the network). Nothing here but [`term`] touches the terminal, audio, sockets or threads, so the key map,
//! the events and the screens are tested without a terminal.

pub mod events;
pub mod keys;
pub mod login;
pub mod term;
pub mod view;

use std::collections::VecDeque;

/// Most chat lines kept on screen.
pub const CHAT_LINES: usize = 500;

/// Which screen is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Choosing a server (bookmarks) and typing the login.
    Login,
    /// Logging in / waiting for the room list.
    Connecting,
    /// The room list: pick one with ↑/↓ and Enter.
    Rooms,
    /// In a room: members, chat, talking.
    Room,
}

/// How speech is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TalkMode {
    /// Nothing is sent unless the talk key is held (or latched, on terminals without key-release events). Default.
    PushToTalk,
    /// The voice-activity detector opens the microphone.
    VoiceActivation,
}

/// A room in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRow {
    /// Room name.
    pub name: String,
    /// Members in it.
    pub members: u32,
    /// Whether a password is needed.
    pub password: bool,
}

/// A member of the joined room.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRow {
    /// The member's public id (stable within the session).
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Speaking now.
    pub speaking: bool,
    /// Self-muted.
    pub muted: bool,
    /// Deafened.
    pub deafened: bool,
    /// Playback volume for this member, 0.0–2.0 (1.0 = unchanged).
    pub volume: f32,
    /// Whether this row is the local user.
    pub me: bool,
    /// Whether this member is whispering to the local user now (only a whisper's recipients are told).
    pub whispering_to_me: bool,
}

/// Per-speaker figures of the debug overlay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpeakerDebug {
    /// Display name.
    pub name: String,
    /// Jitter-buffer depth now, ms.
    pub depth_ms: f32,
    /// Jitter-buffer target delay, ms.
    pub target_ms: f32,
    /// Loss seen from this speaker, %.
    pub loss_pct: f32,
    /// Frames concealed.
    pub plc: u64,
    /// Frames recovered from in-band FEC.
    pub fec: u64,
}

/// The debug overlay's figures (F3).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DebugStats {
    /// UDP round-trip time to the relay, ms.
    pub udp_rtt_ms: Option<f32>,
    /// TCP (control) round-trip time, ms.
    pub tcp_rtt_ms: Option<f32>,
    /// Encoder bitrate, bit/s.
    pub bitrate: u32,
    /// Packets sent.
    pub sent: u64,
    /// One row per remote speaker.
    pub speakers: Vec<SpeakerDebug>,
}

/// The network conditioner's sliders (F4).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NetSliders {
    /// Packet loss, percent (0–50).
    pub loss_pct: u32,
    /// Added one-way latency, ms (0–1000).
    pub latency_ms: u32,
    /// Added jitter (standard deviation), ms (0–200).
    pub jitter_ms: u32,
}

/// Which slider the arrow keys move in the conditioner panel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Slider {
    /// `loss_pct`.
    #[default]
    Loss,
    /// `latency_ms`.
    Latency,
    /// `jitter_ms`.
    Jitter,
}

/// What the user asked for; the binary passes these to the voice client.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Connect and log in with the login form.
    Connect,
    /// Save the login form's server and user as a bookmark.
    SaveBookmark,
    /// Join this room.
    Join(String),
    /// Leave the room (back to the list).
    Leave,
    /// Send a chat message to the room.
    Chat(String),
    /// Start (`true`) or stop sending speech in push-to-talk mode.
    Talk(bool),
    /// Switch between push-to-talk and voice activation.
    Mode(TalkMode),
    /// Mute (`true`: stop sending and release the microphone) or unmute.
    Mute(bool),
    /// Deafen (`true`: stop playout; the relay stops sending) or undeafen.
    Deafen(bool),
    /// Set a member's playback volume.
    Volume {
        /// Member id.
        id: u32,
        /// New volume, 0.0–2.0.
        volume: f32,
    },
    /// Whisper only to these members (empty: talk to the whole room).
    Whisper(Vec<u32>),
    /// New network-conditioner settings.
    Network(NetSliders),
    /// Start (`true`) or stop the audio dumper.
    Dump(bool),
    /// Quit the program.
    Quit,
}

/// The terminal client's state.
#[derive(Debug)]
pub struct App {
    /// Shown screen.
    pub screen: Screen,
    /// "user@host:port", for the title bar.
    pub title: String,
    /// The room list.
    pub rooms: Vec<RoomRow>,
    /// Highlighted room in the list.
    pub room_cursor: usize,
    /// The joined room's name.
    pub room: Option<String>,
    /// Members of the joined room (the local user included, `me`).
    pub members: Vec<MemberRow>,
    /// Highlighted member (volume and whisper keys act on it).
    pub member_cursor: usize,
    /// Chat and notice lines, oldest first.
    pub chat: VecDeque<String>,
    /// The chat line being typed, when typing.
    pub input: Option<String>,
    /// Push-to-talk or voice activation.
    pub mode: TalkMode,
    /// Whether speech is being sent now in push-to-talk mode.
    pub talking: bool,
    /// Whether the terminal reports key releases (then the talk key is held; otherwise Space toggles talking, and
    /// the screen says so).
    pub key_release: bool,
    /// Self-muted.
    pub muted: bool,
    /// Deafened.
    pub deafened: bool,
    /// Whisper target (member id) when whispering.
    pub whisper: Option<u32>,
    /// Debug overlay shown.
    pub show_debug: bool,
    /// Debug overlay figures.
    pub debug: DebugStats,
    /// Conditioner panel shown.
    pub show_net: bool,
    /// Conditioner settings.
    pub net: NetSliders,
    /// Slider the arrows move.
    pub slider: Slider,
    /// Audio dumper running.
    pub dumping: bool,
    /// One status line (last notice or error).
    pub status: String,
    /// A standing notice shown on every screen (e.g. that this build has no sound).
    pub notice: Option<String>,
    /// The login screen's form and bookmarks.
    pub login: login::LoginForm,
}

impl App {
    /// A fresh client state, titled `title`, waiting for the login.
    #[must_use]
    pub fn new(title: impl Into<String>, key_release: bool) -> Self {
        Self {
            screen: Screen::Connecting,
            title: title.into(),
            rooms: Vec::new(),
            room_cursor: 0,
            room: None,
            members: Vec::new(),
            member_cursor: 0,
            chat: VecDeque::new(),
            input: None,
            mode: TalkMode::PushToTalk,
            talking: false,
            key_release,
            muted: false,
            deafened: false,
            whisper: None,
            show_debug: false,
            debug: DebugStats::default(),
            show_net: false,
            net: NetSliders::default(),
            slider: Slider::Loss,
            dumping: false,
            status: "connecting…".into(),
            notice: None,
            login: login::LoginForm::default(),
        }
    }

    /// Adds a chat or notice line (the oldest goes beyond [`CHAT_LINES`]).
    pub fn push_line(&mut self, line: impl Into<String>) {
        if self.chat.len() == CHAT_LINES {
            self.chat.pop_front();
        }
        self.chat.push_back(line.into());
    }

    /// The highlighted member, if any.
    #[must_use]
    pub fn selected_member(&self) -> Option<&MemberRow> {
        self.members.get(self.member_cursor)
    }

    /// A member row for tests: `id`, `name`, speaking unless it is the local user (`me`), volume 1.
    #[cfg(test)]
    pub(crate) fn test_member(id: u32, name: &str, me: bool) -> MemberRow {
        MemberRow {
            id,
            name: name.into(),
            speaking: !me,
            muted: false,
            deafened: false,
            volume: 1.0,
            me,
            whispering_to_me: false,
        }
    }

    /// Marks the members in `ids` as whispering to the local user now, and no one else.
    pub fn set_whispering_to_me(&mut self, ids: &[u32]) {
        for m in &mut self.members {
            m.whispering_to_me = !m.me && ids.contains(&m.id);
        }
    }
}
