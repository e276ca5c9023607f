//! Mouth-to-ear latency in simulation, with a marker signal and no network delay: from the moment a sample is
//! spoken to the moment it is played (position in the played output), with sound devices whose period is a quarter
//! frame on both sides. Covers the capture device's period, frame assembly, encode, seal, relay, open, jitter
//! buffer, decode, mix and the speaker ring; not the device buffers of a real sound card.
//!
//! Run with `cargo test -p voice-client --test latency -- --nocapture` to see the figures.

mod sim;

use sim::World;
use voice_client::{ConditionerConfig, TalkMode};

/// Mean and worst latency over several markers, ms.
fn measure(room: &str) -> (f64, f64) {
    let mut w = World::new(2, room, ConditionerConfig::default(), TalkMode::Continuous);
    w.connect_all();
    let frame = w.frame_samples();
    // Markers: 5 ms bursts of 1 kHz every 300 ms, at positions that are not frame-aligned.
    let mut mic = vec![0.0f32; 48_000 * 2];
    let positions: Vec<usize> = (0..6).map(|k| 9_600 + k * 14_400 + k * 337).collect();
    for &p in &positions {
        for i in 0..240 {
            mic[p + i] = 0.5 * (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / 48_000.0).sin();
        }
    }
    let start = w.speak(0, mic);
    w.run(48_000 * 2 / frame + 10);
    let out = &w.peers[1].out[start..];
    let mut lat = Vec::new();
    for &p in &positions {
        let onset = out[p..].iter().position(|x| x.abs() > 0.05).expect("marker heard") + p;
        // Input sample j is spoken at j / 48 kHz after the first device period began; output sample i plays at
        // the end of that period + i / 48 kHz: latency = (i - j) / 48 kHz + one device period (a quarter frame).
        let ms = (onset - p) as f64 / 48.0 + (frame / 4) as f64 / 48.0;
        lat.push(ms);
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let worst = lat.iter().copied().fold(0.0, f64::max);
    eprintln!("{room}: frame {} ms, mouth-to-ear mean {mean:.1} ms, worst {worst:.1} ms ({lat:?})", frame / 48);
    (mean, worst)
}

#[test]
fn mouth_to_ear_20ms_frames() {
    let (_, worst) = measure("lobby");
    assert!(worst <= 45.0, "{worst} ms");
}

#[test]
fn mouth_to_ear_10ms_frames() {
    let (_, worst) = measure("fast");
    assert!(worst <= 30.0, "{worst} ms");
}
