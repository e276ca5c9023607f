//! The relay's control plane and session lifecycle under a deterministic simulated network (see `harness/mod.rs`
//! for the invariants every test checks): room state, resume, expiry, key rotation, chat history, ad-hoc rooms,
//! errors in the wrong state, malformed frames, shutdown, limits, configuration.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]

mod harness;

/// Shards of the simulated relay (see `harness::Sim::with_config`).
#[allow(dead_code, reason = "read by the harness when this file is the test crate's root")]
pub(crate) const SHARDS: usize = 1;

use std::time::Duration;

use harness::{NAMES, Sim, default_config};
use voice_proto::control::{ClientMessage, ErrorCode, SecretBytes, ServerMessage};
use voice_proto::{PublicId, WhisperTarget};
use voice_relay::{ConnId, DropReason, Relay, RelayConfig};

#[test]
fn room_state_lists_members_and_others_get_member_joined() {
    let mut sim = Sim::room_of(2, "lobby");
    let i = sim.add_client();
    sim.login(i);
    sim.join(i, "lobby");
    let carol = sim.clients[i].id();
    let state = sim.clients[i].inbox.iter().find_map(|m| match m {
        ServerMessage::RoomState { room, members, .. } => Some((room.clone(), members.len())),
        _ => None,
    });
    assert_eq!(state, Some(("lobby".to_string(), 3)));
    assert!(matches!(sim.clients[i].inbox.last(), Some(ServerMessage::MediaKey { .. })));
    for c in &sim.clients[..2] {
        assert!(c.inbox.iter().any(|m| matches!(m, ServerMessage::MemberJoined { member } if member.id == carol)));
    }
}

