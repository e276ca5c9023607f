//! CPU cost of the client's audio work, measured in the simulation (4 members all speaking, so each client
//! decodes and mixes 3 remote speakers and encodes its own microphone with noise suppression). A figure to read,
//! not a pass/fail test (it uses the wall clock); run it optimized:
//!
//! `cargo test --release -p voice-client --test cpu -- --ignored --nocapture`

mod sim;

use sim::World;
use voice_client::{ConditionerConfig, MediaConfig, TalkMode};
use voice_sim::audio::speech_like;

#[test]
#[ignore = "a measurement: run it with --release"]
fn cpu_per_speaker_and_for_capture() {
    let mut media = MediaConfig::default();
    media.capture.noise_suppression = true;
    let mut w = World::with_media(4, "lobby", ConditionerConfig::default(), TalkMode::Continuous, &media);
    w.connect_all();
    let seconds = 20;
    for i in 0..4 {
        w.speak(i, speech_like(48_000 * seconds, 100 + i as u64));
    }
    for p in &mut w.peers {
        p.capture_time = std::time::Duration::ZERO;
        p.mix_time = std::time::Duration::ZERO;
    }
    w.run(seconds * 50);
    for (i, p) in w.peers.iter().enumerate() {
        let capture = p.capture_time.as_secs_f64() / seconds as f64 * 100.0;
        let per_speaker = p.mix_time.as_secs_f64() / seconds as f64 * 100.0 / 3.0;
        eprintln!(
            "{}: capture + NS + encode {capture:.2} % of a core; decode + mix {per_speaker:.2} % per remote speaker",
            sim::NAMES[i]
        );
    }
}
