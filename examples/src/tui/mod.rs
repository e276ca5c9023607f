//! The terminal client's screen state and key map (the `voice-client` binary draws it with ratatui).
//!
//! [`App`] is a plain state machine: keys come in through [`App::on_key`], which returns the [`Command`]s the binary
//! hands to the voice client; what the client reports is written into the public fields. Drawing is in [`view`].
//! Nothing here touches audio, sockets or threads, so the key map and the screens are tested without a terminal.

pub mod login;
pub mod term;
pub mod view;

use std::collections::VecDeque;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

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
    /// Whether the terminal reports key releases (then the talk key is held; otherwise it latches).
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

    /// Handles one key event; returns what to ask of the voice client.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        // Key releases matter only for the talk key.
        if key.kind == KeyEventKind::Release {
            if key.code == KeyCode::Char(' ') && self.key_release && self.talking && self.input.is_none() {
                self.talking = false;
                return vec![Command::Talk(false)];
            }
            return Vec::new();
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return vec![Command::Quit];
        }
        if let Some(input) = self.input.as_mut() {
            return match key.code {
                KeyCode::Enter => {
                    let text = std::mem::take(input);
                    self.input = None;
                    if text.trim().is_empty() { Vec::new() } else { vec![Command::Chat(text)] }
                }
                KeyCode::Esc => {
                    self.input = None;
                    Vec::new()
                }
                KeyCode::Backspace => {
                    input.pop();
                    Vec::new()
                }
                KeyCode::Char(c) => {
                    if input.len() < 2000 {
                        input.push(c);
                    }
                    Vec::new()
                }
                _ => Vec::new(),
            };
        }
        match key.code {
            KeyCode::F(3) => {
                self.show_debug = !self.show_debug;
                return Vec::new();
            }
            KeyCode::F(4) => {
                self.show_net = !self.show_net;
                return Vec::new();
            }
            KeyCode::F(5) => {
                self.dumping = !self.dumping;
                return vec![Command::Dump(self.dumping)];
            }
            _ => {}
        }
        if self.show_net {
            if let Some(cmds) = self.net_key(key.code) {
                return cmds;
            }
        }
        match self.screen {
            Screen::Login => match self.login.on_key(key.code) {
                login::LoginAction::None => Vec::new(),
                login::LoginAction::Connect => vec![Command::Connect],
                login::LoginAction::Save => vec![Command::SaveBookmark],
                login::LoginAction::Quit => vec![Command::Quit],
            },
            Screen::Connecting => match key.code {
                KeyCode::Char('q') | KeyCode::Esc => vec![Command::Quit],
                _ => Vec::new(),
            },
            Screen::Rooms => self.rooms_key(key.code),
            Screen::Room => self.room_key(key.code, key.kind == KeyEventKind::Repeat),
        }
    }

    fn rooms_key(&mut self, code: KeyCode) -> Vec<Command> {
        match code {
            KeyCode::Up => self.room_cursor = self.room_cursor.saturating_sub(1),
            KeyCode::Down => self.room_cursor = (self.room_cursor + 1).min(self.rooms.len().saturating_sub(1)),
            KeyCode::Enter => {
                if let Some(room) = self.rooms.get(self.room_cursor) {
                    return vec![Command::Join(room.name.clone())];
                }
            }
            KeyCode::Char('q') | KeyCode::Esc => return vec![Command::Quit],
            _ => {}
        }
        Vec::new()
    }

    fn room_key(&mut self, code: KeyCode, repeat: bool) -> Vec<Command> {
        match code {
            KeyCode::Char(' ') if self.mode == TalkMode::PushToTalk && !repeat => {
                // Held where the terminal reports releases; latched (press again to stop) where it cannot.
                let talk = if self.key_release { true } else { !self.talking };
                if talk != self.talking {
                    self.talking = talk;
                    return vec![Command::Talk(talk)];
                }
            }
            KeyCode::Char('v') => {
                self.mode = match self.mode {
                    TalkMode::PushToTalk => TalkMode::VoiceActivation,
                    TalkMode::VoiceActivation => TalkMode::PushToTalk,
                };
                let mut cmds = vec![Command::Mode(self.mode)];
                if self.talking {
                    self.talking = false;
                    cmds.insert(0, Command::Talk(false));
                }
                return cmds;
            }
            KeyCode::Char('m') => {
                self.muted = !self.muted;
                return vec![Command::Mute(self.muted)];
            }
            KeyCode::Char('d') => {
                self.deafened = !self.deafened;
                return vec![Command::Deafen(self.deafened)];
            }
            KeyCode::Up => self.member_cursor = self.member_cursor.saturating_sub(1),
            KeyCode::Down => {
                self.member_cursor = (self.member_cursor + 1).min(self.members.len().saturating_sub(1));
            }
            KeyCode::Char(c @ ('+' | '-' | '=')) => {
                if let Some(m) = self.members.get_mut(self.member_cursor).filter(|m| !m.me) {
                    let step = if c == '-' { -0.1 } else { 0.1 };
                    m.volume = ((m.volume + step) * 10.0).round().clamp(0.0, 20.0) / 10.0;
                    return vec![Command::Volume { id: m.id, volume: m.volume }];
                }
            }
            KeyCode::Char('w') => {
                let target = self.selected_member().filter(|m| !m.me).map(|m| m.id);
                self.whisper = if self.whisper.is_some() || target.is_none() { None } else { target };
                return vec![Command::Whisper(self.whisper.into_iter().collect())];
            }
            KeyCode::Enter | KeyCode::Char('t') => self.input = Some(String::new()),
            KeyCode::Char('l') => return vec![Command::Leave],
            KeyCode::Char('q') => return vec![Command::Quit],
            _ => {}
        }
        Vec::new()
    }

    /// Keys of the conditioner panel: ←/→ pick a slider, `[`/`]` move it. `None` when the key is not the panel's.
    fn net_key(&mut self, code: KeyCode) -> Option<Vec<Command>> {
        match code {
            KeyCode::Left | KeyCode::Right => {
                let order = [Slider::Loss, Slider::Latency, Slider::Jitter];
                let i = order.iter().position(|s| *s == self.slider).unwrap_or(0);
                let j = if code == KeyCode::Right { (i + 1) % 3 } else { (i + 2) % 3 };
                self.slider = order[j];
                Some(Vec::new())
            }
            KeyCode::Char(c @ ('[' | ']')) => {
                let up = c == ']';
                let (value, step, max) = match self.slider {
                    Slider::Loss => (&mut self.net.loss_pct, 1, 50),
                    Slider::Latency => (&mut self.net.latency_ms, 10, 1000),
                    Slider::Jitter => (&mut self.net.jitter_ms, 5, 200),
                };
                *value = if up { (*value + step).min(max) } else { value.saturating_sub(step) };
                Some(vec![Command::Network(self.net)])
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventState;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn release(code: KeyCode) -> KeyEvent {
        KeyEvent { code, modifiers: KeyModifiers::NONE, kind: KeyEventKind::Release, state: KeyEventState::NONE }
    }

    fn in_room(key_release: bool) -> App {
        let mut app = App::new("alice@127.0.0.1:7000", key_release);
        app.screen = Screen::Room;
        app.members = vec![
            MemberRow {
                id: 1,
                name: "alice".into(),
                speaking: false,
                muted: false,
                deafened: false,
                volume: 1.0,
                me: true,
            },
            MemberRow {
                id: 2,
                name: "bob".into(),
                speaking: true,
                muted: false,
                deafened: false,
                volume: 1.0,
                me: false,
            },
        ];
        app
    }

    #[test]
    fn push_to_talk_is_held_where_releases_are_reported_and_latched_elsewhere() {
        let mut app = in_room(true);
        assert_eq!(app.mode, TalkMode::PushToTalk, "push-to-talk is the default");
        assert_eq!(app.on_key(press(KeyCode::Char(' '))), vec![Command::Talk(true)]);
        assert!(app.on_key(KeyEvent { kind: KeyEventKind::Repeat, ..press(KeyCode::Char(' ')) }).is_empty());
        assert_eq!(app.on_key(release(KeyCode::Char(' '))), vec![Command::Talk(false)]);

        let mut app = in_room(false);
        assert_eq!(app.on_key(press(KeyCode::Char(' '))), vec![Command::Talk(true)]);
        assert_eq!(app.on_key(press(KeyCode::Char(' '))), vec![Command::Talk(false)]);
    }

    #[test]
    fn chat_typing_does_not_trigger_room_keys() {
        let mut app = in_room(true);
        assert!(app.on_key(press(KeyCode::Enter)).is_empty());
        for c in "hi m d q".chars() {
            assert!(app.on_key(press(KeyCode::Char(c))).is_empty());
        }
        assert_eq!(app.on_key(press(KeyCode::Enter)), vec![Command::Chat("hi m d q".into())]);
        assert!(!app.muted && !app.deafened);
    }

    #[test]
    fn volume_whisper_mute_deafen_and_sliders() {
        let mut app = in_room(true);
        app.on_key(press(KeyCode::Down));
        assert_eq!(app.on_key(press(KeyCode::Char('+'))), vec![Command::Volume { id: 2, volume: 1.1 }]);
        assert_eq!(app.on_key(press(KeyCode::Char('w'))), vec![Command::Whisper(vec![2])]);
        assert_eq!(app.on_key(press(KeyCode::Char('w'))), vec![Command::Whisper(vec![])]);
        assert_eq!(app.on_key(press(KeyCode::Char('m'))), vec![Command::Mute(true)]);
        assert_eq!(app.on_key(press(KeyCode::Char('d'))), vec![Command::Deafen(true)]);
        app.on_key(press(KeyCode::F(4)));
        app.on_key(press(KeyCode::Right));
        let cmds = app.on_key(press(KeyCode::Char(']')));
        assert_eq!(cmds, vec![Command::Network(NetSliders { loss_pct: 0, latency_ms: 10, jitter_ms: 0 })]);
        assert_eq!(app.on_key(press(KeyCode::F(5))), vec![Command::Dump(true)]);
    }

    #[test]
    fn room_list_joins_the_highlighted_room() {
        let mut app = App::new("t", false);
        app.screen = Screen::Rooms;
        app.rooms =
            ["lobby", "games"].iter().map(|n| RoomRow { name: (*n).into(), members: 0, password: false }).collect();
        app.on_key(press(KeyCode::Down));
        app.on_key(press(KeyCode::Down));
        assert_eq!(app.on_key(press(KeyCode::Enter)), vec![Command::Join("games".into())]);
    }
}
