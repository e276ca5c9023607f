//! The key map: what each key does on each screen ([`App::on_key`]).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{App, Command, Screen, Slider, TalkMode, login};

impl App {
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
                if self.key_release && self.talking {
                    // A second press with no release between: this terminal does not report Space's release
                    // after all. Stop, and toggle from now on (the screen says so).
                    self.key_release = false;
                    self.talking = false;
                    self.status = "this terminal reports no key release: Space now toggles talking on and off".into();
                    return vec![Command::Talk(false)];
                }
                // Held where the terminal reports releases; toggled (press again to stop) where it cannot.
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
    use super::super::{NetSliders, RoomRow};
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
        app.members = vec![App::test_member(1, "alice", true), App::test_member(2, "bob", false)];
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

    /// A terminal that claims key-release reporting but sends no release for Space used to leave the microphone
    /// open for good: the second press stops talking and switches to toggling.
    #[test]
    fn a_second_press_without_a_release_switches_to_toggling() {
        let mut app = in_room(true);
        assert_eq!(app.on_key(press(KeyCode::Char(' '))), vec![Command::Talk(true)]);
        assert_eq!(app.on_key(press(KeyCode::Char(' '))), vec![Command::Talk(false)], "stops at once");
        assert!(!app.key_release && !app.talking);
        assert!(app.status.contains("Space now toggles"), "{}", app.status);
        assert_eq!(app.on_key(press(KeyCode::Char(' '))), vec![Command::Talk(true)], "toggles from now on");
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
