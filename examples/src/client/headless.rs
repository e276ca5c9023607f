//! Headless `voice-client`: one line per event on stdout (`joined`, `member-joined`, `chat`, …; everything that
//! came from the network escaped), commands on stdin. It ends with an error, in words, when the server ends the
//! session (a wrong password, a shutdown, …) or cannot be reached for `--give-up-after` seconds.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use voice_client::{Client, Event};
use voice_proto::PublicId;

use super::probe::{Probe, probe};
use super::reach::{Reach, Verdict};
use crate::words::{USE_TLS, connect_failure, ended, escape};

/// What the loop does after an event.
#[derive(Debug)]
pub(super) enum Action {
    /// Print this line on stdout.
    Print(String),
    /// Join this room (the first of the list, when no `--room` was given).
    Join(String),
    /// Stop: fine, or with this error.
    End(Result<(), String>),
}

/// The headless client's state: member names (for `speaking` and `member-left` lines), whether a room was joined,
/// and the server's reachability.
#[derive(Debug)]
pub(super) struct Headless {
    names: HashMap<PublicId, String>,
    joined: bool,
    join_first_room: bool,
    pub(super) reach: Reach,
}

impl Headless {
    pub(super) fn new(reach: Reach, join_first_room: bool) -> Self {
        Self { names: HashMap::new(), joined: false, join_first_room, reach }
    }

    /// One event of the session at `now`: what to print and do.
    pub(super) fn on_event(&mut self, now: Instant, event: Event) -> Vec<Action> {
        self.reach.on_event(now, &event);
        let mut out = Vec::new();
        let mut print = |line: String| out.push(Action::Print(line));
        match event {
            Event::LoggedIn { public_id, server_name } => {
                print(format!("logged-in id={} server={}", public_id.0, escape(&server_name)));
            }
            Event::RoomList(rooms) => {
                let list: Vec<_> = rooms.iter().map(|r| format!("{}({})", escape(&r.name), r.members)).collect();
                print(format!("rooms {}", list.join(" ")));
                if self.join_first_room && !self.joined {
                    if let Some(first) = rooms.first() {
                        out.push(Action::Join(first.name.clone()));
                    }
                }
            }
            Event::Joined { room, members, .. } => {
                self.joined = true;
                for m in &members {
                    self.names.insert(m.id, escape(&m.name).into_owned());
                }
                let list: Vec<_> = members.iter().map(|m| escape(&m.name)).collect();
                print(format!("joined {} members={}", escape(&room), list.join(",")));
            }
            Event::MediaReady => print("media-ready".into()),
            Event::Left => print("left".into()),
            Event::MemberJoined(m) => {
                let name = escape(&m.name).into_owned();
                print(format!("member-joined {name}"));
                self.names.insert(m.id, name);
            }
            Event::MemberLeft(id) => {
                print(format!("member-left {}", self.names.remove(&id).unwrap_or_else(|| id.0.to_string())));
            }
            Event::MemberUpdated(m) => {
                print(format!("member-updated {} muted={} deafened={}", escape(&m.name), m.muted, m.deafened));
            }
            Event::Speaking { id, speaking } => {
                let name = self.names.get(&id).map_or_else(|| id.0.to_string(), Clone::clone);
                print(format!("speaking {name} {}", if speaking { "on" } else { "off" }));
            }
            Event::Chat { from_name, text, history, .. } => {
                let kind = if history { "chat-history" } else { "chat" };
                print(format!("{kind} {}: {}", escape(&from_name), escape(&text)));
            }
            Event::ServerError { code, message } => print(format!("error {} {}", code.0, escape(&message))),
            Event::RequestRefused(why) => print(format!("refused {}", escape(&why))),
            Event::ConnectionLost => print("connection-lost".into()),
            Event::ConnectFailed(why) => {
                print(format!("connect-failed {}", connect_failure(&why, self.reach.server(), self.reach.tls())));
            }
            Event::Resumed => print("resumed".into()),
            Event::Dump { dir: Some(dir) } => print(format!("dump-started {}", escape(&dir.display().to_string()))),
            Event::Dump { dir: None } => print("dump-stopped".into()),
            Event::Closed { reason } => match reason {
                None => {
                    print("closed".into());
                    out.push(Action::End(Ok(())));
                }
                Some((code, message)) => {
                    let words = ended(code, &message);
                    print(format!("closed {words}"));
                    out.push(Action::End(Err(words)));
                }
            },
            _ => {}
        }
        out
    }
}

