//! Password verification off the core task (`driver::AuthOffload`), over loopback: the authenticator runs on
//! another thread than the relay's, pipelined messages after a Login keep their order, a wrong password is refused.
#![cfg(feature = "tokio")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use voice_proto::control::{ClientMessage, Credential, ErrorCode, ServerMessage, decode_frame};
use voice_relay::config::hash_password_with_params;
use voice_relay::driver::{AuthOffload, Server};
use voice_relay::{AuthError, Authenticator, PasswordFileAuthenticator, Relay, RelayConfig, SeededRng, UserInfo};

const BOUND: Duration = Duration::from_secs(10);

/// Records the name of the thread each check runs on.
struct Recording {
    inner: PasswordFileAuthenticator,
    threads: Arc<Mutex<Vec<String>>>,
}

impl Authenticator for Recording {
    fn authenticate(&self, user: &str, credential: &Credential) -> Result<UserInfo, AuthError> {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        self.threads.lock().expect("lock").push(name);
        self.inner.authenticate(user, credential)
    }
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
async fn passwords_are_verified_off_the_core_thread_and_order_is_kept() {
    let hash = hash_password_with_params("pw", 64, 1, &mut SeededRng::new(1)).expect("hash");
    let inner = PasswordFileAuthenticator::new().with_user("alice", hash, "Alice").expect("user");
    let threads = Arc::new(Mutex::new(Vec::new()));
    let offload = AuthOffload::new(Recording { inner, threads: Arc::clone(&threads) });
    let relay = Relay::new(
        RelayConfig::default(),
        offload.relay_authenticator(),
        Box::new(SeededRng::new(2)),
        Instant::now(),
        0,
    )
    .expect("config");
    let lo: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = Server::bind(relay, lo, lo).expect("binds").with_auth_offload(offload);
    let (tcp_addr, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let running = server.spawn().expect("driver thread");

    let mut tcp = TcpStream::connect(tcp_addr).await.expect("connects");
    let mut rbuf = BytesMut::new();
    // Wrong password, then the right one, a Join and a Ping: all in one write.
    let mut out = BytesMut::new();
    let login = |p: &str| ClientMessage::Login {
        user: "alice".into(),
        credential: Credential::Password(p.into()),
        client: "t".into(),
    };
    for m in [
        login("wrong"),
        login("pw"),
        ClientMessage::Join { room: "lobby".into(), password: None },
        ClientMessage::Ping { nonce: 9 },
    ] {
        m.encode(&mut out).expect("encodes");
    }
    tcp.write_all(&out).await.expect("writes");
    let first = next(&mut tcp, &mut rbuf).await;
    assert!(matches!(first, ServerMessage::Error { code: ErrorCode::AUTH_FAILED, .. }), "{first:?}");
    let second = next(&mut tcp, &mut rbuf).await;
    assert!(matches!(second, ServerMessage::LoginOk { .. }), "{second:?}");
    // The Join is answered before the Pong, and not with NOT_LOGGED_IN.
    loop {
        match next(&mut tcp, &mut rbuf).await {
            ServerMessage::Pong { nonce } => {
                assert_eq!(nonce, 9);
                break;
            }
            ServerMessage::Error { code, .. } => panic!("refused: {code:?}"),
            _ => {}
        }
    }
    let names = threads.lock().expect("lock").clone();
    assert_eq!(names.len(), 2, "two password checks: {names:?}");
    assert!(names.iter().all(|n| n != "voice-relay"), "checked on the relay's thread: {names:?}");

    shutdown.shutdown();
    let join = tokio::task::spawn_blocking(move || running.join().expect("thread").expect("runs"));
    let relay = timeout(BOUND, join).await.expect("stops").expect("joins");
    assert_eq!(relay.counters().login_failures, 1);
    assert_eq!(relay.counters().logins, 1);
}

/// `Server::from_config`: the whole configuration file to a running server (password login checked off the core
/// task, LoginOk announcing the bound UDP port, metrics served).
#[tokio::test]
async fn server_from_config_runs_what_the_file_describes() {
    let hash = hash_password_with_params("pw", 64, 1, &mut SeededRng::new(3)).expect("hash");
    let text = format!(
        "[server]\nname = \"from-file\"\n[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\n\
         metrics = \"127.0.0.1:0\"\nudp_threads = 2\n[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\n"
    );
    let config = voice_relay::config::Config::from_toml_str(&text).expect("valid config");
    let server = Server::from_config(&config).expect("binds");
    let (udp, tcp_addr, metrics) = (server.udp_addr(), server.tcp_addr(), server.metrics_addr().expect("metrics"));
    let shutdown = server.shutdown_handle();
    let running = server.spawn().expect("driver thread");

    let mut tcp = TcpStream::connect(tcp_addr).await.expect("connects");
    let mut rbuf = BytesMut::new();
    let mut out = BytesMut::new();
    let credential = Credential::Password("pw".into());
    ClientMessage::Login { user: "bob".into(), credential, client: "t".into() }.encode(&mut out).expect("encodes");
    tcp.write_all(&out).await.expect("writes");
    let m = next(&mut tcp, &mut rbuf).await;
    let ServerMessage::LoginOk { udp_port, server_name, .. } = m else { panic!("{m:?}") };
    assert_eq!((udp_port, server_name.as_str()), (udp.port(), "from-file"));

    let mut http = TcpStream::connect(metrics).await.expect("connects");
    http.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await.expect("writes");
    let mut body = String::new();
    timeout(BOUND, http.read_to_string(&mut body)).await.expect("answers").expect("reads");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("\nvoice_relay_logins_total 1\n"), "{body}");

    shutdown.shutdown();
    let join = tokio::task::spawn_blocking(move || running.join().expect("thread").expect("runs"));
    timeout(BOUND, join).await.expect("stops").expect("joins");
}
