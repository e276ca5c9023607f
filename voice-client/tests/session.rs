//! The sans-IO session alone, against hand-written server messages: HELLO retransmission with backoff, resume
//! (and falling back to a fresh login when the server forgot the session), goodbye, and garbage input.
#![allow(clippy::disallowed_methods, reason = "the simulated clock needs an origin")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use voice_client::{ConnectionCommand, Event, Session, SessionConfig, State};
use voice_proto::control::{
    ChannelConfig, ClientMessage, Credential, ErrorCode, Member, Message, SecretBytes, ServerMessage, decode_frame,
};
use voice_proto::{Datagram, KeyId, PublicId, SessionSecret, SessionToken};

const SERVER: &str = "192.0.2.1:7000";
const RELAY: &str = "192.0.2.1:7001";

fn sent(s: &mut Session) -> Vec<ClientMessage> {
    let mut buf = BytesMut::new();
    while let Some(b) = s.poll_control_bytes() {
        buf.extend_from_slice(&b);
    }
    let mut out = Vec::new();
    while let Some(f) = decode_frame(&mut buf).unwrap() {
        out.extend(ClientMessage::decode(&f).unwrap());
    }
    out
}

fn deliver(s: &mut Session, now: Instant, msg: ServerMessage) {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf).unwrap();
    s.handle_control_bytes(now, &buf);
}

fn login_ok() -> ServerMessage {
    ServerMessage::LoginOk {
        token: SessionToken(7),
        public_id: PublicId(42),
        secret: SecretBytes([9; 32]),
        udp_port: 7001,
        resume_grace_s: 60,
        server_name: "test".into(),
    }
}

fn room_state() -> ServerMessage {
    let me = Member { id: PublicId(42), name: "alice".into(), muted: false, deafened: false, speaking: false };
    ServerMessage::RoomState { room: "lobby".into(), config: ChannelConfig::default(), members: vec![me] }
}

/// A session logged in and in `lobby` (HELLO sent, not acknowledged).
fn joined(now: Instant) -> Session {
    let cfg =
        SessionConfig::new(SERVER.parse().unwrap(), "alice", Credential::Password("pw".into())).with_room("lobby");
    let mut s = Session::new(cfg, now, 5);
    assert_eq!(s.poll_connection(), Some(ConnectionCommand::Connect));
    s.handle_connected(now);
    assert!(matches!(sent(&mut s)[..], [ClientMessage::Login { .. }]));
    deliver(&mut s, now, login_ok());
    assert_eq!(sent(&mut s), vec![ClientMessage::ListRooms]);
    deliver(&mut s, now, ServerMessage::RoomList { rooms: vec![] });
    assert_eq!(sent(&mut s), vec![ClientMessage::Join { room: "lobby".into(), password: None }]);
    deliver(&mut s, now, room_state());
    deliver(&mut s, now, ServerMessage::MediaKey { key_id: KeyId(1), key: SecretBytes([3; 32]) });
    s
}

fn hellos(s: &mut Session) -> Vec<u64> {
    let mut v = Vec::new();
    while let Some(t) = s.poll_transmit() {
        assert_eq!(t.destination, RELAY.parse::<SocketAddr>().unwrap());
        if let Ok(Datagram::Hello(h)) = Datagram::decode_from_client(&t.payload) {
            SessionSecret::new([9; 32]).verify_hello(&h).expect("valid MAC");
            v.push(h.counter);
        }
    }
    v
}

#[test]
fn hello_is_repeated_with_backoff_until_acknowledged() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    assert_eq!(s.state(), State::Binding);
    assert_eq!(hellos(&mut s), vec![1]);
    let mut at = Vec::new();
    let mut now = t0;
    while at.len() < 5 {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        let h = hellos(&mut s);
        if !h.is_empty() {
            at.push((now - t0, h));
        }
    }
    let times: Vec<u64> = at.iter().map(|(d, _)| d.as_millis() as u64).collect();
    assert_eq!(times, vec![500, 1500, 3500, 5500, 7500], "500 ms, doubling, capped at 2 s");
    assert_eq!(at.last().unwrap().1, vec![6], "a new counter each time");
    // The ack of the last one binds.
    let ack = SessionSecret::new([9; 32]).hello_ack(PublicId(42), 6);
    let mut b = Vec::new();
    Datagram::HelloAck(ack).encode(&mut b);
    s.handle_datagram(now, RELAY.parse().unwrap(), b[..].into());
    assert_eq!(s.state(), State::Streaming);
    // An ack from another address is dropped.
    s.handle_datagram(now, "198.51.100.1:7001".parse().unwrap(), b[..].into());
    assert_eq!(s.stats().datagrams_dropped, 1);
}