#[test]
fn resume_after_control_disconnect_keeps_room_and_binding() {
    let mut sim = Sim::room_of(2, "lobby");
    let (alice, bob) = (sim.clients[0].id(), sim.clients[1].id());
    sim.disconnect(1);
    sim.advance(Duration::from_secs(10));
    // Audio keeps flowing while the control connection is down.
    sim.audio(0, 0, b"still here", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
    // A wrong secret is refused.
    sim.reconnect(1, 77);
    let token = sim.clients[1].token.unwrap();
    sim.control(1, ClientMessage::Resume { token, secret: SecretBytes([0; 32]) });
    assert_eq!(sim.clients[1].last_error(), Some(ErrorCode::RESUME_FAILED));
    let secret = SecretBytes(*sim.clients[1].secret.as_ref().unwrap().as_bytes());
    sim.control(1, ClientMessage::Resume { token, secret });
    let inbox = sim.clients[1].take_inbox();
    assert!(inbox.contains(&ServerMessage::ResumeOk { public_id: bob }));
    assert!(inbox.iter().any(|m| matches!(m, ServerMessage::RoomState { room, .. } if room == "lobby")));
    assert!(inbox.iter().any(|m| matches!(m, ServerMessage::MediaKey { .. })));
    sim.audio(1, 0, b"back", false);
    assert_eq!(sim.clients[0].heard_from(bob), 1);
    // Well past the grace period: the session lives on, because the control connection is back.
    sim.advance(Duration::from_secs(120));
    assert_eq!(sim.relay.session_count(), 2);
}

#[test]
fn resume_takes_over_a_half_dead_connection() {
    let mut sim = Sim::room_of(1, "lobby");
    let old = sim.clients[0].conn;
    let token = sim.clients[0].token.unwrap();
    let secret = SecretBytes(*sim.clients[0].secret.as_ref().unwrap().as_bytes());
    sim.relay.connection_opened(sim.now, ConnId(50));
    sim.relay.handle_control(sim.now, ConnId(50), ClientMessage::Resume { token, secret });
    let mut events = Vec::new();
    while let Some(e) = sim.relay.poll_event() {
        events.push(e);
    }
    assert!(events.iter().any(|e| matches!(e, voice_relay::Event::Send { conn, msg: ServerMessage::Goodbye { code: ErrorCode::REPLACED, .. } } if *conn == old)));
    assert!(events.contains(&voice_relay::Event::Close { conn: old }));
    assert!(events.contains(&voice_relay::Event::Send {
        conn: ConnId(50),
        msg: ServerMessage::ResumeOk { public_id: sim.clients[0].id() }
    }));
    // The driver later reports the old connection closed: the session, now on connection 50, is not detached.
    sim.relay.connection_closed(sim.now, old);
    sim.clients[0].conn = ConnId(50);
    sim.clients[0].closed = false;
    sim.advance(Duration::from_secs(120));
    assert_eq!(sim.relay.session_count(), 1);
}

#[test]
fn sessions_expire_binding_first_then_session_after_grace() {
    let mut sim = Sim::room_of(2, "lobby");
    let bob = sim.clients[1].id();
    // Bob's control connection drops and his client goes silent.
    sim.disconnect(1);
    // Alice keeps her binding alive with keepalives.
    for _ in 0..7 {
        sim.advance(Duration::from_secs(5));
        let a = sim.clients[0].addr;
        sim.datagram(a, &[]);
    }
    assert_eq!(sim.relay.counters().bindings_expired, 1, "bob's idle binding expired");
    assert_eq!(sim.relay.counters().bound_sessions, 1);
    assert_eq!(sim.relay.session_count(), 2, "bob still inside the 60 s grace");
    for _ in 0..6 {
        sim.advance(Duration::from_secs(5));
        let a = sim.clients[0].addr;
        sim.datagram(a, &[]);
    }
    assert_eq!(sim.relay.session_count(), 1, "bob's session ended");
    assert!(sim.clients[0].inbox.contains(&ServerMessage::MemberLeft { id: bob }));
    assert!(!sim.clients[0].closed, "alice pings, so her connection stays");
    // Bob's token is dead: resume fails.
    sim.reconnect(1, 99);
    let token = sim.clients[1].token.unwrap();
    let secret = SecretBytes(*sim.clients[1].secret.as_ref().unwrap().as_bytes());
    sim.control(1, ClientMessage::Resume { token, secret });
    assert_eq!(sim.clients[1].last_error(), Some(ErrorCode::RESUME_FAILED));
    assert_eq!(sim.relay.counters().dropped(DropReason::StrayKeepalive), 0);
}

#[test]
fn key_rotates_when_a_member_leaves_and_the_room_keeps_talking() {
    let mut sim = Sim::room_of(3, "lobby");
    let (alice, carol) = (sim.clients[0].id(), sim.clients[2].id());
    let old = *sim.clients[0].keys.last().unwrap();
    sim.control(2, ClientMessage::Leave);
    assert!(sim.clients[2].inbox.contains(&ServerMessage::RoomLeft));
    for i in [0, 1] {
        let c = &sim.clients[i];
        assert!(c.inbox.contains(&ServerMessage::MemberLeft { id: carol }));
        let new = *c.keys.last().unwrap();
        assert_ne!(new.0, old.0, "new key id");
        assert_ne!(new.1, old.1, "new key bytes");
    }
    assert_eq!(sim.clients[2].keys.last().copied(), Some(old), "the leaver does not get the new key");
    sim.audio(0, 0, b"after rotation", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
    assert_eq!(sim.clients[1].undecryptable, 0);
    assert_eq!(sim.clients[2].heard_from(alice), 0);
    assert_eq!(sim.relay.counters().key_rotations, 1);
    // Leaving twice: NOT_IN_ROOM.
    sim.control(2, ClientMessage::Leave);
    assert_eq!(sim.clients[2].last_error(), Some(ErrorCode::NOT_IN_ROOM));
}

#[test]
fn chat_is_broadcast_and_the_last_50_are_replayed_on_join() {
    let mut sim = Sim::room_of(2, "lobby");
    for n in 0..60 {
        sim.control(0, ClientMessage::Chat { text: format!("msg {n}") });
        sim.advance(Duration::from_millis(100));
    }
    let live = |c: &harness::Client| {
        c.inbox.iter().filter(|m| matches!(m, ServerMessage::Chat { history: false, .. })).count()
    };
    assert_eq!(live(&sim.clients[0]), 60);
    assert_eq!(live(&sim.clients[1]), 60);
    sim.advance(Duration::from_secs(3));
    let d = sim.add_client();
    sim.login(d);
    sim.join(d, "lobby");
    let history: Vec<(String, u64)> = sim.clients[d]
        .inbox
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Chat { history: true, text, sent_at_ms, from_name, .. } => {
                assert_eq!(from_name, "alice");
                Some((text.clone(), *sent_at_ms))
            }
            _ => None,
        })
        .collect();
    assert_eq!(history.len(), 50);
    assert_eq!(history[0].0, "msg 10");
    assert_eq!(history[49].0, "msg 59");
    // Stamped from the Unix time given at construction plus virtual time: msg 10 was sent 1 s after the start.
    assert_eq!(history[0].1, harness::UNIX_START_MS + 1_000);
}

