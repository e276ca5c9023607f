//! Connections before login, on the simulated clock (`harness/mod.rs`): a login deadline that pings do not
//! extend, only whole frames as activity, and names and chat with control characters refused (`INVALID_NAME`,
//! the connection stays open).
#![allow(clippy::disallowed_methods, reason = "a test harness: the origin of the relay's time")]

mod harness;

/// Shards of the simulated relay (see `harness::Sim::with_config`).
#[allow(dead_code, reason = "read by the harness when this file is the test crate's root")]
pub(crate) const SHARDS: usize = 1;

use std::time::Duration;

use bytes::BytesMut;
use harness::Sim;
use voice_proto::control::{ClientMessage, Credential, ErrorCode, Message};

#[test]
fn pings_do_not_extend_the_login_deadline() {
    let mut sim = Sim::new();
    sim.auto_ping = false;
    let pinger = sim.add_client();
    let quiet_then_login = sim.add_client();
    // The pinger pings every second: well within the idle timeout (30 s), but it never logs in.
    for s in 0..9 {
        sim.control(pinger, ClientMessage::Ping { nonce: s });
        sim.advance(Duration::from_secs(1));
    }
    sim.login(quiet_then_login);
    assert!(!sim.clients[pinger].closed, "9 s: before the 10 s login deadline");
    sim.control(pinger, ClientMessage::Ping { nonce: 99 });
    sim.advance(Duration::from_secs(2));
    assert!(sim.clients[pinger].closed, "closed at the login deadline although it pinged");
    assert!(!sim.clients[quiet_then_login].closed, "a logged-in connection has no login deadline");
    assert_eq!(sim.relay.counters().login_timeouts, 1);
    // The logged-in connection lives on with pings, past its idle timeout.
    for _ in 0..4 {
        sim.control(quiet_then_login, ClientMessage::Ping { nonce: 1 });
        sim.advance(Duration::from_secs(20));
    }
    assert!(!sim.clients[quiet_then_login].closed);
}

#[test]
fn a_byte_at_a_time_is_not_activity() {
    let config = voice_relay::RelayConfig {
        control_idle_timeout: Duration::from_secs(30),
        login_timeout: Duration::from_secs(300),
        ..harness::default_config()
    };
    let mut sim = Sim::with_config(config);
    sim.auto_ping = false;
    let slow = sim.add_client();
    let i = sim.add_client();
    sim.login(i);
    // One byte of a Ping frame every 5 s: never a whole frame in 35 s.
    let mut frame = BytesMut::new();
    ClientMessage::Ping { nonce: 1 }.encode(&mut frame).expect("encodes");
    let conn = sim.clients[slow].conn;
    let mut buf = BytesMut::new();
    for b in frame.iter().take(7) {
        buf.extend_from_slice(&[*b]);
        sim.relay.handle_control_bytes(sim.now, conn, &mut buf);
        sim.pump();
        sim.advance(Duration::from_secs(5));
    }
    assert!(sim.clients[slow].closed, "idle: partial frames do not reset the idle timer");
    assert!(sim.clients[i].closed, "the logged-in client sent nothing in 35 s either");
}

#[test]
fn control_characters_in_names_and_chat_are_refused_and_the_connection_stays() {
    let mut sim = Sim::new();
    let i = sim.add_client();
    let credential = Credential::Password("pw-alice".into());
    sim.control(i, ClientMessage::Login { user: "ali\u{1b}[31mce".into(), credential, client: "t".into() });
    assert_eq!(sim.clients[i].last_error(), Some(ErrorCode::INVALID_NAME));
    assert!(!sim.clients[i].closed);
    sim.login(i);
    sim.join(i, "evil\n\u{1b}[31mroom");
    assert_eq!(sim.clients[i].last_error(), Some(ErrorCode::INVALID_NAME));
    sim.join(i, "c1\u{9b}31m");
    assert_eq!(sim.clients[i].last_error(), Some(ErrorCode::INVALID_NAME));
    assert_eq!(sim.relay.room_count(), 4, "no ad-hoc room was created");
    sim.join(i, "lobby");
    sim.clients[i].take_inbox();
    sim.control(i, ClientMessage::Chat { text: "red \u{1b}[31malert".into() });
    assert_eq!(sim.clients[i].last_error(), Some(ErrorCode::INVALID_NAME));
    sim.control(i, ClientMessage::Chat { text: "two\nlines\tand a tab".into() });
    assert!(
        sim.clients[i]
            .inbox
            .iter()
            .any(|m| matches!(m, voice_proto::control::ServerMessage::Chat { text, .. } if text.contains('\n'))),
        "line breaks and tabs are text: {:?}",
        sim.clients[i].inbox
    );
    assert!(!sim.clients[i].closed);
    assert_eq!(sim.relay.counters().control_chars_refused, 4);
}

#[test]
fn a_reload_changes_rooms_and_limits_and_no_session_ends() {
    let mut sim = Sim::room_of(2, "lobby");
    let (alice, bob) = (sim.clients[0].id(), sim.clients[1].id());
    let bad = voice_relay::RelayConfig { packets_per_s: 0, ..harness::default_config() };
    assert!(sim.relay.reconfigure(sim.now, bad).is_err(), "a bad configuration changes nothing");
    let config = voice_relay::RelayConfig {
        rooms: vec![voice_relay::RoomConfig::new("ops").with_password("x")],
        login_timeout: Duration::from_secs(3),
        ..harness::default_config()
    };
    sim.relay.reconfigure(sim.now, config).expect("a valid configuration");
    sim.pump();
    assert_eq!(sim.relay.session_count(), 2);
    assert!(sim.clients.iter().all(|c| !c.closed), "no connection closed");
    sim.audio(0, 0, b"still forwarding", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
    // The new room, with its password.
    sim.control(1, ClientMessage::Join { room: "ops".into(), password: None });
    assert_eq!(sim.clients[1].last_error(), Some(ErrorCode::WRONG_ROOM_PASSWORD));
    sim.control(1, ClientMessage::Join { room: "ops".into(), password: Some("x".into()) });
    sim.control(0, ClientMessage::Join { room: "ops".into(), password: Some("x".into()) });
    sim.audio(1, 0, b"in ops", false);
    assert_eq!(sim.clients[0].heard_from(bob), 1);
    // Rooms no longer configured linger as ad-hoc rooms once empty, then go; the new login timeout applies.
    let late = sim.add_client();
    sim.advance(Duration::from_secs(301));
    assert!(sim.relay.has_room("ops") && !sim.relay.has_room("lobby") && !sim.relay.has_room("staff"));
    assert!(sim.clients[late].closed, "the reloaded 3 s login timeout");
    assert_eq!(sim.relay.session_count(), 2);
}
