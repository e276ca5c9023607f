//! The `voice-server` binary: it says where it listens (TLS included), stops gracefully on SIGTERM with a summary,
//! refuses a bad configuration file in words (naming key and line) with a non-zero exit, and hashes a password
//! from stdin. Every wait is bounded; the process is killed if a test fails.
#![allow(clippy::disallowed_methods, reason = "a test harness: deadlines for the child's output")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

/// The binary, its stdout lines collected by a thread.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    /// Lines read while waiting for the exit, not yet looked at.
    rest: Vec<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_voice-server"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, rest: Vec::new() }
    }

    /// The first line (from now) that starts with `prefix` after trimming, waiting at most [`BOUND`].
    fn line(&mut self, prefix: &str) -> String {
        if let Some(i) = self.rest.iter().position(|l| l.trim_start().starts_with(prefix)) {
            return self.rest.remove(i);
        }
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no line starting with {prefix:?}"));
            if line.trim_start().starts_with(prefix) {
                return line;
            }
        }
    }

    /// Waits (bounded) for the process to close its stdout, which it does by exiting, then reaps it.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + BOUND;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.rest.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the server did not exit"),
            }
        }
        self.child.wait().expect("waits")
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        let _ = self.child.stderr.take().expect("stderr").read_to_string(&mut s);
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voice-server-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn serves_until_sigterm_and_says_where() {
    let dir = temp_dir("serve");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    let config = dir.join("server.toml");
    let text = format!(
        "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n\
         [tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    std::fs::write(&config, text).expect("write config");
    let mut server = Proc::start(&["--config", config.to_str().expect("utf-8 path")]);
    let control = server.line("control (TCP)");
    let addr: std::net::SocketAddr = control.split_whitespace().last().expect("address").parse().expect("address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{control}");
    server.line("control TLS");
    let metrics = server.line("metrics (HTTP)");
    assert!(metrics.contains("/metrics") && metrics.contains("/health"), "{metrics}");
    server.line("ready");
    let killed = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().expect("kill runs");
    assert!(killed.success());
    assert!(server.wait().success(), "graceful shutdown on SIGTERM");
    server.line("stopped:");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_file_is_refused_in_words() {
    let dir = temp_dir("bad");
    let config = dir.join("server.toml");
    std::fs::write(&config, "[limits]\npackets_per_s = 0\n").expect("write config");
    let mut server = Proc::start(&["--config", config.to_str().expect("utf-8 path")]);
    assert!(!server.wait().success());
    let err = server.stderr();
    assert!(err.contains("line 2, column 17: `limits.packets_per_s`: must be at least 1"), "{err}");
    assert!(!err.contains("Invalid {"), "words, not Debug output: {err}");
    let mut missing = Proc::start(&["--config", dir.join("missing.toml").to_str().expect("utf-8 path")]);
    assert!(!missing.wait().success());
    assert!(missing.stderr().contains("missing.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hash_password_prints_an_argon2id_hash() {
    let mut p = Proc::start(&["hash-password"]);
    p.child.stdin.take().expect("stdin").write_all(b"correct horse\n").expect("writes");
    let line = p.line("$argon2id$");
    assert!(line.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{line}");
    assert!(p.wait().success());
}

/// A file that cannot be read is named once, with its cause once.
#[test]
fn a_missing_config_file_is_reported_once() {
    let dir = temp_dir("missing");
    let path = dir.join("missing.toml");
    let mut missing = Proc::start(&["--config", path.to_str().expect("utf-8 path")]);
    assert!(!missing.wait().success());
    let err = missing.stderr();
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.matches("missing.toml").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `gen-cert` writes an end-entity certificate and its key; a client that trusts the certificate file completes
/// the TLS handshake with a server configured with them; existing files are not replaced unless asked.
#[test]
fn gen_cert_writes_a_certificate_that_clients_accept() {
    use voice_relay::driver::rustls;

    let dir = temp_dir("gen-cert");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (cert_arg, key_arg) = (cert.to_str().expect("utf-8 path"), key.to_str().expect("utf-8 path"));
    let mut made = Proc::start(&["gen-cert", "localhost", "127.0.0.1", "--cert", cert_arg, "--key", key_arg]);
    let wrote = made.line("wrote");
    assert!(wrote.contains("localhost, 127.0.0.1"), "{wrote}");
    made.line("clients:");
    assert!(made.wait().success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key written").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key is its owner's only");
    }
    let mut again = Proc::start(&["gen-cert", "localhost", "--cert", cert_arg, "--key", key_arg]);
    assert!(!again.wait().success());
    assert!(again.stderr().contains("exists already (--force replaces it)"));

    let config = dir.join("server.toml");
    let text = format!(
        "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics_enabled = false\n\n\
         [tls]\ncert = {:?}\nkey = {:?}\n",
        cert_arg, key_arg
    );
    std::fs::write(&config, text).expect("write config");
    let mut server = Proc::start(&["--config", config.to_str().expect("utf-8 path")]);
    let control = server.line("control (TCP)");
    let addr: std::net::SocketAddr = control.split_whitespace().last().expect("address").parse().expect("address");
    server.line("ready");

    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&cert).expect("cert written");
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.expect("a certificate")).expect("a trust anchor");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    for name in ["localhost", "127.0.0.1"] {
        let server_name = rustls::pki_types::ServerName::try_from(name).expect("name").to_owned();
        let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(client.clone()), server_name).expect("conn");
        let mut tcp = std::net::TcpStream::connect(addr).expect("connects");
        tcp.set_read_timeout(Some(BOUND)).expect("timeout");
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap_or_else(|e| panic!("handshake as {name}: {e}"));
        }
    }
    let killed = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().expect("kill runs");
    let status = server.wait();
    let err = server.stderr();
    assert!(killed.success() && status.success(), "{status}: {err}");
    assert!(!err.contains("TLS certificate"), "no warning about a good certificate: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate made by a plain `openssl req -x509` (CA:TRUE) is explained when the server starts.
#[test]
fn a_ca_certificate_is_explained_when_the_server_starts() {
    let dir = temp_dir("ca-cert");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let signing_key = rcgen::KeyPair::generate().expect("key");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, params.self_signed(&signing_key).expect("signs").pem()).expect("write cert");
    std::fs::write(&key, signing_key.serialize_pem()).expect("write key");
    let config = dir.join("server.toml");
    let text = format!(
        "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics_enabled = false\n\n\
         [tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    std::fs::write(&config, text).expect("write config");
    let mut server = Proc::start(&["--config", config.to_str().expect("utf-8 path")]);
    server.line("ready");
    let killed = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().expect("kill runs");
    assert!(killed.success() && server.wait().success());
    let err = server.stderr();
    assert!(err.contains("CaUsedAsEndEntity") && err.contains("voice-server gen-cert"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// One control message over a blocking connection, and the next answer (bounded).
fn ask(tcp: &mut std::net::TcpStream, msg: voice_proto::control::ClientMessage) -> voice_proto::control::ServerMessage {
    use voice_proto::control::{Message, ServerMessage, decode_frame};
    let mut out = bytes::BytesMut::new();
    msg.encode(&mut out).expect("encodes");
    tcp.write_all(&out).expect("writes");
    tcp.set_read_timeout(Some(BOUND)).expect("timeout");
    let mut buf = bytes::BytesMut::new();
    loop {
        if let Some(frame) = decode_frame(&mut buf).expect("framing")
            && let Some(m) = ServerMessage::decode(&frame).expect("message")
        {
            return m;
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).expect("an answer in time");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A Ping, and the messages that come until its Pong (bounded).
fn ask_until_pong(tcp: &mut std::net::TcpStream, nonce: u64) -> voice_proto::control::ServerMessage {
    use voice_proto::control::{Message, ServerMessage, decode_frame};
    let mut out = bytes::BytesMut::new();
    voice_proto::control::ClientMessage::Ping { nonce }.encode(&mut out).expect("encodes");
    tcp.write_all(&out).expect("writes");
    let mut buf = bytes::BytesMut::new();
    loop {
        while let Some(frame) = decode_frame(&mut buf).expect("framing") {
            if let Some(m @ ServerMessage::Pong { .. }) = ServerMessage::decode(&frame).expect("message") {
                return m;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).expect("an answer in time");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn login_msg(user: &str) -> voice_proto::control::ClientMessage {
    let credential = voice_proto::control::Credential::Password("pw".into());
    voice_proto::control::ClientMessage::Login { user: user.into(), credential, client: "cli-test".into() }
}

#[test]
fn sighup_reloads_users_and_rooms_and_keeps_sessions() {
    use voice_proto::control::{ClientMessage, ServerMessage};
    let dir = temp_dir("sighup");
    let hash = voice_server::hash_password_with_params("pw", 64, 1, &mut voice_relay::SeededRng::new(1)).expect("hash");
    let config = dir.join("server.toml");
    let text = |users: &[&str], rooms: &[&str]| {
        let mut t = "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics_enabled = false\n".to_string();
        for u in users {
            t += &format!("\n[[users]]\nname = \"{u}\"\npassword_hash = \"{hash}\"\n");
        }
        for r in rooms {
            t += &format!("\n[[rooms]]\nname = \"{r}\"\n");
        }
        t
    };
    std::fs::write(&config, text(&["alice"], &["lobby"])).expect("write config");
    let mut server = Proc::start(&["--config", config.to_str().expect("utf-8 path")]);
    let control = server.line("control (TCP)");
    let addr: std::net::SocketAddr = control.split_whitespace().last().expect("address").parse().expect("address");
    server.line("ready");
    let mut alice = std::net::TcpStream::connect(addr).expect("connects");
    assert!(matches!(ask(&mut alice, login_msg("alice")), ServerMessage::LoginOk { .. }));
    let mut bob = std::net::TcpStream::connect(addr).expect("connects");
    assert!(matches!(ask(&mut bob, login_msg("bob")), ServerMessage::Error { .. }), "bob is not a user yet");

    std::fs::write(&config, text(&["alice", "bob"], &["lobby", "ops"])).expect("rewrite config");
    let hup = Command::new("kill").arg("-HUP").arg(server.child.id().to_string()).status().expect("kill runs");
    assert!(hup.success());
    let reloaded = server.line("reloaded");
    assert!(reloaded.contains("2 users, 2 rooms"), "{reloaded}");
    assert!(matches!(ask(&mut bob, login_msg("bob")), ServerMessage::LoginOk { .. }), "bob after the reload");
    assert_eq!(ask(&mut alice, ClientMessage::Ping { nonce: 9 }), ServerMessage::Pong { nonce: 9 }, "alice stays");
    let joined = ask(&mut alice, ClientMessage::Join { room: "ops".into(), password: None });
    assert!(matches!(joined, ServerMessage::RoomState { ref room, .. } if room == "ops"), "{joined:?}");

    // A broken file changes nothing and the server goes on.
    std::fs::write(&config, "[limits]\npackets_per_s = 0\n").expect("break config");
    let hup = Command::new("kill").arg("-HUP").arg(server.child.id().to_string()).status().expect("kill runs");
    assert!(hup.success());
    // (What the join sent before comes first.)
    assert_eq!(ask_until_pong(&mut alice, 10), ServerMessage::Pong { nonce: 10 });
    let killed = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().expect("kill runs");
    assert!(killed.success());
    assert!(server.wait().success(), "still a graceful shutdown");
    assert!(server.stderr().contains("not reloaded"), "the broken file is reported");
    let _ = std::fs::remove_dir_all(&dir);
}
