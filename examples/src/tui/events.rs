//! What the voice client reports, written into the screen state: [`on_event`] for its events, [`debug_stats`] for
//! its statistics. Strings are kept as they came (a room name is joined by its name); the view escapes them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use voice_client::{Event, SessionStats};
use voice_proto::PublicId;
use voice_proto::control::Member;

use super::{App, DebugStats, MemberRow, RoomRow, Screen, SpeakerDebug};
use crate::words::{connect_failure, refused};

/// What the screen needs to know about the session besides its events.
#[derive(Clone, Debug)]
pub struct Link {
    /// The local user's public id, once logged in.
    pub me: Option<PublicId>,
    /// The server's control address (for messages about reaching it).
    pub server: SocketAddr,
    /// Whether the control connection uses TLS.
    pub tls: bool,
    /// A resume was announced and its room state not yet seen (the room's chat stays: a resume replays none).
    resuming: bool,
}

impl Link {
    /// A session with `server`, not logged in yet.
    #[must_use]
    pub fn new(server: SocketAddr, tls: bool) -> Self {
        Self { me: None, server, tls, resuming: false }
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
        whispering_to_me: false,
    }
}

/// Adds `delta` members to room `name`'s count in the list (which lists a room joined by name, e.g. an ad-hoc
/// one, from then on).
fn count(app: &mut App, name: &str, delta: i64) {
    let Some(r) = app.rooms.iter_mut().find(|r| r.name == name) else {
        if delta > 0 {
            app.rooms.push(RoomRow { name: name.to_string(), members: 0, password: false });
            count(app, name, delta);
        }
        return;
    };
    r.members = u32::try_from((i64::from(r.members) + delta).max(0)).unwrap_or(u32::MAX);
}

/// Applies one client event to the screen state.
pub fn on_event(app: &mut App, link: &mut Link, ev: Event) {
    let volumes: HashMap<u32, f32> = app.members.iter().map(|m| (m.id, m.volume)).collect();
    let vol = |id: PublicId| volumes.get(&id.0).copied().unwrap_or(1.0);
    match ev {
        Event::LoggedIn { public_id, server_name } => {
            link.me = Some(public_id);
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
            let same_room = app.room.as_deref() == Some(room.as_str());
            if !(link.resuming && same_room) {
                // A new room, or this one again: its history is replayed, so the chat starts afresh.
                app.chat.clear();
            }
            link.resuming = false;
            if let Some(previous) = app.room.take().filter(|p| *p != room) {
                count(app, &previous, -1);
            }
            let known = app.rooms.iter().find(|r| r.name == room).map_or(0, |r| i64::from(r.members));
            count(app, &room, i64::try_from(members.len()).unwrap_or(i64::MAX) - known);
            app.members = members.iter().map(|m| row(m, link.me, vol(m.id))).collect();
            app.member_cursor = app.member_cursor.min(app.members.len().saturating_sub(1));
            app.status = format!("joined #{room}");
            app.room = Some(room);
            app.screen = super::Screen::Room;
        }
        Event::MediaReady => app.status = "audio connected".into(),
        Event::Left => {
            if let Some(room) = app.room.take() {
                count(app, &room, -1);
            }
            app.members.clear();
            app.chat.clear();
            app.screen = Screen::Rooms;
            app.status = "left the room".into();
        }
        Event::MemberJoined(m) => {
            app.push_line(format!("→ {} joined", m.name));
            app.members.push(row(&m, link.me, 1.0));
            if let Some(room) = app.room.clone() {
                count(app, &room, 1);
            }
        }
        Event::MemberLeft(id) => {
            if let Some(i) = app.members.iter().position(|m| m.id == id.0) {
                let gone = app.members.remove(i);
                app.push_line(format!("← {} left", gone.name));
                if let Some(room) = app.room.clone() {
                    count(app, &room, -1);
                }
            }
            app.member_cursor = app.member_cursor.min(app.members.len().saturating_sub(1));
        }
        Event::MemberUpdated(m) => {
            if let Some(r) = app.members.iter_mut().find(|r| r.id == m.id.0) {
                *r = MemberRow { whispering_to_me: r.whispering_to_me, ..row(&m, link.me, r.volume) };
            }
        }
        Event::Speaking { id, speaking } => {
            if let Some(r) = app.members.iter_mut().find(|r| r.id == id.0) {
                r.speaking = speaking;
                r.whispering_to_me &= speaking;
            }
        }
        Event::Chat { from_name, text, history, .. } => {
            app.push_line(format!("{}{from_name}: {text}", if history { "(earlier) " } else { "" }));
        }
        Event::ServerError { code, message } => app.status = format!("server: {}", refused(code, &message)),
        Event::RequestRefused(why) => app.status = format!("refused: {why}"),
        Event::ConnectionLost => app.status = "connection lost: reconnecting…".into(),
        Event::ConnectFailed(why) => {
            app.status = format!("cannot connect: {}; retrying…", connect_failure(&why, link.server, link.tls));
        }
        Event::Dump { dir: Some(dir) } => app.status = format!("dumping audio into {}", dir.display()),
        Event::Dump { dir: None } => app.status = "audio dump stopped: its WAV files are complete".into(),
        Event::Resumed => {
            link.resuming = true;
            app.status = "reconnected".into();
        }
        _ => {}
    }
}

