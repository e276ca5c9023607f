//! DTX on the sending side and comfort noise on the receiving side.
//!
//! Measured (`cargo test -p voice-codec --test dtx -- --nocapture`): with `dtx: true` and the default complexity 5,
//! white background noise at −45 / −40 / −35 dBFS in a 4 s pause between two talkspurts was sent at 10.5 / 36.5 /
//! 45.9 packets/s before (libopus' own DTX only takes near-silence; 7.8–8.9 packets/s with noise suppression), and
//! at 0 packets/s now (after a 200 ms hangover), with the same share of speech frames sent.

use voice_codec::{CaptureConfig, CaptureFrame, CapturePipeline, OpusSettings, PlaybackConfig, PlaybackPipeline};
use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::Rng;
use voice_sim::audio::{encode_all, speech_like};

fn noise(n: usize, rms: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let a = rms * 3f32.sqrt();
    (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * a).collect()
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|s| s * s).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// 2 s speech, 4 s background only, 2 s speech, all over background noise of `noise_rms`.
fn speech_pause_speech(noise_rms: f32, seed: u64) -> Vec<f32> {
    let mut x = noise(48_000 * 8, noise_rms, seed);
    let speech = speech_like(48_000 * 2, seed);
    for (i, s) in speech.iter().enumerate() {
        x[i] += s;
        x[48_000 * 6 + i] += s;
    }
    x
}

/// Per 20 ms frame: whether it was sent.
fn sent_frames(config: CaptureConfig, signal: &[f32]) -> Vec<bool> {
    let mut cap = CapturePipeline::new(config).unwrap();
    let mut sent = Vec::new();
    for chunk in signal.chunks(960) {
        cap.push(chunk).unwrap();
        while let Some(f) = cap.poll_frame().unwrap() {
            sent.push(matches!(f, CaptureFrame::Packet { .. }));
        }
    }
    sent
}

#[test]
fn dtx_stops_sending_background_between_talkspurts() {
    for noise_suppression in [false, true] {
        for noise_db in [-45.0f32, -40.0, -35.0] {
            let signal = speech_pause_speech(10f32.powf(noise_db / 20.0), 3);
            let config = CaptureConfig {
                opus: OpusSettings { dtx: true, ..OpusSettings::default() },
                noise_suppression,
                ..CaptureConfig::default()
            };
            let sent = sent_frames(config, &signal);
            // The pause is frames 100..300; skip its first 300 ms (hangovers).
            let pause = &sent[115..300];
            let pause_rate = pause.iter().filter(|&&s| s).count() as f32 / (pause.len() as f32 * 0.02);
            let speech = sent[..100].iter().chain(&sent[300..400]).filter(|&&s| s).count();
            println!(
                "noise {noise_db} dBFS, noise suppression {noise_suppression}: {pause_rate:.1} packets/s in the pause, \
                 {speech}/200 speech frames sent"
            );
            assert!(pause_rate <= 5.0, "{pause_rate} packets/s in the pause");
            // The speech is voiced about three quarters of the time; pauses in it may be DTX'd too.
            assert!(speech >= 120, "{speech}");
        }
    }
}

fn play(p: &mut PlaybackPipeline, action: Action<&[u8]>, out: &mut Vec<f32>) {
    let r = p.play(&Playout { action, stretch: Stretch::None }).unwrap();
    let start = out.len();
    out.resize(start + r.samples, 0.0);
    p.read(&mut out[start..]);
}

/// Plays `packets` then `silence_slots` silent slots; returns the output.
fn talkspurt_then_silence(config: PlaybackConfig, packets: &[Vec<u8>], silence_slots: usize) -> Vec<f32> {
    let mut p = PlaybackPipeline::new(config).unwrap();
    let mut out = Vec::new();
    for (i, pk) in packets.iter().enumerate() {
        play(&mut p, Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: pk.as_slice() }, &mut out);
    }
    for _ in 0..silence_slots {
        play(&mut p, Action::Silence { samples: 960 }, &mut out);
    }
    out
}

#[test]
fn comfort_noise_matches_the_background_after_a_talkspurt() {
    // Speech over low-passed background noise at about −45 dBFS.
    let mut bg = noise(48_000 * 2, 0.008, 5);
    for i in 1..bg.len() {
        bg[i] = 0.7 * bg[i - 1] + 0.3 * bg[i];
    }
    let mut signal = speech_like(48_000 * 2, 8);
    for (s, b) in signal.iter_mut().zip(&bg) {
        *s += b;
    }
    // The talkspurt ends in 300 ms of background only (as after a VAD hangover).
    signal[48_000 * 2 - 14_400..].copy_from_slice(&bg[48_000 * 2 - 14_400..]);
    let packets: Vec<Vec<u8>> = encode_all(&signal, OpusSettings::default()).unwrap().into_iter().flatten().collect();
    let out = talkspurt_then_silence(PlaybackConfig::default(), &packets, 50);
    let end = packets.len() * 960;
    let decoded_bg = &out[end - 9_600..end];
    let cn = &out[end + 4_800..];
    let tilt = |x: &[f32]| rms(&x.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()) / rms(x);
    let level_db = 20.0 * (rms(cn) / rms(decoded_bg)).log10();
    println!(
        "decoded background rms {:.4}, comfort noise rms {:.4} ({level_db:+.1} dB); spectral tilt {:.3} vs {:.3}",
        rms(decoded_bg),
        rms(cn),
        tilt(decoded_bg),
        tilt(cn)
    );
    assert!(level_db.abs() <= 4.0, "comfort noise {level_db:+.1} dB off the background");
    assert!((tilt(cn) / tilt(decoded_bg) - 1.0).abs() < 0.5, "spectrum does not match");
    // No step into the silence, and the noise fades in: the first 10 ms are quieter than the steady state.
    let step = (out[end] - out[end - 1]).abs();
    let max_step = out[end - 9_600..end].windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0f32, f32::max);
    assert!(step <= max_step, "{step} vs {max_step}");
    assert!(out[end + 480..end + 960].iter().all(|s| s.abs() < 0.1));

    // Opt-out: digital silence once the concealed tail has faded out (10 ms).
    let off = talkspurt_then_silence(PlaybackConfig { comfort_noise: false, ..PlaybackConfig::default() }, &packets, 5);
    assert!(off[end + 480..].iter().all(|&s| s == 0.0));
}

#[test]
fn no_comfort_noise_for_a_speaker_that_never_sent_audio_or_only_digital_silence() {
    let never = talkspurt_then_silence(PlaybackConfig::default(), &[], 20);
    assert!(never.iter().all(|&s| s == 0.0));
    let zeros: Vec<Vec<u8>> =
        encode_all(&vec![0.0; 48_000], OpusSettings::default()).unwrap().into_iter().flatten().collect();
    let out = talkspurt_then_silence(PlaybackConfig::default(), &zeros, 20);
    let tail = &out[zeros.len() * 960..];
    assert!(rms(tail) < 1e-5, "{}", rms(tail));
}
