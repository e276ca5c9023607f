//! Memory per session, measured: the heap a relay holds for 10 000 logged-in, bound sessions (session slab, token /
//! public-id / address maps, names), divided by the count. Plus the fixed record size.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_proto::{Datagram, SessionSecret};
use voice_relay::{Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng};

const N: usize = 10_000;

#[test]
fn ten_thousand_bound_sessions_fit_in_4_kib_each() {
    let one = heap_per_session(1);
    // Each more UDP thread holds a replica of the forwarding tables: its record and map entries per session.
    let two = heap_per_session(2);
    println!("with 2 shards: {two} B per session ({} B more than with 1)", two.saturating_sub(one));
}

/// Heap held per session after 10 000 bound sessions in a relay of `shards` shards.
fn heap_per_session(shards: usize) -> usize {
    let now = Instant::now();
    let auth = MemoryAuthenticator::new().with_user("user", "pw");
    let cfg = RelayConfig { control_burst: 1_000_000, control_per_s: 1_000_000, ..RelayConfig::default() };
    let mut relay = Relay::new(cfg, Box::new(SeededRng::new(3)), now, 0).unwrap().with_shards(shards, now);
    let info = allocation_counter::measure(|| {
        for i in 0..N {
            let conn = ConnId(i as u64);
            let login = ClientMessage::Login {
                user: "user".into(),
                credential: Credential::Password("pw".into()),
                client: "m".into(),
            };
            relay.handle_control(now, conn, login);
            let mut hello = None;
            while let Some(e) = relay.poll_event() {
                if let Event::Authenticate(r) = &e {
                    relay.handle_auth_result(now, r.id(), auth.authenticate(r));
                }
                if let Event::Send { msg: ServerMessage::LoginOk { token, secret, .. }, .. } = e {
                    let mut b = BytesMut::with_capacity(32);
                    Datagram::Hello(SessionSecret::new(secret.0).hello(token, 1)).encode(&mut b);
                    hello = Some(b);
                }
            }
            let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000));
            relay.handle_datagram(now, addr, hello.unwrap());
            while relay.poll_transmit().is_some() {}
        }
    });
    assert_eq!(relay.session_count(), N);
    assert_eq!(relay.counters().bound_sessions, N as u64);
    let per_session = info.bytes_current as usize / N;
    println!(
        "record size_of = {} B; heap held after {N} bound sessions = {} B ({per_session} B per session, incl. maps, \
         control connection state and slab growth slack)",
        Relay::session_record_size(),
        info.bytes_current
    );
    assert!(per_session <= 4096, "{per_session} B per session");

    // Housekeeping passes over the 10 000 idle sessions keep every session (their cost is counted by
    // `tests/timers.rs`: nothing is looked at before something is due).
    let mut t = now;
    for _ in 0..5 {
        t += std::time::Duration::from_secs(1);
        relay.handle_timeout(t);
        while relay.poll_event().is_some() {}
    }
    assert_eq!(relay.session_count(), N);
    per_session
}