/// The debug overlay's figures from the session's statistics (speakers named as in the member list).
#[must_use]
pub fn debug_stats(s: &SessionStats, app: &App) -> DebugStats {
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

#[cfg(test)]
mod tests {
    use voice_proto::control::{ChannelConfig, ErrorCode, RoomInfo};

    use super::super::view::screen_text_at;
    use super::*;

    fn link() -> Link {
        let mut l = Link::new("127.0.0.1:7000".parse().unwrap(), false);
        l.me = Some(PublicId(1));
        l
    }

    fn member(id: u32, name: &str) -> Member {
        Member { id: PublicId(id), name: name.into(), muted: false, deafened: false, speaking: false }
    }

    fn room(name: &str, members: u16) -> RoomInfo {
        RoomInfo { name: name.into(), members, max_users: 0, has_password: false, allow_voice: true }
    }

    fn joined(room: &str, members: &[Member]) -> Event {
        Event::Joined { room: room.into(), config: ChannelConfig::default(), members: members.to_vec() }
    }

    fn chat(text: &str, history: bool) -> Event {
        Event::Chat { from: PublicId(2), from_name: "bob".into(), text: text.into(), history, sent_at_ms: 0 }
    }

    fn counts(app: &App) -> Vec<(String, u32)> {
        app.rooms.iter().map(|r| (r.name.clone(), r.members)).collect()
    }

    /// Names, rooms, chat and reasons with control characters reach the screen escaped, never as commands.
    #[test]
    fn control_characters_from_the_network_never_reach_the_terminal() {
        let evil = "evil\n\x1b[31mroom";
        let (mut app, mut l) = (App::new("t", true), link());
        on_event(&mut app, &mut l, Event::RoomList(vec![room(evil, 1)]));
        let text = screen_text_at(&app, 120, 30);
        assert!(text.contains("evil\\n\\u{1b}[31mroom  (1 in room)"), "{text}");
        assert_eq!(app.rooms[0].name, evil, "joined by its real name");
        on_event(&mut app, &mut l, joined(evil, &[member(1, "me"), member(2, evil)]));
        on_event(&mut app, &mut l, Event::MemberJoined(member(3, "\x1b]0;owned\x07")));
        on_event(&mut app, &mut l, chat("hi\r\x1b[2Kfake line", false));
        on_event(&mut app, &mut l, Event::ServerError { code: ErrorCode(99), message: evil.into() });
        let text = screen_text_at(&app, 120, 30);
        for want in [
            "#evil\\n\\u{1b}[31mroom",
            "○ evil\\n\\u{1b}[31mroom",
            "bob: hi\\r\\u{1b}[2Kfake line",
            "\\u{1b}]0;owned\\u{7}",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "a control character reached the screen:\n{text}");
    }

    /// "lobby (0 in room)" with two inside: the counts follow what this client sees of its own room.
    #[test]
    fn room_counts_follow_joins_and_leaves() {
        let (mut app, mut l) = (App::new("t", true), link());
        on_event(&mut app, &mut l, Event::RoomList(vec![room("lobby", 0), room("games", 3)]));
        on_event(&mut app, &mut l, joined("lobby", &[member(1, "me"), member(2, "bob")]));
        assert_eq!(counts(&app), [("lobby".into(), 2), ("games".into(), 3)]);
        on_event(&mut app, &mut l, Event::MemberJoined(member(3, "carol")));
        on_event(&mut app, &mut l, Event::MemberLeft(PublicId(2)));
        assert_eq!(counts(&app)[0], ("lobby".into(), 2));
        // Straight to another room: the one left loses this member, the new one has what its state says.
        on_event(
            &mut app,
            &mut l,
            joined("games", &[member(1, "me"), member(4, "dan"), member(5, "eve"), member(6, "fay")]),
        );
        assert_eq!(counts(&app), [("lobby".into(), 1), ("games".into(), 4)]);
        on_event(&mut app, &mut l, Event::Left);
        assert_eq!(counts(&app), [("lobby".into(), 1), ("games".into(), 3)]);
        // An ad-hoc room joined by name appears in the list.
        on_event(&mut app, &mut l, joined("new", &[member(1, "me")]));
        assert_eq!(counts(&app)[2], ("new".into(), 1));
    }

    /// The previous room's chat went with it; a rejoin replays the history once; a resume keeps the chat.
    #[test]
    fn chat_belongs_to_the_room() {
        let (mut app, mut l) = (App::new("t", true), link());
        on_event(&mut app, &mut l, joined("lobby", &[member(1, "me")]));
        on_event(&mut app, &mut l, chat("in the lobby", false));
        on_event(&mut app, &mut l, joined("games", &[member(1, "me")]));
        assert!(app.chat.is_empty(), "the lobby's chat is not the games room's: {:?}", app.chat);
        on_event(&mut app, &mut l, chat("in games", false));
        on_event(&mut app, &mut l, Event::Left);
        on_event(&mut app, &mut l, joined("games", &[member(1, "me")]));
        on_event(&mut app, &mut l, chat("in games", true));
        assert_eq!(app.chat.iter().collect::<Vec<_>>(), ["(earlier) bob: in games"], "once, not twice");
        on_event(&mut app, &mut l, chat("live", false));
        on_event(&mut app, &mut l, Event::ConnectionLost);
        on_event(&mut app, &mut l, Event::Resumed);
        on_event(&mut app, &mut l, joined("games", &[member(1, "me")]));
        assert_eq!(app.chat.len(), 2, "a resume replays no history: the chat stays");
    }
}
