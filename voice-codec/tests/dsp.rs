//! Capture-side stages (gates, noise suppression, gain), level keeping of the resampler and the mixer, and config
//! errors.

use voice_codec::{
    CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, CodecError, GateReason, Mixer, OpusSettings,
    PlaybackConfig, PlaybackPipeline, VadConfig, resample_clip, soft_clip,
};
use voice_jitter::{Action, Playout, Stretch};
use voice_sim::Rng;
use voice_sim::audio::speech_like;

/// Runs `signal` (48 kHz mono) through `cap` in 20 ms pushes; returns one char per frame: `#` sent, `v` VAD-gated,
/// `p` PTT-gated, `d` DTX, `r` pre-roll (a frame gated earlier, sent now).
fn gate_trace(cap: &mut CapturePipeline, signal: &[f32]) -> String {
    let mut s = String::new();
    for chunk in signal.chunks(960) {
        cap.push(chunk).unwrap();
        while let Some(f) = cap.poll_frame().unwrap() {
            s.push(match f {
                CaptureFrame::Packet { .. } => '#',
                CaptureFrame::Gated { reason: GateReason::Vad, .. } => 'v',
                CaptureFrame::Gated { reason: GateReason::PushToTalk, .. } => 'p',
                CaptureFrame::Gated { reason: GateReason::Dtx, .. } => 'd',
                CaptureFrame::Preroll { .. } => 'r',
            });
        }
    }
    s
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt()
}

fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_f32() - 0.5) * 2.0 * amp).collect()
}

#[test]
fn vad_gates_silence_and_passes_speech() {
    let vad = VadConfig { threshold: 0.5, hangover_frames: 5, ..VadConfig::default() };
    let mut cap = CapturePipeline::new(CaptureConfig { vad: Some(vad), ..CaptureConfig::default() }).unwrap();
    // One second of silence with faint noise (−60 dBFS), then speech.
    let quiet = noise(48_000, 0.001, 1);
    let trace = gate_trace(&mut cap, &quiet);
    println!("silence: {trace}");
    assert!(trace.chars().filter(|&c| c == 'v').count() >= 45, "{trace}");
    let speech = speech_like(48_000 * 3, 4);
    let trace = gate_trace(&mut cap, &speech);
    println!("speech:  {trace}");
    let sent = trace.chars().filter(|&c| c == '#').count();
    // The signal is voiced about three quarters of the time.
    assert!(sent >= 100, "{sent} of 150 sent: {trace}");
    assert!(trace.contains('v'), "pauses longer than the hangover must gate: {trace}");
}

#[test]
fn push_to_talk_gates_until_pressed() {
    let mut cap = CapturePipeline::new(CaptureConfig { push_to_talk: true, ..CaptureConfig::default() }).unwrap();
    let speech = speech_like(48_000, 4);
    assert_eq!(gate_trace(&mut cap, &speech[..9_600]), "pppppppppp");
    cap.set_push_to_talk(true);
    assert_eq!(gate_trace(&mut cap, &speech[9_600..19_200]), "##########");
    cap.set_push_to_talk(false);
    assert_eq!(gate_trace(&mut cap, &speech[19_200..28_800]), "pppppppppp");
}

#[test]
fn dtx_gates_digital_silence() {
    let settings = OpusSettings { dtx: true, ..OpusSettings::default() };
    let mut cap = CapturePipeline::new(CaptureConfig { opus: settings, ..CaptureConfig::default() }).unwrap();
    let trace = gate_trace(&mut cap, &vec![0.0; 48_000]);
    assert!(trace.chars().filter(|&c| c == 'd').count() >= 30, "{trace}");
}

