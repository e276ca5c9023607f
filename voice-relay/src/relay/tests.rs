//! The multi-shard paths with the messages delivered by hand: races the in-process [`Relay`] never shows (it
//! delivers everything at once), as they happen between UDP threads.
#![allow(clippy::disallowed_methods, reason = "a test: the origin of the relay's time")]

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_proto::{Datagram, SessionSecret, SessionToken};

use super::Relay;
use crate::{Authenticator, ConnId, Event, MemoryAuthenticator, RelayConfig, SeededRng};

/// A relay in 2 shards with one session logged in; its token and secret.
fn relay_with_session(now: Instant) -> (Relay, SessionToken, SessionSecret) {
    let auth = MemoryAuthenticator::new().with_user("ann", "pw");
    let mut relay =
        Relay::new(RelayConfig::default(), Box::new(SeededRng::new(3)), now, 0).expect("config").with_shards(2, now);
    let credential = Credential::Password("pw".into());
    relay.handle_control(now, ConnId(1), ClientMessage::Login { user: "ann".into(), credential, client: "t".into() });
    let mut login = None;
    while let Some(e) = relay.poll_event() {
        match e {
            Event::Authenticate(r) => relay.handle_auth_result(now, r.id(), auth.authenticate(&r)),
            Event::Send { msg: ServerMessage::LoginOk { token, secret, .. }, .. } => {
                login = Some((token, SessionSecret::new(secret.0)));
            }
            _ => {}
        }
    }
    let (token, secret) = login.expect("LoginOk");
    (relay, token, secret)
}

fn hello(secret: &SessionSecret, token: SessionToken, counter: u64) -> BytesMut {
    let mut b = BytesMut::with_capacity(32);
    Datagram::Hello(secret.hello(token, counter)).encode(&mut b);
    b
}

#[test]
fn a_hello_replayed_on_another_shard_in_the_race_window_loses() {
    let now = Instant::now();
    let (mut relay, token, secret) = relay_with_session(now);
    let (client, attacker): (SocketAddr, SocketAddr) =
        ("192.0.2.1:5000".parse().unwrap(), "198.51.100.9:6000".parse().unwrap());
    // The client's HELLO reaches shard 0; the attacker replays it from another address to shard 1 before the
    // control plane's Bind reached shard 1: both shards accept it locally.
    relay.shards[0].handle_datagram(now, client, hello(&secret, token, 1));
    relay.shards[1].handle_datagram(now, attacker, hello(&secret, token, 1));
    let bound = |r: &Relay, shard: usize| r.shards[shard].sessions.values().next().and_then(|s| s.bound);
    assert_eq!((bound(&relay, 0), bound(&relay, 1)), (Some(client), Some(attacker)));
    // The control plane hears shard 0 first: the first to prove counter 1 wins, and every shard converges on it.
    relay.pump();
    assert_eq!((bound(&relay, 0), bound(&relay, 1)), (Some(client), Some(client)));
    assert!(relay.shards.iter().all(|s| !s.by_addr.contains_key(&attacker)));
    // Only the winner hears back: the HELLO_ACK waits for the control plane's decision.
    let acks: Vec<SocketAddr> = std::iter::from_fn(|| relay.poll_transmit()).map(|t| t.destination).collect();
    assert_eq!(acks, [client], "one HELLO_ACK, to the client; none to the replay");
    let control = relay.control.sessions.values().next().expect("the session");
    assert_eq!(control.bound, Some(client));
    assert_eq!(relay.control.counters.bound_sessions, 1);
}

#[test]
fn a_newer_hello_on_a_shard_outlives_an_older_bind_in_flight() {
    let now = Instant::now();
    let (mut relay, token, secret) = relay_with_session(now);
    let (a, b): (SocketAddr, SocketAddr) = ("192.0.2.1:5000".parse().unwrap(), "192.0.2.1:5001".parse().unwrap());
    relay.shards[0].handle_datagram(now, a, hello(&secret, token, 1));
    // Shard 0's event reaches the control plane, which queues Bind(a, 1) for every shard...
    let event = relay.shards[0].poll_event().expect("Bound");
    relay.control.handle_shard_event(0, event);
    // ...but before shard 1 applies it, the client roams and its newer HELLO lands on shard 1.
    relay.shards[1].handle_datagram(now, b, hello(&secret, token, 2));
    relay.pump();
    let bound = |r: &Relay, shard: usize| r.shards[shard].sessions.values().next().and_then(|s| s.bound);
    assert_eq!((bound(&relay, 0), bound(&relay, 1)), (Some(b), Some(b)), "the newest HELLO's address everywhere");
    assert_eq!(relay.control.sessions.values().next().and_then(|s| s.bound), Some(b));
    // Only shard 1 receives b's datagrams, so only it keeps the binding's idle timer.
    assert!(!relay.shards[0].sessions.values().next().is_some_and(|s| s.owner));
    assert!(relay.shards[1].sessions.values().next().is_some_and(|s| s.owner));
}

#[test]
fn events_about_an_ended_session_do_not_touch_its_successor_in_the_same_slot() {
    let now = Instant::now();
    let (mut relay, token, secret) = relay_with_session(now);
    let addr: SocketAddr = "192.0.2.1:5000".parse().unwrap();
    // A HELLO accepted on shard 0 whose event is still in flight when the session ends.
    relay.shards[0].handle_datagram(now, addr, hello(&secret, token, 1));
    let stale = relay.shards[0].poll_event().expect("Bound");
    relay.connection_closed(now, ConnId(1));
    let later = now + relay.control.s.cfg.resume_grace * 2;
    relay.handle_timeout(later);
    assert_eq!(relay.session_count(), 0);
    // A new session takes the slot; the old event arrives now and is ignored (another generation).
    let auth = MemoryAuthenticator::new().with_user("ann", "pw");
    let credential = Credential::Password("pw".into());
    relay.handle_control(later, ConnId(2), ClientMessage::Login { user: "ann".into(), credential, client: "t".into() });
    while let Some(e) = relay.poll_event() {
        if let Event::Authenticate(r) = e {
            relay.handle_auth_result(later, r.id(), auth.authenticate(&r));
        }
    }
    assert_eq!(relay.session_count(), 1);
    relay.control.handle_shard_event(0, stale);
    relay.pump();
    assert!(relay.control.sessions.values().all(|s| s.bound.is_none()), "not bound to the old session's address");
    assert!(relay.shards.iter().all(|s| s.by_addr.is_empty()));
}
