//! The driver's bounded verification pool, over loopback: a slow check runs on a blocking thread (not the relay's)
//! while the relay goes on answering, and a login beyond the pool's workers and queue is refused at once with
//! `RATE_LIMITED` instead of waiting. The slow check is held by the test (a channel), not by a sleep; every wait
//! is bounded.
#![cfg(feature = "tokio")]
#![allow(clippy::disallowed_methods, reason = "a test harness: the origin of the relay's time")]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use voice_proto::control::{ClientMessage, Credential, ErrorCode, Message, ServerMessage, decode_frame};
use voice_relay::driver::{AuthPool, Server};
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, SeededRng};

mod gated;

use gated::{BOUND, Gated};

async fn login(tcp: &mut TcpStream, user: &str) {
    let mut out = BytesMut::new();
    let credential = Credential::Password("pw".into());
    ClientMessage::Login { user: user.into(), credential, client: "t".into() }.encode(&mut out).expect("encodes");
    tcp.write_all(&out).await.expect("writes");
}

async fn next(tcp: &mut TcpStream, rbuf: &mut BytesMut) -> ServerMessage {
    loop {
        if let Some(frame) = decode_frame(rbuf).expect("framing")
            && let Some(msg) = ServerMessage::decode(&frame).expect("message")
        {
            return msg;
        }
        let n = timeout(BOUND, tcp.read_buf(rbuf)).await.expect("answer").expect("read");
        assert!(n > 0, "connection closed");
    }
}

#[tokio::test]
async fn a_full_pool_answers_busy_at_once() {
    let (entered_tx, entered) = sync_channel(4);
    let (release, release_rx) = sync_channel(4);
    let inner = MemoryAuthenticator::new().with_user("alice", "pw").with_user("bob", "pw");
    let auth = Gated { inner, entered: entered_tx, release: Mutex::new(release_rx), released_memory: None };
    let relay = Relay::new(RelayConfig::default(), Box::new(SeededRng::new(6)), Instant::now(), 0).expect("config");
    let lo: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server =
        Server::bind(relay, auth, lo, lo).expect("binds").with_auth_pool(AuthPool { workers: 1, queue: 0, per_ip: 4 });
    let (tcp_addr, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let running = server.spawn().expect("driver thread");

    // Alice's check takes the one worker and stays there.
    let mut alice = TcpStream::connect(tcp_addr).await.expect("connects");
    login(&mut alice, "alice").await;
    let thread = tokio::task::spawn_blocking(move || entered.recv_timeout(BOUND).expect("the check started"));
    let thread = timeout(BOUND, thread).await.expect("in time").expect("joins");
    assert_ne!(thread, "voice-relay", "checked on the relay's thread");

    // Bob finds no worker and no queue: refused at once, while alice's check still runs.
    let mut bob = TcpStream::connect(tcp_addr).await.expect("connects");
    let mut rbuf = BytesMut::new();
    login(&mut bob, "bob").await;
    let m = next(&mut bob, &mut rbuf).await;
    assert!(matches!(m, ServerMessage::Error { code: ErrorCode::RATE_LIMITED, .. }), "{m:?}");
    // The relay goes on answering meanwhile.
    let mut out = BytesMut::new();
    ClientMessage::Ping { nonce: 5 }.encode(&mut out).expect("encodes");
    bob.write_all(&out).await.expect("writes");
    assert_eq!(next(&mut bob, &mut rbuf).await, ServerMessage::Pong { nonce: 5 });

    release.send(()).expect("releases");
    let mut rbuf = BytesMut::new();
    let m = next(&mut alice, &mut rbuf).await;
    assert!(matches!(m, ServerMessage::LoginOk { .. }), "{m:?}");

    shutdown.shutdown();
    let join = tokio::task::spawn_blocking(move || running.join().expect("thread").expect("runs"));
    let relay = timeout(BOUND, join).await.expect("stops").expect("joins");
    assert_eq!((relay.counters().logins, relay.counters().logins_busy), (1, 1));
}
