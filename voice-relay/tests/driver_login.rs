//! The driver's login path over loopback: connections not logged in are bounded in total and per address (closed
//! at once beyond), slow checks are bounded per address, run on the pool's own threads and release their memory
//! when idle, and accounts back off after failed logins alike for existing and unknown users. Checks held by the
//! test are held by channels, not sleeps; every wait is bounded; clients use 127.0.0.x addresses.
#![cfg(feature = "tokio")]
#![allow(clippy::disallowed_methods, reason = "a test harness: the origin of the relay's time")]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use voice_proto::control::{ClientMessage, Credential, ErrorCode, Message, ServerMessage, decode_frame};
use voice_relay::driver::{AuthPool, ConnLimits, LoginBackoff, Server};
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, SeededRng};

mod gated;

use gated::{BOUND, Gated};

fn relay() -> Relay {
    Relay::new(RelayConfig::default(), Box::new(SeededRng::new(6)), Instant::now(), 0).expect("config")
}

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// A connection from 127.0.0.`host`.
async fn connect_from(host: u8, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::from(([127, 0, 0, host], 0))).expect("binds a loopback address");
    timeout(BOUND, sock.connect(to)).await.expect("in time").expect("connects")
}

async fn send(tcp: &mut TcpStream, msg: ClientMessage) {
    let mut out = BytesMut::new();
    msg.encode(&mut out).expect("encodes");
    tcp.write_all(&out).await.expect("writes");
}

async fn login(tcp: &mut TcpStream, user: &str, password: &str) {
    let credential = Credential::Password(password.into());
    send(tcp, ClientMessage::Login { user: user.into(), credential, client: "t".into() }).await;
}