#[test]
fn adhoc_room_is_created_on_join_and_removed_five_minutes_after_it_empties() {
    let mut sim = Sim::room_of(1, "lobby");
    let rooms = sim.relay.room_count();
    sim.join(0, "adhoc-x");
    assert!(sim.relay.has_room("adhoc-x"));
    assert_eq!(sim.relay.room_count(), rooms + 1);
    sim.control(0, ClientMessage::Leave);
    sim.advance(Duration::from_secs(240));
    assert!(sim.relay.has_room("adhoc-x"), "still lingering at 4 min");
    // Rejoining resets the timer.
    sim.join(0, "adhoc-x");
    sim.join(0, "lobby");
    sim.advance(Duration::from_secs(299));
    assert!(sim.relay.has_room("adhoc-x"));
    sim.advance(Duration::from_secs(2));
    assert!(!sim.relay.has_room("adhoc-x"));
    assert_eq!(sim.relay.room_count(), rooms);
    assert!(sim.relay.has_room("lobby"), "configured rooms stay");
}

#[test]
fn join_checks_and_errors_in_the_wrong_state() {
    let mut sim = Sim::new();
    let a = sim.add_client();
    sim.join(a, "lobby");
    assert_eq!(sim.clients[a].last_error(), Some(ErrorCode::NOT_LOGGED_IN));
    sim.control(
        a,
        ClientMessage::Login {
            user: "alice".into(),
            credential: voice_proto::control::Credential::Password("nope".into()),
            client: "t".into(),
        },
    );
    assert_eq!(sim.clients[a].last_error(), Some(ErrorCode::AUTH_FAILED));
    sim.control(a, ClientMessage::Ping { nonce: 5 });
    assert_eq!(sim.clients[a].inbox.last(), Some(&ServerMessage::Pong { nonce: 5 }));
    sim.login(a);
    sim.login(a);
    assert_eq!(sim.clients[a].last_error(), Some(ErrorCode::ALREADY_LOGGED_IN));
    sim.control(a, ClientMessage::Chat { text: "hi".into() });
    assert_eq!(sim.clients[a].last_error(), Some(ErrorCode::NOT_IN_ROOM));
    sim.control(a, ClientMessage::Join { room: "staff".into(), password: None });
    assert_eq!(sim.clients[a].last_error(), Some(ErrorCode::WRONG_ROOM_PASSWORD));
    sim.control(a, ClientMessage::Join { room: "staff".into(), password: Some("s3cret".into()) });
    assert_eq!(sim.clients[a].errors().len(), 5);
    // Room list shows all four configured rooms with their flags.
    sim.control(a, ClientMessage::ListRooms);
    let Some(ServerMessage::RoomList { rooms }) = sim.clients[a].inbox.last().cloned() else { panic!() };
    assert_eq!(rooms.len(), 4);
    assert!(rooms.iter().any(|r| r.name == "staff" && r.has_password && r.members == 1));
    assert!(rooms.iter().any(|r| r.name == "text" && !r.allow_voice));
    // Room full.
    for _ in 0..2 {
        let i = sim.add_client();
        sim.login(i);
        sim.join(i, "duo");
    }
    let b = sim.add_client();
    sim.login(b);
    sim.join(b, "duo");
    assert_eq!(sim.clients[b].last_error(), Some(ErrorCode::ROOM_FULL));
    // Chat-only room: join works, audio is dropped, whisper setup refused.
    sim.join(b, "text");
    assert_eq!(sim.clients[b].errors().len(), 1);
    sim.hello(b);
    sim.audio(b, 0, b"no voice here", false);
    assert_eq!(sim.relay.counters().dropped(DropReason::VoiceNotAllowed), 1);
    sim.control(b, ClientMessage::SetWhisper { target: WhisperTarget(1), members: vec![PublicId(1)] });
    assert_eq!(sim.clients[b].last_error(), Some(ErrorCode::VOICE_NOT_ALLOWED));
    // Not in a room: audio dropped.
    sim.control(b, ClientMessage::Leave);
    sim.audio(b, 0, b"x", false);
    assert_eq!(sim.relay.counters().dropped(DropReason::NotInRoom), 1);
}

