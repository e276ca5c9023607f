//! Logins through the relay's real driver on loopback with the production authenticators: argon2id checks run on
//! the driver's blocking pool (not on the relay's thread), pipelined messages after a Login keep their order, a
//! wrong password is refused; and `Server::from_config` runs what a configuration file describes, metrics and
//! health over HTTP included. Every wait is bounded.
#![allow(clippy::disallowed_methods, reason = "a test harness: the origin of the relay's time")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use voice_proto::control::{ClientMessage, Credential, ErrorCode, Message, ServerMessage, decode_frame};
use voice_relay::driver::Server as Driver;
use voice_relay::{AuthError, AuthRequest, Authenticator, Relay, RelayConfig, SeededRng, UserInfo};
use voice_server::{Config, PasswordFileAuthenticator, Server, hash_password_with_params};

const BOUND: Duration = Duration::from_secs(10);

/// Records the name of the thread each check runs on.
struct Recording {
    inner: PasswordFileAuthenticator,
    threads: Arc<Mutex<Vec<String>>>,
}

impl Authenticator for Recording {
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError> {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        self.threads.lock().expect("lock").push(name);
        self.inner.authenticate(request)
    }

    fn is_cheap(&self, credential: &Credential) -> bool {
        self.inner.is_cheap(credential)
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
    let auth = Recording { inner, threads: Arc::clone(&threads) };
    let relay = Relay::new(RelayConfig::default(), Box::new(SeededRng::new(2)), Instant::now(), 0).expect("config");
    let lo: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = Driver::bind(relay, auth, lo, lo).expect("binds");
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

/// The value of the sample line `series` (name and labels) in a Prometheus text body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` beyond the relay's counters: the build, the process's resources, the UDP send errors as their own
/// counter; and no quantity twice (the driver's datagram totals repeated the relay's packet counters, with send
/// errors as an `op` of the same family).
#[tokio::test]
async fn metrics_tell_the_build_and_the_process_and_nothing_twice() {
    let text = "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n";
    let server = Server::from_config(&Config::from_toml_str(text).expect("valid config")).expect("binds");
    let (metrics, shutdown) = (server.metrics_addr().expect("metrics"), server.shutdown_handle());
    let running = server.spawn().expect("server thread");
    let response = http(metrics, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let (_, body) = response.split_once("\r\n\r\n").expect("head and body");
    let build = format!("voice_server_build_info{{version=\"{}\",protocol=\"2\"}}", env!("CARGO_PKG_VERSION"));
    assert_eq!(sample(body, &build), Some(1.0), "{body}");
    assert_eq!(sample(body, "voice_relay_udp_send_errors_total"), Some(0.0), "{body}");
    assert!(!body.contains("op=\""), "send errors are their own counter: {body}");
    assert!(!body.contains("udp_datagrams_total"), "datagrams are counted once, as packets_total: {body}");
    if cfg!(target_os = "linux") {
        let rss = sample(body, "process_resident_memory_bytes").expect("RSS");
        assert!(rss > 1e6, "{rss}");
        assert!(sample(body, "process_cpu_seconds_total").expect("CPU") > 0.0, "{body}");
        let fds = sample(body, "process_open_fds").expect("fds");
        assert!((3.0..1000.0).contains(&fds), "{fds}");
        assert!(sample(body, "process_threads").expect("threads") >= 2.0, "{body}");
        assert!(sample(body, "process_virtual_memory_bytes").expect("VM") >= rss, "{body}");
    }
    // Each family is declared once, and every sample belongs to a declared family.
    let mut families = std::collections::HashSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().expect("a name");
            assert!(families.insert(name.to_string()), "{name} declared twice");
        }
    }
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().expect("a name");
        let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(families.contains(name) || families.contains(family), "undeclared: {line}");
    }
    shutdown.shutdown();
    let join = tokio::task::spawn_blocking(move || running.join().expect("thread").expect("runs"));
    timeout(BOUND, join).await.expect("stops").expect("joins");
}

/// One HTTP request; returns the whole response.
async fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(request).await.expect("writes");
    let mut out = Vec::new();
    // The server may close before reading a refused request whole: a reset after the answer is fine.
    let _ = timeout(BOUND, s.read_to_end(&mut out)).await.expect("answers");
    String::from_utf8_lossy(&out).into_owned()
}

/// `Server::from_config`: the whole configuration file to a running server (password login checked on the
/// driver's pool, LoginOk announcing the bound UDP port, metrics and health served over HTTP within bounds).
#[tokio::test]
async fn server_from_config_runs_what_the_file_describes() {
    let hash = hash_password_with_params("pw", 64, 1, &mut SeededRng::new(3)).expect("hash");
    let text = format!(
        "[server]\nname = \"from-file\"\n[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\n\
         metrics = \"127.0.0.1:0\"\nudp_threads = 2\n[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\n"
    );
    let config = Config::from_toml_str(&text).expect("valid config");
    let server = Server::from_config(&config).expect("binds");
    let (udp, tcp_addr, metrics) = (server.udp_addr(), server.tcp_addr(), server.metrics_addr().expect("metrics"));
    let shutdown = server.shutdown_handle();
    let running = server.spawn().expect("server thread");

    let mut tcp = TcpStream::connect(tcp_addr).await.expect("connects");
    let mut rbuf = BytesMut::new();
    let mut out = BytesMut::new();
    let credential = Credential::Password("pw".into());
    ClientMessage::Login { user: "bob".into(), credential, client: "t".into() }.encode(&mut out).expect("encodes");
    tcp.write_all(&out).await.expect("writes");
    let m = next(&mut tcp, &mut rbuf).await;
    let ServerMessage::LoginOk { udp_port, server_name, .. } = m else { panic!("{m:?}") };
    assert_eq!((udp_port, server_name.as_str()), (udp.port(), "from-file"));

    let response = http(metrics, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    assert!(body.contains("\nvoice_relay_logins_total 1\n"), "{body}");
    assert!(body.contains("\nvoice_relay_logins_busy_total 0\n"), "{body}");
    for path in ["/healthz", "/health"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        let health = http(metrics, request.as_bytes()).await;
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n") && health.ends_with("\r\n\r\nok\n"), "{path}: {health}");
    }
    let not_found = http(metrics, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
    let post = http(metrics, b"POST /metrics HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: test\r\nX: ".to_vec();
    huge.resize(2 * voice_server::http::MAX_REQUEST_HEAD_BYTES, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    let too_large = http(metrics, &huge).await;
    assert!(too_large.is_empty() || too_large.starts_with("HTTP/1.1 431 "), "{too_large}");

    shutdown.shutdown();
    let join = tokio::task::spawn_blocking(move || running.join().expect("thread").expect("runs"));
    timeout(BOUND, join).await.expect("stops").expect("joins");
}
