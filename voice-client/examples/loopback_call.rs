//! A call on this machine: a relay on loopback (voice-relay's tokio driver), alice talking from a WAV file and bob
//! listening into another, both threaded `Client`s. Prints what happened and bob's view of alice's stream.
//!
//! `cargo run -p voice-client --example loopback_call` (writes `alice.wav` and `bob-heard.wav` into the system's
//! temporary directory).
#![allow(clippy::disallowed_methods, reason = "a program: the relay core is given the real clock at start")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voice_client::{AudioFormat, Client, ClientConfig, Credential, Event, FileAudio, MediaConfig, SessionConfig};
use voice_client::{TalkMode, write_wav};
use voice_proto::control::ChannelConfig;
use voice_relay::driver::Server;
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SystemRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The relay: two users, one room (without DTX: a steady tone would count as background and be skipped), the
    // operating system's randomness for tokens and keys.
    let auth = MemoryAuthenticator::new().with_user("alice", "alice-pw").with_user("bob", "bob-pw");
    let room = RoomConfig::new("lobby").with_config(ChannelConfig { dtx: false, ..ChannelConfig::default() });
    let config = RelayConfig { rooms: vec![room], ..RelayConfig::default() };
    let unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let relay = Relay::new(config, Box::new(SystemRng::new()), Instant::now(), unix_ms)?;
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let server = Server::bind(relay, auth, any, any)?;
    let (tcp, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let relay_thread = server.spawn()?;
    println!("relay on {tcp}");

    // Alice's microphone: two seconds of a 220 Hz tone with a few harmonics.
    let dir = std::env::temp_dir();
    let (mic, heard) = (dir.join("alice.wav"), dir.join("bob-heard.wav"));
    let tone: Vec<f32> = (0..96_000)
        .map(|i| {
            let t = i as f32 / 48_000.0;
            (1..=4).map(|k| (std::f32::consts::TAU * 220.0 * k as f32 * t).sin() / k as f32).sum::<f32>() * 0.2
        })
        .collect();
    write_wav(&mic, AudioFormat::MONO_48K, &tone)?;

    // Both use push-to-talk: alice holds her key down for the whole call, bob only listens.
    let connect = |user: &str, audio: FileAudio, mode: TalkMode| {
        let session = SessionConfig::new(tcp, user, Credential::Password(format!("{user}-pw")))
            .with_room("lobby")
            .with_talk_mode(mode);
        Client::connect(ClientConfig {
            session,
            media: MediaConfig::default(),
            audio: Box::new(audio),
            seed: 1,
            tls: None,
        })
    };
    let bob = connect("bob", FileAudio::new(None, Some(heard.clone()))?, TalkMode::PushToTalk)?;
    let alice = connect("alice", FileAudio::new(Some(mic), None)?, TalkMode::PushToTalk)?;
    alice.set_ptt(true)?;

    // Three seconds of the call: print the listener's events as they come.
    let mut names = std::collections::HashMap::new();
    let end = Instant::now() + Duration::from_secs(3);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match bob.next_event(left) {
            Some(Event::Joined { room, members, .. }) => {
                println!("bob joined {room} ({} in it)", members.len());
                names.extend(members.into_iter().map(|m| (m.id, m.name)));
            }
            Some(Event::MemberJoined(m)) => {
                println!("{} joined", m.name);
                names.insert(m.id, m.name);
            }
            Some(Event::Speaking { id, speaking }) => {
                let name = names.get(&id).map_or("?", String::as_str);
                println!("{name} {}", if speaking { "speaks" } else { "is quiet" });
            }
            Some(Event::MediaReady) => println!("bob's audio flows"),
            Some(_) | None => {}
        }
    }
    for s in bob.stats().speakers {
        println!(
            "bob heard {}: {} packets, {} lost, {} concealed, playout delay {:?}",
            names.get(&s.id).map_or("?", String::as_str),
            s.packets,
            s.lost,
            s.concealed,
            s.current_delay
        );
    }
    alice.shutdown()?;
    bob.shutdown()?;
    shutdown.shutdown();
    let _ = relay_thread.join();
    println!("what bob heard: {}", heard.display());
    Ok(())
}
