//! End to end on loopback: the server application from a config file (in-process: `voice_server::Server`, what
//! the `voice-server` binary runs; the binary itself is tested in voice-server), headless `voice-client`
//! processes. Speech goes in at one client and comes out at another; chat reaches the room; a killed client is
//! removed from the room; a client whose control connection is cut resumes without leaving; with `[tls]` in the
//! server's config, clients given its certificate (on the command line, or saved in a bookmark) log in and chat
//! over TLS. Every wait is bounded.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Proc, speech_match, start_client, start_client_in, start_server, temp_dir};
use voice_client::{AudioFormat, read_wav, write_wav};

#[test]
fn speech_and_chat_reach_the_room() {
    let dir = temp_dir("speech");
    let (server, addr) = start_server(&dir, &["alice", "bob"], "");

    // Half a second of silence (the client connects while its microphone already runs), then 3 s of speech.
    let speech = voice_sim::audio::speech_like(3 * 48_000, 7);
    let mut mic = vec![0.0; 24_000];
    mic.extend_from_slice(&speech);
    let mic_path = dir.join("alice-mic.wav");
    let format = AudioFormat { rate_hz: 48_000, channels: 1 };
    write_wav(&mic_path, format, &mic).expect("write mic WAV");
    let heard_path = dir.join("bob-heard.wav");

    let mut bob = start_client("bob", addr, &["--output", heard_path.to_str().expect("utf-8 path"), "--seconds", "30"]);
    bob.expect_line("media-ready", |l| l == "media-ready");
    let mut alice = start_client(
        "alice",
        addr,
        &["--input", mic_path.to_str().expect("utf-8 path"), "--talk", "continuous", "--seconds", "5"],
    );
    alice.expect_line("media-ready", |l| l == "media-ready");
    alice.send("/chat hello from alice");
    bob.expect_line("alice's chat", |l| l == "chat alice: hello from alice");
    bob.expect_line("alice speaking", |l| l == "speaking alice on");
    bob.expect_line("alice leaving", |l| l == "member-left alice");
    assert!(alice.wait(Duration::from_secs(20)).success());
    bob.send("/quit");
    assert!(bob.wait(Duration::from_secs(20)).success());

    let (fmt, heard) = read_wav(&heard_path).expect("bob's WAV");
    assert_eq!((fmt.rate_hz, fmt.channels), (48_000, 1), "the file backend writes 48 kHz mono");
    let score = speech_match(&speech, &heard);
    eprintln!("speech match alice → bob: {score:.3}");
    assert!(score > 0.6, "alice's speech should come out at bob (match {score:.3})");

    let relay = server.stop();
    assert_eq!(relay.counters().logins, 2, "both clients logged in with their passwords");
}

#[test]
fn clients_reach_a_tls_server_with_its_certificate() {
    let dir = temp_dir("tls");
    let (cert, _key, tls) = support::tls_files(&dir);
    let (server, addr) = start_server(&dir, &["alice", "bob"], &tls);
    let cert_arg = cert.to_str().expect("utf-8 path");
    // Bob gives the certificate on the command line and saves it with a bookmark; alice uses that bookmark only.
    let bob_args = ["--ca-cert", cert_arg, "--tls-name", "localhost", "--save-bookmark", "sec", "--seconds", "20"];
    let mut bob = start_client_in(&dir, "bob", addr, &bob_args);
    bob.expect_line("media-ready", |l| l == "media-ready");
    let mut alice = start_client_in(&dir, "alice", addr, &["--bookmark", "sec", "--seconds", "20"]);
    alice.expect_line("media-ready", |l| l == "media-ready");
    alice.send("/chat over tls");
    bob.expect_line("alice's chat", |l| l == "chat alice: over tls");
    alice.send("/quit");
    bob.send("/quit");
    assert!(alice.wait(Duration::from_secs(20)).success());
    assert!(bob.wait(Duration::from_secs(20)).success());
    server.stop();
}

/// A TCP proxy whose connections the test can cut.
struct CutProxy {
    addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl CutProxy {
    fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let live = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::clone(&live);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(to) else { break };
                let pipes = [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())];
                for (from, into) in pipes {
                    let (Ok(mut from), Ok(mut into)) = (from, into) else { continue };
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || into.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = into.shutdown(Shutdown::Both);
                    });
                }
                conns.lock().expect("proxy list").extend([client, server]);
            }
        });
        Self { addr, live }
    }

    /// Cuts every connection through the proxy (both sides see the connection close).
    fn cut(&self) {
        for s in self.live.lock().expect("proxy list").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn killed_client_leaves_the_room_and_a_cut_connection_resumes() {
    let dir = temp_dir("churn");
    let (_server, addr) = start_server(&dir, &["alice", "bob", "carol"], "resume_grace_s = 3\n");
    let mut bob = start_client("bob", addr, &["--seconds", "40"]);
    bob.expect_line("media-ready", |l| l == "media-ready");

    // Carol's control connection goes through a proxy that cuts it; her audio goes straight to the relay.
    let proxy = CutProxy::start(addr);
    let mut carol = start_client("carol", proxy.addr, &["--seconds", "40"]);
    carol.expect_line("media-ready", |l| l == "media-ready");
    bob.expect_line("carol joining", |l| l == "member-joined carol");
    proxy.cut();
    carol.expect_line("connection lost", |l| l == "connection-lost");
    carol.expect_line("resumed", |l| l == "resumed");
    carol.send("/chat still here");
    bob.expect_line("carol's chat after the resume", |l| l == "chat carol: still here");

    let mut alice = start_client("alice", addr, &["--seconds", "40"]);
    alice.expect_line("media-ready", |l| l == "media-ready");
    bob.expect_line("alice joining", |l| l == "member-joined alice");
    alice.kill();
    bob.expect_line("alice removed after the resume grace", |l| l == "member-left alice");
    assert!(
        !bob.seen.iter().any(|l| l == "member-left carol"),
        "carol resumed: she never left the room ({:?})",
        bob.seen
    );
    bob.send("/quit");
    carol.send("/quit");
    assert!(bob.wait(Duration::from_secs(10)).success());
    assert!(carol.wait(Duration::from_secs(10)).success());
    drop::<Proc>(alice);
}