#[test]
fn switching_rooms_leaves_the_old_one_with_rotation() {
    let mut sim = Sim::room_of(3, "lobby");
    let carol = sim.clients[2].id();
    let d = sim.add_client();
    sim.ready(d, "other");
    sim.clients[d].inbox.clear();
    let old_key = *sim.clients[0].keys.last().unwrap();
    sim.join(2, "other");
    assert!(sim.clients[0].inbox.contains(&ServerMessage::MemberLeft { id: carol }));
    assert_ne!(*sim.clients[0].keys.last().unwrap(), old_key, "lobby rotated its key");
    assert!(!sim.clients[2].inbox.contains(&ServerMessage::MemberLeft { id: carol }));
    assert!(
        sim.clients[d].inbox.iter().any(|m| matches!(m, ServerMessage::MemberJoined { member } if member.id == carol))
    );
    // Carol now talks to dave only.
    sim.audio(2, 0, b"hi dave", false);
    assert_eq!(sim.clients[d].heard_from(carol), 1);
    assert_eq!(sim.clients[0].heard_from(carol), 0);
    // Joining the room one is in resends the state and changes nothing.
    let rotations = sim.relay.counters().key_rotations;
    sim.join(2, "other");
    assert_eq!(sim.relay.counters().key_rotations, rotations);
    assert!(matches!(sim.clients[2].inbox.last(), Some(ServerMessage::MediaKey { .. })));
}

#[test]
fn session_capacity_is_enforced() {
    let mut sim = Sim::with_config(RelayConfig { max_sessions: 2, ..default_config() });
    for _ in 0..2 {
        let i = sim.add_client();
        sim.login(i);
    }
    let i = sim.add_client();
    let user = NAMES[i].to_string();
    sim.control(
        i,
        ClientMessage::Login {
            user: user.clone(),
            credential: voice_proto::control::Credential::Password(format!("pw-{user}")),
            client: "t".into(),
        },
    );
    assert_eq!(sim.clients[i].last_error(), Some(ErrorCode::RATE_LIMITED));
}

#[test]
fn adhoc_rooms_can_be_disallowed() {
    let mut sim = Sim::with_config(RelayConfig { allow_adhoc_rooms: false, ..default_config() });
    let a = sim.add_client();
    sim.login(a);
    sim.join(a, "nowhere");
    assert_eq!(sim.clients[a].last_error(), Some(ErrorCode::ROOM_NOT_FOUND));
}

