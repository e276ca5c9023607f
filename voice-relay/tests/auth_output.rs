//! Login as an output of the relay core: a Login becomes `Event::Authenticate`, the frames behind it wait in the
//! connection's buffer until `handle_auth_result`, answers that come too late or twice are ignored, and a busy
//! verification pool is refused with `RATE_LIMITED`.
#![allow(clippy::disallowed_methods, reason = "a test harness: the origin of the relay's time")]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Credential, ErrorCode, Message, ServerMessage};
use voice_relay::{
    AuthError, AuthRequest, Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng,
};

const EPOCH_UNIX_MS: u64 = 1_763_800_000_000;

fn relay() -> (Relay, Instant) {
    let now = Instant::now();
    (Relay::new(RelayConfig::default(), Box::new(SeededRng::new(4)), now, EPOCH_UNIX_MS).expect("config"), now)
}

fn login(user: &str, password: &str) -> ClientMessage {
    ClientMessage::Login { user: user.into(), credential: Credential::Password(password.into()), client: "t".into() }
}

fn events(relay: &mut Relay) -> Vec<Event> {
    std::iter::from_fn(|| relay.poll_event()).collect()
}

fn request(events: &[Event]) -> AuthRequest {
    let found = events.iter().find_map(|e| match e {
        Event::Authenticate(r) => Some(r.clone()),
        _ => None,
    });
    found.expect("a credential check")
}

fn sent(events: &[Event]) -> Vec<ServerMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn frames_behind_a_login_wait_for_its_answer() {
    let (mut relay, now) = relay();
    let conn = ConnId(1);
    let mut buf = BytesMut::new();
    for m in [login("alice", "pw"), ClientMessage::Join { room: "lobby".into(), password: None }] {
        m.encode(&mut buf).expect("encodes");
    }
    relay.handle_control_bytes(now, conn, &mut buf);
    let ev = events(&mut relay);
    let req = request(&ev);
    assert_eq!(ev.len(), 1, "only the check: {ev:?}");
    assert_eq!((req.conn(), req.user(), req.credential()), (conn, "alice", &Credential::Password("pw".into())));
    assert!(!format!("{req:?}").contains("\"pw\""), "Debug hides the credential: {req:?}");
    assert!(!buf.is_empty(), "the Join waits in the buffer");
    // Later bytes wait too.
    relay.handle_control_bytes(now, conn, &mut buf);
    assert!(events(&mut relay).is_empty());

    let later = now + Duration::from_secs(3);
    let auth = MemoryAuthenticator::new().with_user("alice", "pw");
    relay.handle_auth_result(later, req.id(), auth.authenticate(&req));
    relay.handle_control_bytes(later, conn, &mut buf);
    assert!(buf.is_empty());
    let msgs = sent(&events(&mut relay));
    assert!(matches!(msgs.first(), Some(ServerMessage::LoginOk { .. })), "{msgs:?}");
    assert!(msgs.iter().any(|m| matches!(m, ServerMessage::RoomState { .. })), "the Join went through: {msgs:?}");
    // The same answer again changes nothing.
    relay.handle_auth_result(later, req.id(), auth.authenticate(&req));
    assert!(events(&mut relay).is_empty());
    assert_eq!(relay.session_count(), 1);
}

#[test]
fn the_login_time_comes_from_the_time_given() {
    let (mut relay, now) = relay();
    relay.handle_control(now + Duration::from_millis(2_500), ConnId(1), login("a", "b"));
    assert_eq!(request(&events(&mut relay)).unix_time_ms(), EPOCH_UNIX_MS + 2_500);
}

#[test]
fn refusals_busy_pools_and_late_answers() {
    let (mut relay, now) = relay();
    // A wrong credential: AUTH_FAILED, counted.
    relay.handle_control(now, ConnId(1), login("alice", "wrong"));
    let req = request(&events(&mut relay));
    relay.handle_auth_result(now, req.id(), Err(AuthError::WrongCredential));
    let msgs = sent(&events(&mut relay));
    assert!(matches!(msgs[..], [ServerMessage::Error { code: ErrorCode::AUTH_FAILED, .. }]), "{msgs:?}");
    // The pool was full: RATE_LIMITED, counted apart; the client may try again.
    relay.handle_control(now, ConnId(1), login("alice", "pw"));
    let req = request(&events(&mut relay));
    relay.handle_auth_result(now, req.id(), Err(AuthError::Busy));
    let msgs = sent(&events(&mut relay));
    assert!(matches!(msgs[..], [ServerMessage::Error { code: ErrorCode::RATE_LIMITED, .. }]), "{msgs:?}");
    assert_eq!((relay.counters().login_failures, relay.counters().logins_busy), (1, 1));

    // A second Login while the first is checked is refused; requests needing a session are too.
    relay.handle_control(now, ConnId(2), login("bob", "pw"));
    let req = request(&events(&mut relay));
    relay.handle_control(now, ConnId(2), login("bob", "pw"));
    relay.handle_control(now, ConnId(2), ClientMessage::ListRooms);
    let msgs = sent(&events(&mut relay));
    assert!(
        matches!(
            msgs[..],
            [
                ServerMessage::Error { code: ErrorCode::ALREADY_LOGGED_IN, .. },
                ServerMessage::Error { code: ErrorCode::NOT_LOGGED_IN, .. }
            ]
        ),
        "{msgs:?}"
    );
    // The connection closes before the answer: the answer is dropped, no session is made.
    relay.connection_closed(now, ConnId(2));
    relay.handle_auth_result(now, req.id(), Ok(voice_relay::UserInfo::new("bob")));
    assert!(events(&mut relay).is_empty());
    assert_eq!(relay.session_count(), 0);

    // A shutdown while a check runs: the answer gets Goodbye, not a session.
    relay.handle_control(now, ConnId(3), login("carol", "pw"));
    let req = request(&events(&mut relay));
    relay.shutdown(now);
    let _ = events(&mut relay);
    relay.handle_auth_result(now, req.id(), Ok(voice_relay::UserInfo::new("carol")));
    assert!(events(&mut relay).is_empty(), "the connection was closed by the shutdown");
    assert_eq!(relay.session_count(), 0);
}

#[test]
fn a_full_relay_refuses_before_any_check() {
    let now = Instant::now();
    let cfg = RelayConfig { max_sessions: 1, ..RelayConfig::default() };
    let mut relay = Relay::new(cfg, Box::new(SeededRng::new(5)), now, 0).expect("config");
    let auth = MemoryAuthenticator::new().with_user("a", "pw").with_user("b", "pw");
    relay.handle_control(now, ConnId(1), login("a", "pw"));
    let req = request(&events(&mut relay));
    relay.handle_auth_result(now, req.id(), auth.authenticate(&req));
    let _ = events(&mut relay);
    relay.handle_control(now, ConnId(2), login("b", "pw"));
    let ev = events(&mut relay);
    assert!(!ev.iter().any(|e| matches!(e, Event::Authenticate(_))), "no costly check for a login that cannot succeed");
    assert!(matches!(sent(&ev)[..], [ServerMessage::Error { code: ErrorCode::RATE_LIMITED, .. }]), "{ev:?}");
}
