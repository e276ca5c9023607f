//! Shared setup of the loopback tests: voice-relay's tokio driver on 127.0.0.1 with rooms `lobby` (20 ms frames)
//! and `fast` (10 ms frames), and threaded `Client`s that log in to it. Every wait is bounded.
#![allow(
    clippy::disallowed_methods,
    reason = "the threaded client and relay on loopback sockets: waits are bounded by wall-clock deadlines"
)]
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use voice_client::{AudioBackend, Client, ClientConfig, ControlTls, Event, MediaConfig, SessionConfig, TalkMode};
use voice_proto::control::{ChannelConfig, Credential};
use voice_relay::driver::Server;
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SeededRng};

pub const BOUND: Duration = Duration::from_secs(20);

/// A running relay; stopped on drop.
pub struct TestRelay {
    pub tcp: SocketAddr,
    /// The clients' TLS settings when the relay serves TLS.
    tls: Option<ControlTls>,
    shutdown: Option<voice_relay::driver::ShutdownHandle>,
    join: Option<Box<dyn FnOnce()>>,
}

impl TestRelay {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A relay serving its control connections over TLS with a fresh self-signed certificate for `localhost`
    /// (PEM files written into `dir`); its clients trust exactly that certificate.
    pub fn start_tls(dir: &std::path::Path) -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let (cert, key) = (dir.join("relay-cert.pem"), dir.join("relay-key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let server_tls = voice_relay::driver::server_config_from_pem(&cert, &key).expect("usable certificate");
        let mut relay = Self::start_with(Some(server_tls));
        relay.tls = Some(ControlTls::with_ca_file("localhost", &cert).expect("trusts the certificate"));
        relay
    }

    fn start_with(tls: Option<std::sync::Arc<voice_relay::driver::rustls::ServerConfig>>) -> Self {
        let mut auth = MemoryAuthenticator::new();
        for name in ["alice", "bob", "carol"] {
            auth = auth.with_user(name, format!("pw-{name}"));
        }
        let rooms = vec![
            RoomConfig::new("lobby"),
            RoomConfig::new("fast").with_config(ChannelConfig { frame_ms: 10, ..ChannelConfig::default() }),
            // Every frame is sent, silence and steady tones included (no DTX): frame counts are exact.
            RoomConfig::new("steady").with_config(ChannelConfig { dtx: false, ..ChannelConfig::default() }),
        ];
        let relay = Relay::new(
            RelayConfig { rooms, ..RelayConfig::default() },
            Box::new(SeededRng::new(3)),
            Instant::now(),
            1_763_800_000_000,
        )
        .unwrap();
        // Port 0: the driver announces the port it bound in LoginOk.
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(relay, auth, any, any).expect("relay binds");
        if let Some(tls) = tls {
            server = server.with_tls(tls);
        }
        let tcp = server.tcp_addr();
        let shutdown = server.shutdown_handle();
        let thread = server.spawn().expect("relay thread");
        Self { tcp, tls: None, shutdown: Some(shutdown), join: Some(Box::new(move || drop(thread.join()))) }
    }

    /// A client of `user` in `room`, talking continuously, waited for until its media flows.
    pub fn client(&self, user: &str, room: &str, audio: Box<dyn AudioBackend>) -> Client {
        self.client_via(self.tcp, user, room, audio)
    }

    /// As [`TestRelay::client`], with the control connection to `tcp` (a proxy in front of the relay).
    pub fn client_via(&self, tcp: SocketAddr, user: &str, room: &str, audio: Box<dyn AudioBackend>) -> Client {
        let session = SessionConfig::new(tcp, user, Credential::Password(format!("pw-{user}")))
            .with_room(room)
            .with_talk_mode(TalkMode::Continuous);
        let tls = self.tls.clone();
        let client =
            Client::connect(ClientConfig { session, media: MediaConfig::default(), audio, seed: 11, tls }).unwrap();
        wait_for(&client, "media", |e| *e == Event::MediaReady);
        client
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            s.shutdown();
        }
        if let Some(join) = self.join.take() {
            join();
        }
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voice-client-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn wait_for(client: &Client, what: &str, mut pred: impl FnMut(&Event) -> bool) {
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

impl TestRelay {
    /// Alice (microphone: a WAV of a 440 Hz tone lasting `seconds`, written into `dir`) and bob (silent, plays
    /// nothing to a file), both in `lobby` with media flowing; returns `(alice, bob)`.
    pub fn tone_pair(&self, dir: &std::path::Path, seconds: usize) -> (Client, Client) {
        self.tone_pair_via(dir, seconds, "lobby", self.tcp)
    }

    /// As [`TestRelay::tone_pair`], in `room`, with alice's control connection to `alice_tcp`.
    pub fn tone_pair_via(
        &self,
        dir: &std::path::Path,
        seconds: usize,
        room: &str,
        alice_tcp: SocketAddr,
    ) -> (Client, Client) {
        let mic = dir.join("alice-mic.wav");
        let tone: Vec<f32> = (0..48_000 * seconds)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect();
        voice_client::write_wav(&mic, voice_client::AudioFormat::MONO_48K, &tone).unwrap();
        let bob = self.client("bob", room, Box::new(voice_client::FileAudio::new(None, None).unwrap()));
        let alice =
            self.client_via(alice_tcp, "alice", room, Box::new(voice_client::FileAudio::new(Some(mic), None).unwrap()));
        (alice, bob)
    }
}

/// Handles events (none needed) for `d`.
pub fn run_for(client: &Client, d: Duration) {
    let deadline = Instant::now() + d;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let _ = client.next_event(left.min(Duration::from_millis(100)));
    }
}
