//! Echo cancellation wired through `Media` (feature `aec`): what a client plays is the far-end reference of its
//! capture pipeline. In simulation (relay core + sessions, virtual clock): bob's microphone hears his own
//! loudspeaker (40 or 60 ms later — device buffers and air —, −6 dB) and nothing else; alice talks. Without cancellation alice hears herself
//! back from bob; with it, that echo is attenuated. Deterministic; the figures are printed.
#![cfg(feature = "aec")]

mod sim;

use sim::{World, energy};
use voice_client::{ConditionerConfig, MediaConfig, TalkMode};
use voice_codec::CaptureConfig;
use voice_sim::audio::speech_like;

/// Energy of alice's own voice coming back to her from bob, over the last 2 s of 6 s of talk, with the echo
/// reaching bob's microphone `delay` frame periods after he played it; and the energy of what she said then.
fn echo_returned(cancel: bool, delay: usize) -> (f64, f64) {
    let (heard, said, _) = run(cancel, delay);
    (heard, said)
}

/// [`echo_returned`], plus bob's mean wall-clock time per `Media::capture` call (printed, never asserted).
fn run(cancel: bool, delay: usize) -> (f64, f64, std::time::Duration) {
    let media = MediaConfig {
        capture: CaptureConfig { echo_cancellation: cancel, ..CaptureConfig::default() },
        ..MediaConfig::default()
    };
    let mut w = World::with_media(2, "lobby", ConditionerConfig::default(), TalkMode::Continuous, &media);
    w.connect_all();
    let talk = speech_like(48_000 * 6, 11);
    let said = energy(&talk[48_000 * 4..]);
    w.speak(0, talk);
    let fs = w.frame_samples();
    for _ in 0..300 {
        w.tick();
        // Bob's loudspeaker into bob's microphone: each frame played comes back at half amplitude `delay` frame
        // periods later.
        let bob = &mut w.peers[1];
        let played: Vec<f32> = bob.out[bob.out.len() - fs..].iter().map(|s| s * 0.5).collect();
        bob.mic.resize(bob.mic_pos + (delay - 1) * fs, 0.0);
        bob.mic.extend(played);
    }
    let alice_heard = &w.peers[0].out;
    let tail = &alice_heard[alice_heard.len() - 48_000 * 2..];
    (energy(tail), said, w.peers[1].capture_time / 300)
}

/// What echo cancellation adds to the capture side: a measurement, not a check (run it with
/// `cargo test --release -p voice-client --features aec --test echo -- --ignored --nocapture`).
#[test]
#[ignore = "CPU measurement: prints figures, asserts nothing"]
fn capture_time_with_and_without_echo_cancellation_is_printed() {
    let (_, _, off) = run(false, 2);
    let (_, _, on) = run(true, 2);
    eprintln!(
        "bob's capture per 20 ms frame (gain, Opus encode; no noise suppression): {off:?} without, {on:?} with echo cancellation"
    );
}

#[test]
fn echo_cancellation_attenuates_what_a_loudspeaker_sends_back() {
    for delay in [2, 3] {
        let (off, said) = echo_returned(false, delay);
        let (on, _) = echo_returned(true, delay);
        let return_off = 10.0 * (off / said).log10();
        let return_on = 10.0 * (on / said).log10();
        eprintln!(
            "echo {} ms: alice's voice back from bob (last 2 s, relative to what she said) {return_off:.1} dB \
             without echo cancellation, {return_on:.1} dB with it ({:.1} dB less)",
            delay * 20,
            return_off - return_on
        );
        assert!(return_off > -20.0, "without cancellation the echo comes back: {return_off:.1} dB");
        assert!(return_off - return_on > 20.0, "echo cancellation removes at least 20 dB");
    }
}