#[test]
fn malformed_frame_closes_only_that_connection() {
    let mut sim = Sim::room_of(2, "lobby");
    let alice = sim.clients[0].id();
    // A Join with an invalid bool.
    let mut bad = bytes::BytesMut::from(&[0u8, 0, 0, 6, 1, 0, 0, 4, 0, 0][..]);
    bad[9] = 0;
    let mut garbage = bytes::BytesMut::from(&[0, 0, 0, 7, 1, 0, 0, 4, 0, 0, 7][..]);
    let conn = sim.clients[1].conn;
    sim.relay.handle_control_bytes(sim.now, conn, &mut garbage);
    sim.pump();
    assert!(garbage.is_empty());
    assert_eq!(sim.clients[1].last_error(), Some(ErrorCode::BAD_REQUEST));
    assert!(sim.clients[1].closed);
    assert!(!sim.clients[0].closed);
    // Bob's session survives (resumable) and audio still reaches him.
    sim.audio(0, 0, b"ok", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
    // Wrong frame version: Goodbye UNSUPPORTED_VERSION.
    sim.reconnect(1, 40);
    let mut v2 = bytes::BytesMut::from(&[0, 0, 0, 4, 2, 0, 0, 3][..]);
    sim.relay.handle_control_bytes(sim.now, ConnId(40), &mut v2);
    sim.pump();
    assert!(matches!(
        sim.clients[1].inbox.last(),
        Some(ServerMessage::Goodbye { code: ErrorCode::UNSUPPORTED_VERSION, .. })
    ));
    // Unknown kinds are skipped; partial frames wait for more bytes.
    sim.reconnect(1, 41);
    let mut buf = bytes::BytesMut::from(&[0, 0, 0, 4, 1, 0, 0x7f, 0x7f, 0, 0, 0, 12, 1, 0, 0, 0x40, 0, 0][..]);
    sim.relay.handle_control_bytes(sim.now, ConnId(41), &mut buf);
    sim.pump();
    assert_eq!(buf.len(), 10, "incomplete ping kept");
    buf.extend_from_slice(&[0, 0, 0, 0, 0, 9]);
    sim.relay.handle_control_bytes(sim.now, ConnId(41), &mut buf);
    sim.pump();
    assert_eq!(sim.clients[1].inbox.last(), Some(&ServerMessage::Pong { nonce: 9 }));
    let _ = bad;
}

#[test]
fn shutdown_says_goodbye_to_every_connection() {
    let mut sim = Sim::room_of(3, "lobby");
    sim.relay.shutdown(sim.now);
    sim.pump();
    for c in &sim.clients {
        assert!(matches!(c.inbox.last(), Some(ServerMessage::Goodbye { code: ErrorCode::SHUTTING_DOWN, .. })));
        assert!(c.closed);
    }
    let d = sim.add_client();
    let user = NAMES[d].to_string();
    sim.control(
        d,
        ClientMessage::Login {
            user: user.clone(),
            credential: voice_proto::control::Credential::Password(format!("pw-{user}")),
            client: "t".into(),
        },
    );
    assert!(matches!(sim.clients[d].inbox.last(), Some(ServerMessage::Goodbye { code: ErrorCode::SHUTTING_DOWN, .. })));
}

#[test]
fn control_flood_is_rate_limited_per_connection() {
    let mut sim = Sim::room_of(2, "lobby");
    for _ in 0..100 {
        sim.control(0, ClientMessage::Chat { text: "spam".into() });
    }
    let limited = sim.clients[0].errors().iter().filter(|&&c| c == ErrorCode::RATE_LIMITED).count();
    let delivered =
        sim.clients[1].inbox.iter().filter(|m| matches!(m, ServerMessage::Chat { history: false, .. })).count();
    // Burst 40, of which login and join used 2.
    assert_eq!(delivered, 38);
    assert_eq!(limited, 62);
    sim.clients[1].inbox.clear();
    sim.advance(Duration::from_secs(1));
    sim.control(0, ClientMessage::Chat { text: "later".into() });
    assert!(sim.clients[1].inbox.iter().any(|m| matches!(m, ServerMessage::Chat { text, .. } if text == "later")));
}

#[test]
fn chat_history_is_bounded_in_bytes_too() {
    let mut sim = Sim::with_config(RelayConfig { chat_history_bytes: 10_000, ..default_config() });
    for _ in 0..2 {
        let i = sim.add_client();
        sim.ready(i, "lobby");
    }
    for n in 0..5u8 {
        sim.control(0, ClientMessage::Chat { text: char::from(b'a' + n).to_string().repeat(4000) });
    }
    let d = sim.add_client();
    sim.login(d);
    sim.join(d, "lobby");
    let texts: Vec<char> = sim.clients[d]
        .inbox
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Chat { history: true, text, .. } => text.chars().next(),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!['d', 'e'], "only the newest 8000 bytes fit in 10 000");
}