#[test]
fn noise_suppression_lowers_stationary_noise() {
    let mut cap = CapturePipeline::new(CaptureConfig { noise_suppression: true, ..CaptureConfig::default() }).unwrap();
    let mut dump = Vec::new();
    let n = noise(48_000, 0.05, 9);
    // Read the processed frames back through a playback pipeline.
    let mut p = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    for chunk in n.chunks(4_800) {
        cap.push(chunk).unwrap();
        while let Some(CaptureFrame::Packet { payload, .. }) = cap.poll_frame().unwrap() {
            let r = p
                .play(&Playout {
                    action: Action::Play { seq: voice_proto::Seq(0), timestamp: voice_proto::Timestamp(0), payload },
                    stretch: Stretch::None,
                })
                .unwrap();
            let mut buf = vec![0.0; r.samples];
            p.read(&mut buf);
            dump.extend_from_slice(&buf);
        }
    }
    let before = rms(&n[24_000..]);
    let after = rms(&dump[24_000..]);
    println!("noise rms {before} → {after}");
    assert!(after < before * 0.5, "{before} → {after}");
}

#[test]
fn resampler_keeps_levels() {
    for (from, to) in [(44_100u32, 48_000u32), (48_000, 44_100), (16_000, 48_000), (48_000, 48_000)] {
        let tone: Vec<f32> =
            (0..from).map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / from as f32).sin()).collect();
        let out = resample_clip(&tone, 1, from, to).unwrap();
        let expect = rms(&tone);
        let got = rms(&out[out.len() / 4..out.len() * 3 / 4]);
        let db = 20.0 * (got / expect).log10();
        println!("{from} → {to}: {db:.3} dB, {} → {} samples", tone.len(), out.len());
        assert!(db.abs() < 0.1, "{from} → {to}: {db} dB");
        assert!(out.iter().all(|s| s.abs() <= 0.51));
    }
}

fn tone_packets(amp: f32, n: usize) -> Vec<Vec<u8>> {
    let tone: Vec<f32> =
        (0..n).map(|i| amp * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin()).collect();
    let settings = OpusSettings { bitrate_bps: 96_000, ..OpusSettings::default() };
    voice_sim::audio::encode_all(&tone, settings).unwrap().into_iter().flatten().collect()
}

fn play(p: &mut PlaybackPipeline, payload: &[u8]) {
    let action = Action::Play { seq: voice_proto::Seq(0), timestamp: voice_proto::Timestamp(0), payload };
    p.play(&Playout { action, stretch: Stretch::None }).unwrap();
}

#[test]
fn mixer_keeps_levels_and_soft_clips_a_full_scale_mix() {
    // One speaker at −12 dBFS through a 48 kHz mono mixer comes out at the same level.
    let mut a = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    let mut mixer = Mixer::new(ChannelLayout::Mono, 48_000, 1).unwrap();
    let mut out = Vec::new();
    for pk in tone_packets(0.25, 48_000) {
        play(&mut a, &pk);
        out.extend_from_slice(mixer.mix([&mut a], 960).unwrap());
    }
    let level = rms(&out[12_000..36_000]);
    let expect = 0.25 / 2f32.sqrt();
    println!("single speaker: {level} (expect {expect})");
    assert!((level / expect - 1.0).abs() < 0.05);

    // Three full-scale speakers in phase: the sum is 3.0, the output stays within ±1, without flat tops.
    let mut speakers: Vec<PlaybackPipeline> =
        (0..3).map(|_| PlaybackPipeline::new(PlaybackConfig::default()).unwrap()).collect();
    let mut mixer = Mixer::new(ChannelLayout::Mono, 44_100, 2).unwrap();
    let mut out = Vec::new();
    for pk in tone_packets(0.99, 24_000) {
        for s in &mut speakers {
            play(s, &pk);
        }
        out.extend_from_slice(mixer.mix(speakers.iter_mut(), 960).unwrap());
    }
    let peak = out.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    println!("full-scale mix peak {peak}, {} device samples", out.len());
    assert!(peak <= 1.0 && peak > 0.9);
    let flat = out.windows(2).filter(|w| w[0].abs() > 0.999 && w[0] == w[1]).count();
    assert!(flat < out.len() / 100, "{flat} flat samples");
    // Per-user volume: a speaker at half volume mixes at half level.
    let mut b = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    b.set_volume(0.5).unwrap();
    let mut mixer = Mixer::new(ChannelLayout::Mono, 48_000, 1).unwrap();
    let mut out = Vec::new();
    for pk in tone_packets(0.25, 48_000) {
        play(&mut b, &pk);
        out.extend_from_slice(mixer.mix([&mut b], 960).unwrap());
    }
    let half = rms(&out[12_000..36_000]);
    assert!((half / level - 0.5).abs() < 0.02, "{half} vs {level}");
    assert!(matches!(b.set_volume(f32::NAN), Err(CodecError::InvalidConfig(_))));
}

