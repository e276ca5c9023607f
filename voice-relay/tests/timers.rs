//! Housekeeping costs what expires, not what exists: 100 000 idle sessions (logged in, bound, in a room, their
//! control connections open) cost no timer work while nothing is due, and when their bindings expire each is looked
//! at once. Counted with `Relay::timer_visits` (timer entries looked at), not timed: speed belongs in benches.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_proto::{Datagram, SessionSecret};
use voice_relay::{Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng};

/// `n` sessions, each logged in on its own connection, in the lobby and bound to its own address at `now`.
fn idle_relay(n: usize, now: Instant, binding_idle_timeout: Duration) -> Relay {
    let auth = MemoryAuthenticator::new().with_user("user", "pw");
    let long = Duration::from_secs(7 * 24 * 3600);
    let cfg = RelayConfig {
        control_burst: 1_000_000,
        control_per_s: 1_000_000,
        control_idle_timeout: long,
        // Logged in at once: the login deadline's one timer visit per connection is not what this measures.
        login_timeout: long,
        binding_idle_timeout,
        max_sessions: n,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(cfg, Box::new(SeededRng::new(7)), now, 0).expect("config");
    for i in 0..n {
        let conn = ConnId(i as u64);
        let credential = Credential::Password("pw".into());
        relay.handle_control(now, conn, ClientMessage::Login { user: "user".into(), credential, client: "t".into() });
        let mut hello = None;
        while let Some(e) = relay.poll_event() {
            if let Event::Authenticate(r) = &e {
                relay.handle_auth_result(now, r.id(), auth.authenticate(r));
                relay.handle_control(now, conn, ClientMessage::Join { room: "lobby".into(), password: None });
            }
            if let Event::Send { msg: ServerMessage::LoginOk { token, secret, .. }, .. } = e {
                let mut b = BytesMut::with_capacity(32);
                Datagram::Hello(SessionSecret::new(secret.0).hello(token, 1)).encode(&mut b);
                hello = Some(b);
            }
        }
        let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000));
        relay.handle_datagram(now, addr, hello.expect("LoginOk"));
        while relay.poll_transmit().is_some() {}
        // Room fan-out of the joins is not what this test is about.
        while relay.poll_event().is_some() {}
    }
    relay
}

/// Runs the relay's timers once a second from `from` for `seconds`; returns the timer entries looked at.
fn tick(relay: &mut Relay, from: Instant, seconds: u64) -> u64 {
    let before = relay.timer_visits();
    for s in 1..=seconds {
        relay.handle_timeout(from + Duration::from_secs(s));
        while relay.poll_event().is_some() {}
    }
    relay.timer_visits() - before
}

#[test]
fn idle_sessions_cost_no_timer_work_until_they_expire() {
    const N: usize = 100_000;
    let t0 = Instant::now();
    let mut relay = idle_relay(N, t0, Duration::from_secs(30));
    assert_eq!(relay.counters().bound_sessions, N as u64);
    // Nothing is due before the binding idle timeout (30 s): 29 housekeeping seconds look at nothing.
    assert_eq!(tick(&mut relay, t0, 29), 0, "no timer entry is looked at while nothing is due");
    let next = relay.poll_timeout().expect("bindings will expire");
    assert_eq!(next, t0 + Duration::from_secs(30), "the next wake-up is the first expiry");
    // At 30 s every binding expires: each session is looked at once, because it expired.
    let visits = tick(&mut relay, t0 + Duration::from_secs(29), 1);
    assert_eq!(relay.counters().bindings_expired, N as u64);
    assert_eq!(relay.counters().bound_sessions, 0);
    assert_eq!(visits, N as u64, "one look per expired binding");
    // Afterwards nothing is left to expire (connections are open, sessions stay): no more timer work.
    assert_eq!(tick(&mut relay, t0 + Duration::from_secs(30), 60), 0);
    assert_eq!(relay.session_count(), N);
}

#[test]
fn timer_work_follows_what_expires_not_the_session_count() {
    // 10 sessions lose their connection at 5 s and end after the resume grace (60 s), among 1 000 or among 20 000
    // idle sessions: the same timer work, 10 looks, all at 65 s.
    for n in [1_000, 20_000] {
        let t0 = Instant::now();
        let mut relay = idle_relay(n, t0, Duration::from_secs(7 * 24 * 3600));
        for i in 0..10 {
            relay.connection_closed(t0 + Duration::from_secs(5), ConnId(i));
        }
        assert_eq!(tick(&mut relay, t0, 64), 0, "{n} sessions: nothing due before 65 s");
        assert_eq!(relay.session_count(), n);
        assert_eq!(tick(&mut relay, t0 + Duration::from_secs(64), 1), 10, "{n} sessions: one look per ended session");
        assert_eq!(relay.session_count(), n - 10);
        assert_eq!(relay.counters().sessions_ended, 10);
    }
}