#[test]
fn silent_control_connection_is_closed_after_30_s() {
    let mut sim = Sim::room_of(1, "lobby");
    sim.auto_ping = false;
    sim.advance(Duration::from_secs(29));
    assert!(!sim.clients[0].closed);
    sim.advance(Duration::from_secs(2));
    assert!(sim.clients[0].closed);
    assert_eq!(sim.relay.session_count(), 1, "the session waits for a resume");
}

#[test]
fn per_session_state_is_compact() {
    let size = Relay::session_record_size();
    println!("size_of::<Session>() = {size} bytes");
    assert!(size <= 4096, "session record is {size} bytes");
}

#[test]
fn invalid_configurations_are_refused() {
    let bad = [
        RelayConfig { rooms: vec![voice_relay::RoomConfig::new("")], ..RelayConfig::default() },
        RelayConfig {
            rooms: vec![voice_relay::RoomConfig::new("a"), voice_relay::RoomConfig::new("a")],
            ..RelayConfig::default()
        },
        RelayConfig { packets_per_s: 0, ..RelayConfig::default() },
        RelayConfig { resume_grace: Duration::from_secs(100_000), ..RelayConfig::default() },
        RelayConfig { server_name: "x".repeat(65), ..RelayConfig::default() },
    ];
    for cfg in bad {
        let r = Relay::new(cfg, Box::new(voice_relay::SeededRng::new(1)), std::time::Instant::now(), 0);
        assert!(r.is_err());
    }
}

/// PROTOCOL.md §5.3: SetWhisper with target 0 is well-formed on the wire and refused with `INVALID_WHISPER`; the
/// connection stays open.
#[test]
fn set_whisper_target_zero_on_the_wire_is_refused_and_keeps_the_connection() {
    let mut sim = Sim::room_of(1, "lobby");
    let mut frame = bytes::BytesMut::from(&[0u8, 0, 0, 8, 1, 0, 0, 8, 0, 0, 0, 0][..]);
    let conn = sim.clients[0].conn;
    sim.relay.handle_control_bytes(sim.now, conn, &mut frame);
    sim.pump();
    assert_eq!(sim.clients[0].last_error(), Some(ErrorCode::INVALID_WHISPER));
    assert!(!sim.clients[0].closed);
}

/// PROTOCOL.md §5.3: a second Login of the same user is a second, independent session (another device); the first
/// is not replaced, not told, and both are heard in the room.
#[test]
fn a_second_login_of_the_same_user_is_a_second_session() {
    let mut sim = Sim::room_of(2, "lobby");
    let first = sim.clients[0].id();
    let again = sim.add_client();
    sim.clients[again].name = sim.clients[0].name.clone();
    sim.ready(again, "lobby");
    let second = sim.clients[again].id();
    assert_ne!(first, second, "its own public id");
    assert_eq!(sim.relay.session_count(), 3);
    assert!(
        !sim.clients[0].inbox.iter().any(|m| matches!(m, ServerMessage::Goodbye { .. })),
        "the first session is not replaced: {:?}",
        sim.clients[0].inbox
    );
    assert!(
        sim.clients[0].inbox.iter().any(|m| matches!(m, ServerMessage::MemberJoined { member } if member.id == second))
    );
    sim.audio(0, 0, b"from the desk", false);
    sim.audio(again, 0, b"from the phone", false);
    assert_eq!(sim.clients[1].heard_from(first), 1);
    assert_eq!(sim.clients[1].heard_from(second), 1);
}

