//! The threaded `Client` over real loopback sockets against voice-relay's tokio driver, with the file audio
//! backend: alice's microphone is a WAV file of speech-like audio, bob's speaker writes a WAV file. Every wait is
//! bounded; no timing is asserted (a loaded machine may lose a frame or two, which the checks tolerate).
#![cfg(feature = "tokio")]

mod sim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use voice_client::{Client, ClientConfig, Event, FileAudio, MediaConfig, SessionConfig, TalkMode, read_wav, write_wav};
use voice_proto::control::Credential;
use voice_relay::driver::Server;
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SeededRng};

const BOUND: Duration = Duration::from_secs(20);

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voice-client-driver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn wait_for(client: &Client, what: &str, mut pred: impl FnMut(&Event) -> bool) {
    let deadline = Instant::now() + BOUND;
    while Instant::now() < deadline {
        if let Some(e) = client.next_event(Duration::from_millis(100)) {
            if pred(&e) {
                return;
            }
        }
    }
    panic!("no {what} within {BOUND:?}");
}

#[test]
fn two_clients_talk_over_loopback_with_file_audio() {
    // The relay tells clients its UDP port in LoginOk: pick a free one first.
    let udp_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let auth = MemoryAuthenticator::new().with_user("alice", "pw-alice").with_user("bob", "pw-bob");
    let relay = Relay::new(
        RelayConfig { udp_port, rooms: vec![RoomConfig::new("lobby")], ..RelayConfig::default() },
        Box::new(auth),
        Box::new(SeededRng::new(3)),
        Instant::now(),
        1_763_800_000_000,
    )
    .unwrap();
    let udp: SocketAddr = ([127, 0, 0, 1], udp_port).into();
    let server = Server::bind(relay, udp, "127.0.0.1:0".parse().unwrap()).expect("relay binds");
    let tcp = server.tcp_addr();
    let shutdown = server.shutdown_handle();
    let running = server.spawn().expect("relay thread");

    let dir = temp_dir();
    let mic = dir.join("alice-mic.wav");
    let speaker = dir.join("bob-speaker.wav");
    // One second of silence (while connecting), then three seconds of speech.
    let mut signal = vec![0.0f32; 48_000];
    signal.extend(voice_codec::harness::speech_like(48_000 * 3, 9));
    write_wav(&mic, voice_client::AudioFormat::MONO_48K, &signal).unwrap();

    let config = |user: &str, audio: FileAudio| ClientConfig {
        session: SessionConfig::new(tcp, user, Credential::Password(format!("pw-{user}")))
            .with_room("lobby")
            .with_talk_mode(TalkMode::Continuous),
        media: MediaConfig::default(),
        audio: Box::new(audio),
        seed: 11,
    };
    let bob = Client::connect(config("bob", FileAudio::new(None, Some(speaker.clone())).unwrap())).unwrap();
    wait_for(&bob, "bob's media", |e| *e == Event::MediaReady);
    let alice = Client::connect(config("alice", FileAudio::new(Some(mic), None).unwrap())).unwrap();
    wait_for(&alice, "alice's media", |e| *e == Event::MediaReady);

    // Let alice's file play out (bounded by its length), then stop everything.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let _ = alice.next_event(Duration::from_millis(500));
        if std::env::var_os("VC_DEBUG").is_some() {
            eprintln!("{:?}", bob.stats().speakers);
        }
    }
    let stats = bob.stats();
    eprintln!("bob: {stats:?}");
    eprintln!("alice: {:?}", alice.stats());
    eprintln!("ring losses: alice {:?}, bob {:?}", alice.ring_losses(), bob.ring_losses());
    alice.shutdown().unwrap();
    bob.shutdown().unwrap();
    shutdown.shutdown();
    let _ = running.join();

    assert!(stats.speakers.iter().any(|s| s.packets > 100), "bob received alice's audio: {stats:?}");
    let (_, played) = read_wav(&speaker).unwrap();
    let speech = &signal[48_000..];
    let energy_in = sim::energy(speech);
    let energy_out = sim::energy(&played);
    eprintln!("energy in {energy_in:.1}, played {energy_out:.1}");
    assert!(energy_out > energy_in * 0.3, "bob played alice's speech");
    let _ = std::fs::remove_dir_all(&dir);
}
