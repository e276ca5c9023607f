//! The terminal loop: crossterm events → [`App`] → [`Client`] commands; client events and stats → [`App`] (see
//! [`super::events`]) → draw.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::crossterm::event::{
    self, Event as TermEvent, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags, PushKeyboardEnhancementFlags,
};
use ratatui::crossterm::{execute, terminal};
use voice_client::{Client, Event};

use super::events::{Link, debug_stats, on_event};
use super::login::LoginForm;
use super::{App, Command, Screen, TalkMode};
use crate::client::reach::{Reach, Verdict};
use crate::client::{Probe, probe};
use crate::words::{USE_TLS, ended};

/// How often the debug figures are refreshed.
const STATS_EVERY: Duration = Duration::from_millis(250);
/// How often the room list (members per room) is asked for again.
const ROOMS_EVERY: Duration = Duration::from_secs(5);

/// What the terminal UI starts with.
#[derive(Debug)]
pub struct Start {
    /// The login form, filled from the command line and the bookmarks.
    pub form: LoginForm,
    /// Connect at once (the command line named a server and a credential).
    pub auto: bool,
    /// Push-to-talk or voice activation at start.
    pub mode: voice_client::TalkMode,
    /// A notice for every screen (e.g. that this build has no sound).
    pub notice: Option<&'static str>,
}

/// A client the login form started.
#[derive(Debug)]
pub struct Started {
    /// The running client.
    pub client: Client,
    /// Its server's control address.
    pub server: SocketAddr,
    /// Whether it uses TLS.
    pub tls: bool,
    /// Something to say (e.g. that the bookmark asked for with `--save-bookmark` was saved).
    pub note: Option<String>,
}

/// The keyboard enhancements asked of terminals that support them (the kitty keyboard protocol): press, repeat
/// and release events (a held push-to-talk key), for every key — Space makes text, and a text key's release is
/// reported only with "all keys as escape codes" —, with the shifted character where Shift is held.
#[must_use]
pub fn keyboard_flags() -> KeyboardEnhancementFlags {
    KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES
        | KeyboardEnhancementFlags::REPORT_EVENT_TYPES
        | KeyboardEnhancementFlags::REPORT_ALL_KEYS_AS_ESCAPE_CODES
        | KeyboardEnhancementFlags::REPORT_ALTERNATE_KEYS
}

/// Runs the terminal UI until the user quits: the login screen (connecting at once if `start.auto`), then the
/// session. `connect` starts a client from the form; `save` stores the form as a bookmark and says where.
pub fn run(
    start: Start,
    connect: &dyn Fn(&LoginForm) -> Result<Started>,
    save: &dyn Fn(&LoginForm) -> Result<String>,
) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!("not a terminal: run with --headless (events as lines, commands on stdin)");
    }
    let mut terminal = ratatui::try_init()?;
    // Key releases (for a held push-to-talk key) need the kitty keyboard protocol; elsewhere Space toggles.
    let key_release = terminal::supports_keyboard_enhancement().unwrap_or(false)
        && execute!(std::io::stdout(), PushKeyboardEnhancementFlags(keyboard_flags())).is_ok();
    let mut app = App::new("voice-client", key_release);
    app.screen = Screen::Login;
    app.status = "choose a server and log in".into();
    app.login = start.form;
    app.notice = start.notice.map(str::to_string);
    if start.mode == voice_client::TalkMode::VoiceActivation {
        app.mode = TalkMode::VoiceActivation;
    }
    let mut ui = Ui { app, session: None, connect, save };
    if start.auto {
        ui.connect();
    }
    let result = ui.event_loop(&mut terminal);
    if let Some(s) = ui.session.take() {
        let _ = s.client.shutdown();
    }
    if key_release {
        let _ = execute!(std::io::stdout(), PopKeyboardEnhancementFlags);
    }
    ratatui::restore();
    result
}

/// A running client and what the screen knows about its connection.
struct Session {
    client: Client,
    link: Link,
    reach: Reach,
    /// The answer of a look at a silent login, when one is under way.
    probe: Option<mpsc::Receiver<Probe>>,
}

/// The screen state and the running client, if logged in.
struct Ui<'a> {
    app: App,
    session: Option<Session>,
    connect: &'a dyn Fn(&LoginForm) -> Result<Started>,
    save: &'a dyn Fn(&LoginForm) -> Result<String>,
}