#[test]
fn resume_falls_back_to_login_and_rejoins_when_the_server_forgot() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    let _ = sent(&mut s);
    s.handle_disconnected(t0);
    assert_eq!(s.state(), State::Reconnecting);
    let t1 = s.poll_timeout().unwrap();
    assert!(t1 - t0 <= Duration::from_millis(250));
    s.handle_timeout(t1);
    assert_eq!(s.poll_connection(), Some(ConnectionCommand::Connect));
    s.handle_connected(t1);
    assert!(matches!(sent(&mut s)[..], [ClientMessage::Resume { token: SessionToken(7), .. }]));
    deliver(&mut s, t1, ServerMessage::Error { code: ErrorCode::RESUME_FAILED, message: "gone".into() });
    assert!(matches!(sent(&mut s)[..], [ClientMessage::Login { .. }]));
    deliver(&mut s, t1, login_ok());
    deliver(&mut s, t1, ServerMessage::RoomList { rooms: vec![] });
    let msgs = sent(&mut s);
    assert!(msgs.contains(&ClientMessage::Join { room: "lobby".into(), password: None }), "{msgs:?}");
}

#[test]
fn goodbye_ends_the_session_for_good() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    deliver(&mut s, t0, ServerMessage::Goodbye { code: ErrorCode::KICKED, message: "bye".into() });
    assert_eq!(s.state(), State::Closed);
    assert_eq!(s.poll_connection(), Some(ConnectionCommand::Close));
    let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(matches!(events.last(), Some(Event::Closed { reason: Some((ErrorCode::KICKED, _)) })));
    s.handle_disconnected(t0);
    assert_eq!(s.poll_timeout(), None, "no reconnect, no timers");
    assert_eq!(s.poll_connection(), None);
}

#[test]
fn garbage_never_panics_and_a_broken_frame_reconnects() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    let mut rng = voice_sim::Rng::new(99);
    let relay: SocketAddr = RELAY.parse().unwrap();
    for i in 0..20_000u32 {
        let len = (rng.next_u32() % 1300) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
        if len > 2 && i % 2 == 0 {
            b[0] = 1; // a valid version reaches the kind / length checks
            b[1] = (rng.next_u32() % 8) as u8;
        }
        s.handle_datagram(t0, relay, b[..].into());
    }
    assert_eq!(s.state(), State::Binding);
    // A frame with a bad version closes the control connection; the session reconnects and resumes.
    s.handle_control_bytes(t0, &[0, 0, 0, 4, 9, 0, 1, 1]);
    assert_eq!(s.poll_connection(), Some(ConnectionCommand::Close));
    assert_eq!(s.state(), State::Reconnecting);
    let t1 = s.poll_timeout().unwrap();
    s.handle_timeout(t1);
    assert_eq!(s.poll_connection(), Some(ConnectionCommand::Connect));
    // Random control bytes on fresh connections: never a panic; the session closes and reconnects or goes on.
    for _ in 0..2_000 {
        s.handle_connected(t1);
        let len = (rng.next_u32() % 64) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
        if len >= 8 {
            b[..6].copy_from_slice(&[0, 0, 0, (len - 4) as u8, 1, 0]); // a well-framed message of any kind
        }
        s.handle_control_bytes(t1, &b);
        while s.poll_connection().is_some() {}
        let _ = s.poll_control_bytes();
        while s.poll_event().is_some() {}
    }
}

/// Closing the session sends Quit (the server ends the session at once instead of keeping it for the resume grace)
/// before the connection is closed, and never reconnects.
#[test]
fn close_sends_quit_then_closes_for_good() {
    let t0 = Instant::now();
    let mut s = joined(t0);
    let _ = sent(&mut s);
    s.close();
    assert_eq!(sent(&mut s), vec![ClientMessage::Quit]);
    assert_eq!(s.poll_connection(), Some(ConnectionCommand::Close));
    assert_eq!(s.state(), State::Closed);
    assert!(
        s.poll_timeout().is_none_or(|t| {
            s.handle_timeout(t);
            s.poll_connection().is_none()
        }),
        "no reconnect after a close"
    );
}