#[test]
fn soft_clip_is_transparent_below_the_knee_and_bounded_above() {
    for x in [-0.7f32, -0.1, 0.0, 0.3, 0.75] {
        assert_eq!(soft_clip(x), x);
    }
    let mut last = 0.75;
    for i in 1..1000 {
        let y = soft_clip(0.75 + i as f32 * 0.01);
        assert!(y >= last && y <= 1.0);
        last = y;
    }
    assert_eq!(soft_clip(f32::NAN), 0.0);
    assert_eq!(soft_clip(-5.0), -soft_clip(5.0));
}

#[test]
fn gain_scales_the_signal() {
    let mut cap = CapturePipeline::new(CaptureConfig { gain: Some(0.0), ..CaptureConfig::default() }).unwrap();
    let speech = speech_like(9_600, 1);
    cap.push(&speech).unwrap();
    let mut p = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    while let Some(f) = cap.poll_frame().unwrap() {
        let CaptureFrame::Packet { payload, .. } = f else { panic!("no gate configured") };
        play(&mut p, payload);
        let mut buf = vec![0.0; 960];
        p.read(&mut buf);
        assert!(rms(&buf) < 1e-3, "gain 0 must silence the frame");
    }
}

#[test]
fn bad_configs_are_typed_errors() {
    let bad = |c: CaptureConfig| CapturePipeline::new(c).unwrap_err();
    assert!(matches!(
        bad(CaptureConfig { device_rate_hz: 0, ..CaptureConfig::default() }),
        CodecError::UnsupportedSampleRate { rate_hz: 0 }
    ));
    assert!(matches!(
        bad(CaptureConfig { device_channels: 0, ..CaptureConfig::default() }),
        CodecError::UnsupportedChannels { channels: 0 }
    ));
    assert!(matches!(
        bad(CaptureConfig { gain: Some(f32::INFINITY), ..CaptureConfig::default() }),
        CodecError::InvalidConfig(_)
    ));
    let opus = OpusSettings { bitrate_bps: 1, ..OpusSettings::default() };
    assert!(matches!(bad(CaptureConfig { opus, ..CaptureConfig::default() }), CodecError::InvalidConfig(_)));
    let opus = OpusSettings { complexity: 11, ..OpusSettings::default() };
    assert!(matches!(bad(CaptureConfig { opus, ..CaptureConfig::default() }), CodecError::InvalidConfig(_)));
    #[cfg(not(feature = "aec"))]
    assert!(matches!(
        bad(CaptureConfig { echo_cancellation: true, ..CaptureConfig::default() }),
        CodecError::InvalidConfig(_)
    ));
    let mut cap = CapturePipeline::new(CaptureConfig::default()).unwrap();
    assert!(cap.set_opus_settings(OpusSettings { expected_loss_pct: 101, ..OpusSettings::default() }).is_err());
    assert!(matches!(cap.push(&vec![0.0; 60_000]), Err(CodecError::Overflow { .. })));
    assert!(Mixer::new(ChannelLayout::Mono, 1, 2).is_err());
    assert!(PlaybackPipeline::new(PlaybackConfig { volume: -1.0, ..PlaybackConfig::default() }).is_err());
    let mut m = Mixer::new(ChannelLayout::Mono, 48_000, 1).unwrap();
    assert!(m.mix(std::iter::empty(), 100_000).is_err());
    assert!(voice_codec::packet_samples(&[]).is_err());
}
