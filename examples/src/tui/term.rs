//! The terminal loop: crossterm events → [`App`] → [`Client`] commands; client events and stats → [`App`] → draw.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::crossterm::event::{
    self, Event as TermEvent, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use ratatui::crossterm::{execute, terminal};
use voice_client::{Client, Event, SessionStats};
use voice_proto::PublicId;
use voice_proto::control::Member;

use super::login::LoginForm;
use super::{App, Command, DebugStats, MemberRow, RoomRow, Screen, SpeakerDebug, TalkMode};

/// How often the debug figures are refreshed.
const STATS_EVERY: Duration = Duration::from_millis(250);

/// Runs the terminal UI until the user quits: the login screen (`form`; connecting at once if `auto`), then the
/// session. `connect` starts a client from the form; `save` stores the form as a bookmark and says where.
pub fn run(
    form: LoginForm,
    auto: bool,
    mode: voice_client::TalkMode,
    connect: &dyn Fn(&LoginForm) -> Result<Client>,
    save: &dyn Fn(&LoginForm) -> Result<String>,
) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("not a terminal: run with --headless (events as lines, commands on stdin)");
    }
    let mut terminal = ratatui::try_init()?;
    // Key releases (for a held push-to-talk key) need the kitty keyboard protocol; elsewhere the key latches.
    let key_release = terminal::supports_keyboard_enhancement().unwrap_or(false);
    if key_release {
        let _ = execute!(std::io::stdout(), PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::REPORT_EVENT_TYPES));
    }
    let mut app = App::new("voice-client", key_release);
    app.screen = Screen::Login;
    app.status = "choose a server and log in".into();
    app.login = form;
    if mode == voice_client::TalkMode::VoiceActivation {
        app.mode = TalkMode::VoiceActivation;
    }
    let mut ui = Ui { app, client: None, connect, save };
    if auto {
        ui.connect();
    }
    let result = ui.event_loop(&mut terminal);
    if let Some(c) = ui.client.take() {
        let _ = c.shutdown();
    }
    if key_release {
        let _ = execute!(std::io::stdout(), PopKeyboardEnhancementFlags);
    }
    ratatui::restore();
    result
}

/// The screen state and the running client, if logged in.
struct Ui<'a> {
    app: App,
    client: Option<Client>,
    connect: &'a dyn Fn(&LoginForm) -> Result<Client>,
    save: &'a dyn Fn(&LoginForm) -> Result<String>,
}