/// PROTOCOL.md §5.3: moving to another room sends the mover no RoomLeft — the new room's RoomState says where it
/// is — and Chat comes back to its sender too.
#[test]
fn moving_rooms_sends_no_room_left_and_chat_comes_back_to_its_sender() {
    let mut sim = Sim::room_of(2, "lobby");
    sim.clients[0].inbox.clear();
    sim.join(0, "other");
    let inbox = &sim.clients[0].inbox;
    assert!(!inbox.contains(&ServerMessage::RoomLeft), "{inbox:?}");
    assert!(matches!(inbox.first(), Some(ServerMessage::RoomState { room, .. }) if room == "other"), "{inbox:?}");
    sim.clients[0].inbox.clear();
    sim.control(0, ClientMessage::Chat { text: "anyone here?".into() });
    assert!(
        sim.clients[0]
            .inbox
            .iter()
            .any(|m| matches!(m, ServerMessage::Chat { text, history: false, .. } if text == "anyone here?")),
        "the sender gets its own chat: {:?}",
        sim.clients[0].inbox
    );
    assert!(
        !sim.clients[1].inbox.iter().any(|m| matches!(m, ServerMessage::Chat { text, .. } if text == "anyone here?"))
    );
}

/// PROTOCOL.md §5.3 Quit: the session ends at once — out of the room (MemberLeft, a new key for the others), its
/// token no longer valid — and the connection is closed; nothing waits for the resume grace.
#[test]
fn quit_ends_the_session_at_once() {
    let mut sim = Sim::room_of(3, "lobby");
    let (alice, old_key) = (sim.clients[0].id(), *sim.clients[1].keys.last().unwrap());
    let (token, secret) =
        (sim.clients[0].token.unwrap(), SecretBytes(*sim.clients[0].secret.as_ref().unwrap().as_bytes()));
    let sessions = sim.relay.session_count();
    sim.control(0, ClientMessage::Quit);
    assert_eq!(sim.relay.session_count(), sessions - 1, "ended without waiting for the grace");
    assert!(sim.clients[0].closed, "the connection is closed");
    assert!(sim.clients[1].inbox.contains(&ServerMessage::MemberLeft { id: alice }));
    assert_ne!(*sim.clients[1].keys.last().unwrap(), old_key, "the room's key rotated");
    // The token is gone: a resume with it fails.
    sim.relay.connection_opened(sim.now, ConnId(60));
    sim.relay.handle_control(sim.now, ConnId(60), ClientMessage::Resume { token, secret });
    let mut refused = false;
    while let Some(e) = sim.relay.poll_event() {
        refused |= matches!(
            e,
            voice_relay::Event::Send {
                conn: ConnId(60),
                msg: ServerMessage::Error { code: ErrorCode::RESUME_FAILED, .. }
            }
        );
    }
    assert!(refused, "the token died with the session");
    // Before login, Quit just closes.
    let d = sim.add_client();
    sim.control(d, ClientMessage::Quit);
    assert!(sim.clients[d].closed);
}

/// PROTOCOL.md §6.4: a session whose control connection closed ends at the resume grace even while its address
/// stays bound and keeps sending keepalives — datagrams never keep a session without a control connection alive.
#[test]
fn a_bound_address_sending_keepalives_does_not_outlive_the_grace() {
    let mut sim = Sim::room_of(2, "lobby");
    let bob = sim.clients[1].id();
    sim.disconnect(1);
    for _ in 0..11 {
        sim.advance(Duration::from_secs(5));
        for i in 0..2 {
            let a = sim.clients[i].addr;
            sim.datagram(a, &[]);
        }
    }
    assert_eq!(sim.relay.counters().bindings_expired, 0, "bob's keepalives keep his binding");
    assert_eq!(sim.relay.session_count(), 2, "55 s: inside the grace");
    sim.advance(Duration::from_secs(6));
    assert_eq!(sim.relay.session_count(), 1, "61 s: bob's session ended, keepalives or not");
    assert!(sim.clients[0].inbox.contains(&ServerMessage::MemberLeft { id: bob }));
}
