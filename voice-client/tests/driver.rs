//! The threaded `Client` over real loopback sockets against voice-relay's tokio driver, with the file audio
//! backend: alice's microphone is a WAV file of speech-like audio, bob's speaker writes a WAV file. Every wait is
//! bounded; no timing is asserted (a loaded machine may lose a frame or two, which the checks tolerate).
#![allow(
    clippy::disallowed_methods,
    reason = "the threaded client on real sockets: waits are bounded by wall-clock deadlines"
)]
#![cfg(feature = "tokio")]

mod loopback;
mod sim;

use std::time::{Duration, Instant};

use loopback::{TestRelay, temp_dir};
use voice_client::{FileAudio, read_wav, write_wav};

#[test]
fn two_clients_talk_over_loopback_with_file_audio() {
    let relay = TestRelay::start();
    let dir = temp_dir("driver");
    let mic = dir.join("alice-mic.wav");
    let speaker = dir.join("bob-speaker.wav");
    // One second of silence (while connecting), then three seconds of speech.
    let mut signal = vec![0.0f32; 48_000];
    signal.extend(voice_sim::audio::speech_like(48_000 * 3, 9));
    write_wav(&mic, voice_client::AudioFormat::MONO_48K, &signal).unwrap();

    let bob = relay.client("bob", "lobby", Box::new(FileAudio::new(None, Some(speaker.clone())).unwrap()));
    let alice = relay.client("alice", "lobby", Box::new(FileAudio::new(Some(mic), None).unwrap()));

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
    drop(relay);

    assert!(stats.speakers.iter().any(|s| s.packets > 100), "bob received alice's audio: {stats:?}");
    let (_, played) = read_wav(&speaker).unwrap();
    let speech = &signal[48_000..];
    let energy_in = sim::energy(speech);
    let energy_out = sim::energy(&played);
    eprintln!("energy in {energy_in:.1}, played {energy_out:.1}");
    assert!(energy_out > energy_in * 0.3, "bob played alice's speech");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A media setting the pipelines refuse fails `connect` (the media thread reports it) and leaves no thread behind.
#[test]
fn a_refused_media_setting_fails_connect() {
    let relay = TestRelay::start();
    let session = voice_client::SessionConfig::new(
        relay.tcp,
        "alice",
        voice_proto::control::Credential::Password("pw-alice".into()),
    );
    let mut media = voice_client::MediaConfig::default();
    media.capture.gain = Some(f32::NAN);
    let audio = Box::new(FileAudio::new(None, None).unwrap());
    let config = voice_client::ClientConfig { session, media, audio, seed: 1, tls: None };
    let err = voice_client::Client::connect(config).expect_err("a NaN gain is refused");
    assert!(matches!(err, voice_client::Error::Codec(_)), "{err}");
}