impl Ui<'_> {
    fn connect(&mut self) {
        match (self.connect)(&self.app.login) {
            Ok(c) => {
                self.client = Some(c);
                self.app.title = format!("{}@{}", self.app.login.user, self.app.login.server);
                self.app.screen = Screen::Connecting;
                self.app.status = "logging in…".into();
            }
            Err(e) => self.app.status = format!("{e:#}"),
        }
    }

    /// Back to the login screen (the session ended).
    fn disconnect(&mut self, why: String) {
        if let Some(c) = self.client.take() {
            let _ = c.shutdown();
        }
        let login = std::mem::take(&mut self.app.login);
        self.app = App { login, status: why, ..App::new("voice-client", self.app.key_release) };
        self.app.screen = Screen::Login;
    }

    fn event_loop(&mut self, terminal: &mut ratatui::DefaultTerminal) -> Result<()> {
        let mut me: Option<PublicId> = None;
        let mut last_stats = Instant::now();
        loop {
            while let Some(ev) = self.client.as_ref().and_then(Client::try_event) {
                if let Event::Closed { reason } = ev {
                    let why = reason.map_or_else(|| "disconnected".into(), |(_, m)| format!("disconnected: {m}"));
                    self.disconnect(why);
                    break;
                }
                on_event(&mut self.app, &mut me, ev);
            }
            if let Some(c) = &self.client
                && last_stats.elapsed() >= STATS_EVERY
            {
                last_stats = Instant::now();
                self.app.debug = debug_stats(&c.stats(), &self.app);
            }
            terminal.draw(|f| super::view::draw(f, &self.app))?;
            if !event::poll(Duration::from_millis(30))? {
                continue;
            }
            let TermEvent::Key(key) = event::read()? else { continue };
            for cmd in self.app.on_key(key) {
                match cmd {
                    Command::Quit => return Ok(()),
                    Command::Connect => self.connect(),
                    Command::SaveBookmark => {
                        self.app.status = (self.save)(&self.app.login).unwrap_or_else(|e| format!("{e:#}"));
                    }
                    cmd => {
                        let Some(client) = &self.client else { continue };
                        match (crate::client::apply(client, &cmd), &cmd) {
                            (Err(e), _) => self.app.status = format!("error: {e:#}"),
                            (Ok(()), Command::Dump(true)) => {
                                self.app.status = format!("dumping audio to {}/", crate::client::DUMP_DIR);
                            }
                            (Ok(()), Command::Dump(false)) => self.app.status = "audio dump stopped".into(),
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

fn row(m: &Member, me: Option<PublicId>, volume: f32) -> MemberRow {
    MemberRow {
        id: m.id.0,
        name: m.name.clone(),
        speaking: m.speaking,
        muted: m.muted,
        deafened: m.deafened,
        volume,
        me: Some(m.id) == me,
    }
}

/// Applies one client event to the screen state.
fn on_event(app: &mut App, me: &mut Option<PublicId>, ev: Event) {
    let volumes: HashMap<u32, f32> = app.members.iter().map(|m| (m.id, m.volume)).collect();
    let vol = |id: PublicId| volumes.get(&id.0).copied().unwrap_or(1.0);
    match ev {
        Event::LoggedIn { public_id, server_name } => {
            *me = Some(public_id);
            app.status = format!("logged in to {server_name}");
            app.screen = Screen::Rooms;
        }
        Event::RoomList(rooms) => {
            app.rooms = rooms
                .into_iter()
                .map(|r| RoomRow { name: r.name, members: u32::from(r.members), password: r.has_password })
                .collect();
            app.room_cursor = app.room_cursor.min(app.rooms.len().saturating_sub(1));
            if app.screen == Screen::Connecting {
                app.screen = Screen::Rooms;
            }
        }
        Event::Joined { room, members, .. } => {
            app.members = members.iter().map(|m| row(m, *me, vol(m.id))).collect();
            app.status = format!("joined #{room}");
            app.room = Some(room);
            app.screen = Screen::Room;
        }
        Event::MediaReady => app.status = "audio connected".into(),
        Event::Left => {
            app.room = None;
            app.members.clear();
            app.screen = Screen::Rooms;
            app.status = "left the room".into();
        }
        Event::MemberJoined(m) => {
            app.push_line(format!("→ {} joined", m.name));
            app.members.push(row(&m, *me, 1.0));
        }
        Event::MemberLeft(id) => {
            if let Some(i) = app.members.iter().position(|m| m.id == id.0) {
                let gone = app.members.remove(i);
                app.push_line(format!("← {} left", gone.name));
            }
            app.member_cursor = app.member_cursor.min(app.members.len().saturating_sub(1));
        }
        Event::MemberUpdated(m) => {
            if let Some(r) = app.members.iter_mut().find(|r| r.id == m.id.0) {
                *r = row(&m, *me, r.volume);
            }
        }
        Event::Speaking { id, speaking } => {
            if let Some(r) = app.members.iter_mut().find(|r| r.id == id.0) {
                r.speaking = speaking;
            }
        }
        Event::Chat { from_name, text, history, .. } => {
            app.push_line(format!("{}{from_name}: {text}", if history { "(earlier) " } else { "" }));
        }
        Event::ServerError { code, message } => app.status = format!("server: {message} ({})", code.0),
        Event::RequestRefused(why) => app.status = format!("refused: {why}"),
        Event::ConnectionLost => app.status = "connection lost: reconnecting…".into(),
        Event::ConnectFailed(why) => app.status = format!("cannot connect ({why}): retrying…"),
        Event::Resumed => app.status = "reconnected".into(),
        _ => {}
    }
}

fn debug_stats(s: &SessionStats, app: &App) -> DebugStats {
    let name =
        |id: PublicId| app.members.iter().find(|m| m.id == id.0).map_or_else(|| id.0.to_string(), |m| m.name.clone());
    let ms = |d: Duration| d.as_secs_f32() * 1000.0;
    DebugStats {
        udp_rtt_ms: s.udp_rtt.map(ms),
        tcp_rtt_ms: s.tcp_rtt.map(ms),
        bitrate: s.send_bitrate_bps,
        sent: s.packets_sent,
        speakers: s
            .speakers
            .iter()
            .map(|sp| SpeakerDebug {
                name: name(sp.id),
                depth_ms: ms(sp.current_delay),
                target_ms: ms(sp.target_delay),
                #[allow(clippy::cast_possible_truncation)]
                loss_pct: sp.loss_pct as f32,
                plc: sp.concealed,
                fec: sp.fec_recovered,
            })
            .collect(),
    }
}