impl Ui<'_> {
    fn connect(&mut self) {
        match (self.connect)(&self.app.login) {
            Ok(s) => {
                // The terminal UI never gives up: it says why it cannot connect and retries.
                let reach = Reach::new(Instant::now(), s.server, s.tls, Duration::MAX);
                self.session = Some(Session { client: s.client, link: Link::new(s.server, s.tls), reach, probe: None });
                self.app.title = format!("{}@{}", self.app.login.user, self.app.login.server);
                self.app.screen = Screen::Connecting;
                self.app.status = s.note.unwrap_or_else(|| "logging in…".into());
            }
            Err(e) => self.app.status = format!("{e:#}"),
        }
    }

    /// Back to the login screen (the session ended).
    fn disconnect(&mut self, why: String) {
        if let Some(s) = self.session.take() {
            let _ = s.client.shutdown();
        }
        let login = std::mem::take(&mut self.app.login);
        let notice = self.app.notice.take();
        self.app = App { login, notice, status: why, ..App::new("voice-client", self.app.key_release) };
        self.app.screen = Screen::Login;
    }

    /// Client events into the screen state; a login that goes unanswered is looked at once (off this thread).
    fn client_events(&mut self) {
        let Some(s) = self.session.as_mut() else { return };
        let mut closed = None;
        while let Some(ev) = s.client.try_event() {
            if let Event::Closed { reason } = ev {
                closed = Some(reason);
                break;
            }
            s.reach.on_event(Instant::now(), &ev);
            on_event(&mut self.app, &mut s.link, ev);
        }
        if let Some(reason) = closed {
            let why = reason.map_or_else(|| "disconnected".into(), |(c, m)| format!("disconnected: {}", ended(c, &m)));
            return self.disconnect(why);
        }
        if s.reach.verdict(Instant::now()) == Verdict::Silent {
            s.reach.looked_at();
            let (tx, rx) = mpsc::channel();
            let server = s.reach.server();
            let _ = std::thread::Builder::new().name("probe".into()).spawn(move || {
                let _ = tx.send(probe(server, Duration::from_secs(2)));
            });
            s.probe = Some(rx);
        }
        if let Some(answer) = s.probe.as_ref().and_then(|rx| rx.try_recv().ok()) {
            s.probe = None;
            self.app.status = match answer {
                Probe::Tls => format!("the server at {} expects TLS on this port: quit and {USE_TLS}", s.link.server),
                Probe::Voice | Probe::Unknown => format!("no answer to the login from {} yet…", s.link.server),
            };
        }
    }

    fn event_loop(&mut self, terminal: &mut ratatui::DefaultTerminal) -> Result<()> {
        let (mut last_stats, mut last_rooms) = (Instant::now(), Instant::now());
        loop {
            self.client_events();
            if let Some(s) = &self.session
                && last_rooms.elapsed() >= ROOMS_EVERY
            {
                last_rooms = Instant::now();
                // Other rooms' member counts stay fresh (a refusal before login is of no interest).
                let _ = s.client.list_rooms();
            }
            if let Some(s) = &self.session
                && last_stats.elapsed() >= STATS_EVERY
            {
                last_stats = Instant::now();
                let stats = s.client.stats();
                // "whispering to you": members whose audio now comes to this session only.
                let whisperers: Vec<u32> = stats.speakers.iter().filter(|p| p.whispering).map(|p| p.id.0).collect();
                self.app.set_whispering_to_me(&whisperers);
                self.app.debug = debug_stats(&stats, &self.app);
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
                        let Some(s) = &self.session else { continue };
                        match (crate::client::apply(&s.client, &cmd), &cmd) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Space makes text: its release is reported only with "all keys as escape codes" (asking for event types
    /// alone left Space latched on in terminals that support the protocol).
    #[test]
    fn the_terminal_is_asked_for_every_keys_release() {
        let flags = keyboard_flags();
        assert!(flags.contains(KeyboardEnhancementFlags::REPORT_EVENT_TYPES));
        assert!(flags.contains(KeyboardEnhancementFlags::REPORT_ALL_KEYS_AS_ESCAPE_CODES));
    }
}
