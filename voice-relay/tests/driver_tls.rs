//! TLS on the control connections through the real driver on loopback: a client that trusts the server's
//! (self-signed, generated) certificate logs in over TLS; a client speaking plain TCP to the TLS port is dropped
//! without reaching the relay, and the server goes on; unusable certificate files are errors that name the file.
//! Bounded: every wait has a timeout.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]
#![cfg(feature = "tokio")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, RootCertStore};
use voice_proto::control::{ClientMessage, Credential, Message, ServerMessage, decode_frame};
use voice_relay::driver::{Server, server_config_from_pem};
use voice_relay::{DriverError, MemoryAuthenticator, Relay, RelayConfig, SeededRng};

const BOUND: Duration = Duration::from_secs(10);

/// A fresh self-signed certificate for `localhost`, written as PEM files in a temporary directory.
struct Cert {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl Cert {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("voice-relay-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).expect("writes cert");
        std::fs::write(&key, ck.signing_key.serialize_pem()).expect("writes key");
        Self { dir, cert, key, der: ck.cert.der().clone() }
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn server(cert: &Cert) -> Server {
    let auth = MemoryAuthenticator::new().with_user("alice", "pw-alice");
    let relay =
        Relay::new(RelayConfig::default(), Box::new(SeededRng::new(3)), Instant::now(), 0).expect("valid config");
    let lo: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let tls = server_config_from_pem(&cert.cert, &cert.key).expect("usable certificate");
    Server::bind(relay, auth, lo, lo).expect("binds").with_tls(tls)
}

async fn send_msg(s: &mut (impl AsyncWrite + Unpin), msg: &ClientMessage) {
    let mut b = BytesMut::new();
    msg.encode(&mut b).expect("encodes");
    s.write_all(&b).await.expect("writes");
    s.flush().await.expect("flushes");
}

/// The next control message, or `None` at end of stream (or a connection error).
async fn recv_msg(s: &mut (impl AsyncRead + Unpin), rbuf: &mut BytesMut) -> Option<ServerMessage> {
    loop {
        if let Some(frame) = decode_frame(rbuf).expect("valid framing from the relay")
            && let Some(msg) = ServerMessage::decode(&frame).expect("valid message from the relay")
        {
            return Some(msg);
        }
        match timeout(BOUND, s.read_buf(rbuf)).await.expect("relay answers or closes") {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn login() -> ClientMessage {
    ClientMessage::Login {
        user: "alice".into(),
        credential: Credential::Password("pw-alice".into()),
        client: "t".into(),
    }
}

async fn tls_login(tcp_addr: SocketAddr, cert: &Cert) -> Option<ServerMessage> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.der.clone()).expect("trusts the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(tcp_addr).await.expect("connects");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = timeout(BOUND, TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    send_msg(&mut tls, &login()).await;
    let mut rbuf = BytesMut::new();
    recv_msg(&mut tls, &mut rbuf).await
}

#[tokio::test]
async fn control_connection_over_tls_logs_in_and_plain_tcp_is_dropped() {
    let cert = Cert::new("login");
    let server = server(&cert);
    let (tcp_addr, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let task = tokio::spawn(server.run());

    let reply = tls_login(tcp_addr, &cert).await;
    assert!(matches!(reply, Some(ServerMessage::LoginOk { .. })), "login over TLS: {reply:?}");

    // Plain TCP to the TLS port: the handshake fails on the first bytes and the connection is closed; the relay
    // never sees a login.
    let mut plain = TcpStream::connect(tcp_addr).await.expect("connects");
    send_msg(&mut plain, &login()).await;
    let mut raw = [0u8; 256];
    let got = timeout(BOUND, plain.read(&mut raw)).await.expect("closed in time");
    assert!(
        got.is_err() || got.is_ok_and(|n| n == 0 || raw[0] == 0x15),
        "no relay frame, only a TLS alert or the close"
    );

    // The server goes on serving TLS clients.
    assert!(matches!(tls_login(tcp_addr, &cert).await, Some(ServerMessage::LoginOk { .. })));
    shutdown.shutdown();
    let relay = timeout(BOUND, task).await.expect("stops").expect("joins").expect("runs");
    assert_eq!(relay.session_count(), 2, "the two TLS logins made sessions; the plain-TCP one never reached the relay");
}

#[test]
fn unusable_certificate_files_name_the_file() {
    let cert = Cert::new("bad");
    let missing = cert.dir.join("missing.pem");
    let err = server_config_from_pem(&missing, &cert.key).expect_err("missing file");
    assert!(matches!(&err, DriverError::Tls { path, .. } if *path == missing), "{err}");
    // The key file where the certificate should be: no certificate in it.
    let err = server_config_from_pem(&cert.key, &cert.key).expect_err("no certificate");
    assert!(err.to_string().contains("key.pem"), "{err}");
    // A key that does not belong to the certificate.
    let other = Cert::new("other");
    let err = server_config_from_pem(&cert.cert, &other.key).expect_err("mismatched key");
    assert!(matches!(&err, DriverError::Tls { path, .. } if *path == other.key), "{err}");
}