/// The next message, or `None` if the server closed the connection.
async fn next(tcp: &mut TcpStream, rbuf: &mut BytesMut) -> Option<ServerMessage> {
    loop {
        if let Some(frame) = decode_frame(rbuf).expect("framing")
            && let Some(msg) = ServerMessage::decode(&frame).expect("message")
        {
            return Some(msg);
        }
        match timeout(BOUND, tcp.read_buf(rbuf)).await.expect("an answer or a close in time") {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Whether the server serves `tcp` (answers a Ping) rather than closing it.
async fn served(tcp: &mut TcpStream) -> bool {
    let mut out = BytesMut::new();
    ClientMessage::Ping { nonce: 3 }.encode(&mut out).expect("encodes");
    if tcp.write_all(&out).await.is_err() {
        return false; // closed by the server already
    }
    next(tcp, &mut BytesMut::new()).await == Some(ServerMessage::Pong { nonce: 3 })
}

async fn stop(
    server: std::thread::JoinHandle<Result<Relay, voice_relay::DriverError>>,
    h: voice_relay::driver::ShutdownHandle,
) -> Relay {
    h.shutdown();
    let join = tokio::task::spawn_blocking(move || server.join().expect("thread").expect("runs"));
    timeout(BOUND, join).await.expect("stops").expect("joins")
}

#[tokio::test]
async fn connections_not_logged_in_are_bounded_per_address_and_in_total() {
    let auth = MemoryAuthenticator::new().with_user("alice", "pw");
    let server = Server::bind(relay(), auth, lo(), lo()).expect("binds").with_conn_limits(ConnLimits {
        prelogin_total: 3,
        prelogin_per_ip: 2,
        ..ConnLimits::default()
    });
    let (addr, metrics, shutdown) = (server.tcp_addr(), server.metrics_handle(), server.shutdown_handle());
    let running = server.spawn().expect("driver thread");

    let mut a1 = connect_from(1, addr).await;
    let mut a2 = connect_from(1, addr).await;
    assert!(served(&mut a1).await && served(&mut a2).await);
    let mut a3 = connect_from(1, addr).await;
    assert!(!served(&mut a3).await, "a third from 127.0.0.1 is closed at once");
    let mut b1 = connect_from(2, addr).await;
    assert!(served(&mut b1).await, "another address still gets in");
    // The total (3) is used up: a newcomer from a new address takes the place of the busiest address's oldest.
    let mut c1 = connect_from(3, addr).await;
    assert!(served(&mut c1).await, "a new address is not locked out");
    assert_eq!(next(&mut a1, &mut BytesMut::new()).await, None, "127.0.0.1's oldest made room");
    // Every address holds one now: the oldest (127.0.0.1's second) makes room for the next newcomer.
    let mut d1 = connect_from(4, addr).await;
    assert!(served(&mut d1).await);
    assert_eq!(next(&mut a2, &mut BytesMut::new()).await, None);
    // A login gives its slot back, and a logged-in connection is never closed to make room.
    login(&mut b1, "alice", "pw").await;
    assert!(matches!(next(&mut b1, &mut BytesMut::new()).await, Some(ServerMessage::LoginOk { .. })));
    let mut e1 = connect_from(5, addr).await;
    assert!(served(&mut e1).await);
    let mut f1 = connect_from(6, addr).await;
    assert!(served(&mut f1).await);
    assert!(served(&mut b1).await, "logged in: not closed for newcomers");
    let snapshot = metrics.snapshot().await.expect("runs");
    assert_eq!((snapshot.prelogin_refused, snapshot.prelogin_evicted), (1, 3));
    assert!(snapshot.render_prometheus().contains("voice_relay_prelogin_evicted_total 3"));
    stop(running, shutdown).await;
}

async fn recv_bounded<T: Send + 'static>(rx: Receiver<T>) -> (T, Receiver<T>) {
    let got = tokio::task::spawn_blocking(move || (rx.recv_timeout(BOUND).expect("in time"), rx));
    timeout(BOUND, got).await.expect("in time").expect("joins")
}

#[tokio::test]
async fn one_address_cannot_take_the_whole_verification_queue() {
    let (entered_tx, entered) = sync_channel(8);
    let (release, release_rx) = sync_channel(8);
    let (released_tx, released) = sync_channel(8);
    let inner = MemoryAuthenticator::new().with_user("alice", "pw").with_user("bob", "pw").with_user("carol", "pw");
    let auth =
        Gated { inner, entered: entered_tx, release: Mutex::new(release_rx), released_memory: Some(released_tx) };
    let pool = AuthPool { workers: 1, queue: 4, per_ip: 1 };
    let server = Server::bind(relay(), auth, lo(), lo()).expect("binds").with_auth_pool(pool);
    let (addr, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let running = server.spawn().expect("driver thread");

    let mut alice = connect_from(1, addr).await;
    login(&mut alice, "alice", "pw").await;
    let (thread, entered) = recv_bounded(entered).await;
    assert!(thread.starts_with("voice-relay-auth"), "checked on a verification thread: {thread}");
    // Bob shares alice's address: refused at once although the queue has room.
    let mut bob = connect_from(1, addr).await;
    login(&mut bob, "bob", "pw").await;
    let m = next(&mut bob, &mut BytesMut::new()).await;
    assert!(matches!(m, Some(ServerMessage::Error { code: ErrorCode::RATE_LIMITED, .. })), "{m:?}");
    // Carol, from another address, waits in the queue and gets in.
    let mut carol = connect_from(2, addr).await;
    login(&mut carol, "carol", "pw").await;
    release.send(()).expect("releases alice");
    let (_, _entered) = recv_bounded(entered).await;
    release.send(()).expect("releases carol");
    assert!(matches!(next(&mut alice, &mut BytesMut::new()).await, Some(ServerMessage::LoginOk { .. })));
    assert!(matches!(next(&mut carol, &mut BytesMut::new()).await, Some(ServerMessage::LoginOk { .. })));
    // Idle, the verification thread gives its memory back (once), on its own thread.
    let (thread, _) = recv_bounded(released).await;
    assert!(thread.starts_with("voice-relay-auth"), "{thread}");

    let relay = stop(running, shutdown).await;
    assert_eq!((relay.counters().logins, relay.counters().logins_busy), (2, 1));
}

#[tokio::test]
async fn accounts_back_off_alike_whether_or_not_they_exist() {
    let auth = MemoryAuthenticator::new().with_user("alice", "pw");
    // A long wait, so that the test does not depend on how fast it runs.
    let backoff = LoginBackoff { account_free: 2, base: Duration::from_secs(3600), ..LoginBackoff::default() };
    let server = Server::bind(relay(), auth, lo(), lo()).expect("binds").with_login_backoff(backoff);
    let (addr, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let running = server.spawn().expect("driver thread");

    let mut replies = Vec::new();
    for user in ["alice", "nobody"] {
        let mut tcp = connect_from(1, addr).await;
        let mut rbuf = BytesMut::new();
        let mut codes = Vec::new();
        for _ in 0..3 {
            login(&mut tcp, user, "wrong").await;
            codes.push(next(&mut tcp, &mut rbuf).await);
        }
        // Even the right password waits now.
        login(&mut tcp, user, "pw").await;
        codes.push(next(&mut tcp, &mut rbuf).await);
        let codes: Vec<_> = codes
            .into_iter()
            .map(|m| match m {
                Some(ServerMessage::Error { code, .. }) => code,
                other => panic!("{other:?}"),
            })
            .collect();
        replies.push(codes);
    }
    let expected = [ErrorCode::AUTH_FAILED, ErrorCode::AUTH_FAILED, ErrorCode::AUTH_FAILED, ErrorCode::RATE_LIMITED];
    assert_eq!(replies, [expected, expected], "the same answers for an existing and an unknown user");
    // Another account from the same address is not affected (the address has 6 failures, 20 are free).
    let mut other = connect_from(1, addr).await;
    login(&mut other, "bob", "x").await;
    let m = next(&mut other, &mut BytesMut::new()).await;
    assert!(matches!(m, Some(ServerMessage::Error { code: ErrorCode::AUTH_FAILED, .. })), "{m:?}");

    let relay = stop(running, shutdown).await;
    assert_eq!(relay.counters().logins_throttled, 2);
    assert_eq!(relay.counters().login_failures, 7);
}

#[tokio::test]
async fn a_full_pool_makes_room_for_a_client_without_failures() {
    let (entered_tx, entered) = sync_channel(8);
    let (release, release_rx) = sync_channel(8);
    let (released_tx, _released) = sync_channel(8);
    let inner = MemoryAuthenticator::new().with_user("alice", "pw");
    let auth =
        Gated { inner, entered: entered_tx, release: Mutex::new(release_rx), released_memory: Some(released_tx) };
    let server = Server::bind(relay(), auth, lo(), lo()).expect("binds").with_auth_pool(AuthPool {
        workers: 1,
        queue: 1,
        per_ip: 4,
    });
    let (addr, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let running = server.spawn().expect("driver thread");

    // The attacker's address fails once.
    let mut a1 = connect_from(2, addr).await;
    login(&mut a1, "mallory", "guess").await;
    let (_, entered) = recv_bounded(entered).await;
    release.send(()).expect("releases");
    let m = next(&mut a1, &mut BytesMut::new()).await;
    assert!(matches!(m, Some(ServerMessage::Error { code: ErrorCode::AUTH_FAILED, .. })), "{m:?}");
    // Then fills the pool: one check running, one waiting.
    login(&mut a1, "mallory", "guess2").await;
    let (_, entered) = recv_bounded(entered).await;
    let mut a2 = connect_from(2, addr).await;
    login(&mut a2, "mallory", "guess3").await;
    // Wait until the relay has queued it (a Ping behind the Login is held until the check ends: use another
    // connection's Ping as a barrier on the core task).
    let mut barrier = connect_from(3, addr).await;
    assert!(served(&mut barrier).await);
    // Alice's address has no failures: her login takes the attacker's waiting place.
    let mut alice = connect_from(1, addr).await;
    login(&mut alice, "alice", "pw").await;
    let m = next(&mut a2, &mut BytesMut::new()).await;
    assert!(matches!(m, Some(ServerMessage::Error { code: ErrorCode::RATE_LIMITED, .. })), "{m:?}");
    release.send(()).expect("releases the attacker's running check");
    let (_, _entered) = recv_bounded(entered).await;
    release.send(()).expect("releases alice's");
    assert!(matches!(next(&mut alice, &mut BytesMut::new()).await, Some(ServerMessage::LoginOk { .. })));
    let relay = stop(running, shutdown).await;
    assert_eq!((relay.counters().logins, relay.counters().logins_busy, relay.counters().login_failures), (1, 1, 2));
}
