//! The control connection drops mid-talk and stays unreachable for 5 s: audio keeps flowing over UDP the whole
//! time, and the session resumes on its own (no new login). Through voice-relay's tokio driver on loopback, with
//! TLS, and a TCP proxy between alice and the relay that can be cut: while cut it closes every connection it
//! carries and holds new ones open without answering (a black hole: each TLS handshake waits for its timeout).
#![cfg(feature = "tokio")]
#![allow(
    clippy::disallowed_methods,
    reason = "the threaded client and relay on loopback sockets: waits are bounded by wall-clock deadlines"
)]

mod loopback;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loopback::{TestRelay, run_for, temp_dir, wait_for};
use voice_client::Event;

/// A TCP proxy to `to` that can be cut.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Both ends of every connection carried or held (to close them when cut, and at the end).
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (c, o) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let mut held = o.lock().unwrap();
                held.push(client.try_clone().unwrap());
                if c.load(Ordering::SeqCst) {
                    continue; // a black hole: accepted, never answered
                }
                let Ok(server) = TcpStream::connect(to) else { continue };
                held.push(server.try_clone().unwrap());
                for (mut from, mut into) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
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
            }
        });
        Self { addr, cut, open }
    }

    /// Closes every connection; until `restore`, new ones are held unanswered.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        // The held connections end: their handshakes fail now rather than at their timeout.
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn audio_flows_while_the_control_connection_is_down_and_the_session_resumes() {
    let dir = temp_dir("reconnect");
    let relay = TestRelay::start_tls(&dir);
    let proxy = Proxy::start(relay.tcp);
    let (alice, bob) = relay.tone_pair_via(&dir, 14, "steady", proxy.addr);
    run_for(&bob, Duration::from_secs(2));
    let before = alice.stats().packets_sent;
    proxy.cut();
    wait_for(&alice, "connection lost", |e| *e == Event::ConnectionLost);
    run_for(&bob, Duration::from_secs(5));
    let during = alice.stats().packets_sent - before;
    proxy.restore();
    let start = Instant::now();
    let mut events = Vec::new();
    wait_for(&alice, "resume", |e| {
        events.push(e.clone());
        *e == Event::Resumed
    });
    eprintln!("resumed {:?} after the link came back; alice's events meanwhile: {events:?}", start.elapsed());
    assert!(!events.iter().any(|e| matches!(e, Event::LoggedIn { .. })), "no new login: {events:?}");
    run_for(&bob, Duration::from_secs(1));
    let stats = bob.stats();
    let heard = stats.speakers.iter().find(|s| s.packets > 0).expect("bob hears alice");
    eprintln!(
        "alice sent {} packets while her control connection was down (5 s); bob: {} received, {} lost ({:.2} %)",
        during, heard.packets, heard.lost, heard.loss_pct
    );
    // 50 frames a second went out all the time (the network thread never waited for the connection)...
    assert!(during >= 245, "alice sent {during} packets in 5 s without a control connection");
    // ... and arrived: at least 99 % of alice's frames over the whole call.
    assert!(heard.loss_pct <= 1.0, "bob lost {:.2} % of alice's frames", heard.loss_pct);
    alice.shutdown().unwrap();
    bob.shutdown().unwrap();
}
