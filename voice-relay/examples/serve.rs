//! A relay serving a few users on loopback: the relay core with the operating system's randomness, its tokio
//! driver, and a summary of its counters every five seconds. Connect clients to the printed address (for example
//! `voice-client --server ADDR --user alice --password alice-pw`); stop with Ctrl-C or after `SECONDS`.
//!
//! `cargo run -p voice-relay --example serve [-- SECONDS]`
#![allow(clippy::disallowed_methods, reason = "a program: it starts the relay core on the real clock")]

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use voice_relay::driver::Server;
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SystemRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|_| format!("not a number of seconds: {s}"))?,
        None => 3_600,
    };
    let auth = ["alice", "bob", "carol"]
        .iter()
        .fold(MemoryAuthenticator::new(), |a, name| a.with_user(*name, format!("{name}-pw")));
    let config =
        RelayConfig { rooms: vec![RoomConfig::new("lobby"), RoomConfig::new("games")], ..RelayConfig::default() };
    let unix_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let relay = Relay::new(config, Box::new(SystemRng::new()), Instant::now(), unix_ms)?;
    // The control port (TCP) and the media port (UDP) on loopback; port 0 lets the system choose.
    let (tcp, udp): (SocketAddr, SocketAddr) = ("127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?);
    let server = Server::bind(relay, auth, udp, tcp)?;
    println!(
        "relay: control {} (TCP), media {} (UDP); users alice, bob, carol (password NAME-pw)",
        server.tcp_addr(),
        server.udp_addr()
    );
    let (stats, shutdown) = (server.stats(), server.shutdown_handle());
    let thread = server.spawn()?;
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end && !thread.is_finished() {
        std::thread::sleep(Duration::from_secs(5).min(end.saturating_duration_since(Instant::now())));
        let (received, sent) = (stats.datagrams_received.load(Relaxed), stats.datagrams_sent.load(Relaxed));
        println!("{received} datagrams received, {sent} sent");
    }
    shutdown.shutdown();
    match thread.join() {
        Ok(Ok(relay)) => println!("stopped: {:?}", relay.counters()),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err("the relay thread panicked".into()),
    }
    Ok(())
}