/// Lines on stdin, read on their own thread (a closed stdin just ends the stream).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs the headless client until `limit` (if any), `/quit`, the end of the session, or giving up.
pub(super) fn run(client: &Client, limit: Option<Duration>, mut state: Headless) -> Result<()> {
    let start = Instant::now();
    let lines = stdin_lines();
    loop {
        let now = Instant::now();
        if limit.is_some_and(|l| now.saturating_duration_since(start) >= l) {
            return Ok(());
        }
        while let Ok(line) = lines.try_recv() {
            if !command(client, line.trim())? {
                return Ok(());
            }
        }
        match state.reach.verdict(now) {
            Verdict::Trying => {}
            Verdict::GiveUp(why) => return Err(anyhow!(why)),
            Verdict::Silent => {
                state.reach.looked_at();
                let server = state.reach.server();
                if probe(server, Duration::from_secs(2)) == Probe::Tls {
                    return Err(anyhow!("the server at {server} expects TLS on this port: {USE_TLS}"));
                }
            }
        }
        let Some(event) = client.next_event(Duration::from_millis(20)) else { continue };
        for action in state.on_event(Instant::now(), event) {
            match action {
                Action::Print(line) => println!("{line}"),
                Action::Join(room) => client.join(&room, None)?,
                Action::End(result) => return result.map_err(|e| anyhow!(e)),
            }
        }
    }
}

/// One stdin command; `false` to quit. Plain text is sent as chat.
fn command(client: &Client, line: &str) -> Result<bool> {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "" => {}
        "/quit" => return Ok(false),
        "/chat" => client.send_chat(rest)?,
        "/mute" => client.set_muted(true)?,
        "/unmute" => client.set_muted(false)?,
        "/deafen" => client.set_deafened(true)?,
        "/undeafen" => client.set_deafened(false)?,
        "/talk" => client.set_ptt(true)?,
        "/stop" => client.set_ptt(false)?,
        "/join" => client.join(rest, None)?,
        "/leave" => client.leave()?,
        _ if cmd.starts_with('/') => println!("error unknown command {}", escape(cmd)),
        _ => client.send_chat(line)?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use voice_proto::control::{ChannelConfig, ErrorCode, Member, RoomInfo};

    use std::net::SocketAddr;

    use super::*;

    fn server() -> SocketAddr {
        "127.0.0.1:7000".parse().unwrap()
    }

    fn state(t0: Instant) -> Headless {
        Headless::new(Reach::new(t0, server(), false, Duration::from_secs(20)), true)
    }

    fn printed(actions: &[Action]) -> Vec<&str> {
        actions.iter().filter_map(|a| if let Action::Print(l) = a { Some(l.as_str()) } else { None }).collect()
    }

    fn member(id: u32, name: &str) -> Member {
        Member { id: PublicId(id), name: name.into(), muted: false, deafened: false, speaking: false }
    }

    /// An ad-hoc room named `"evil\n\x1b[31mroom"` used to inject lines and colours into every headless client.
    #[test]
    fn everything_from_the_network_is_printed_escaped() {
        let t0 = Instant::now();
        let mut h = state(t0);
        let evil = "evil\n\x1b[31mroom";
        let mut lines = Vec::new();
        let events = vec![
            Event::LoggedIn { public_id: PublicId(1), server_name: format!("srv{evil}") },
            Event::RoomList(vec![RoomInfo {
                name: evil.into(),
                members: 1,
                max_users: 0,
                has_password: false,
                allow_voice: true,
            }]),
            Event::Joined { room: evil.into(), config: ChannelConfig::default(), members: vec![member(2, evil)] },
            Event::MemberJoined(member(3, "\x1b]0;title\x07")),
            Event::Speaking { id: PublicId(2), speaking: true },
            Event::Chat {
                from: PublicId(2),
                from_name: evil.into(),
                text: "hi\r\x1b[2K".into(),
                history: false,
                sent_at_ms: 0,
            },
            Event::ServerError { code: ErrorCode::ROOM_FULL, message: evil.into() },
            Event::ConnectFailed(evil.into()),
            Event::MemberLeft(PublicId(2)),
        ];
        for e in events {
            lines.extend(printed(&h.on_event(t0, e)).into_iter().map(String::from));
        }
        assert_eq!(lines.len(), 9, "{lines:?}");
        for l in &lines {
            assert!(!l.chars().any(char::is_control), "a control character reached the output: {l:?}");
        }
        assert!(
            lines.contains(&"joined evil\\n\\u{1b}[31mroom members=evil\\n\\u{1b}[31mroom".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"chat evil\\n\\u{1b}[31mroom: hi\\r\\u{1b}[2K".to_string()), "{lines:?}");
        assert!(lines.contains(&"speaking evil\\n\\u{1b}[31mroom on".to_string()), "{lines:?}");
    }

    #[test]
    fn a_refused_login_ends_with_words_and_an_error() {
        let t0 = Instant::now();
        let mut h = state(t0);
        let reason = Some((ErrorCode::AUTH_FAILED, "authentication failed".to_string()));
        let actions = h.on_event(t0, Event::Closed { reason });
        let Some(Action::End(Err(why))) = actions.last() else { panic!("ends with an error: {actions:?}") };
        assert!(why.starts_with("the server refused the login: wrong user name, password or token"), "{why}");
        assert!(!why.contains("ErrorCode") && !why.contains(" 3 "), "{why}");
        let mut quit = state(t0);
        assert!(matches!(quit.on_event(t0, Event::Closed { reason: None }).last(), Some(Action::End(Ok(())))));
    }
}
