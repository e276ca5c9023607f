//! Seams around concealment: when decoded audio resumes after packet loss concealment (1, 2, 3, 5 slots, slot
//! lengths that are not whole 2.5 ms blocks, FEC after PLC, a stall into silence, a stretch next to it), the output
//! must not click: no sample-to-sample jump beyond what the clean decode has, and no abrupt level rise.
//!
//! The signal is a sustained synthetic vowel (gliding pitch 200–280 Hz, 12 harmonics, constant level), encoded with
//! the default Opus settings; every scenario is played at 15 positions and measured in ±20 ms around each resume.
//! Measured (`cargo test -p voice-codec --test seams -- --nocapture`): before the fix jumps up to 7.4 (odd-sized
//! concealments: the decoder ran up to 2.5–10 ms ahead of the output) and 4.6–4.9 (a stall into silence stepped to
//! zero, resumed at full level), rises up to 0.89; after, jumps ≤ 1.12 and rises ≤ 0.50 (the clean decode: 1.0 and
//! 0.20).
//! Printed numbers: `jump` = the largest |x[t+1] − x[t]| near the resumes over the largest in the clean decode;
//! `rise` = the largest increase of the 5 ms peak envelope within 2.5 ms, over the clean decode's peak level.

use voice_codec::{OpusSettings, PlaybackConfig, PlaybackPipeline};
use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::audio::encode_all;

/// A sustained vowel: constant level, pitch gliding between 200 and 280 Hz (periods under 5 ms).
fn vowel(n: usize) -> Vec<f32> {
    let mut phase = 0.0f32;
    (0..n)
        .map(|i| {
            let t = i as f32 / 48_000.0;
            let f0 = 240.0 + 40.0 * (t * 1.3).sin();
            phase += 2.0 * std::f32::consts::PI * f0 / 48_000.0;
            let mut v = 0.0;
            for k in 1..=12 {
                let formant = (-((f0 * k as f32 - 700.0) / 400.0).powi(2)).exp();
                v += (0.15 + formant) / k as f32 * (phase * k as f32).sin();
            }
            0.3 * v
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Ev {
    Conceal(u32),
    Silence(u32),
    Fec,
}

/// Largest |x[t+1] − x[t]|.
fn max_step(x: &[f32]) -> f32 {
    x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max)
}

/// Peak envelope over the last 5 ms at each sample.
fn envelope(x: &[f32]) -> Vec<f32> {
    (0..x.len()).map(|t| x[t.saturating_sub(240)..=t].iter().fold(0.0f32, |m, s| m.max(s.abs()))).collect()
}

/// Largest rise of the envelope within 2.5 ms (after the first 5 ms, where the envelope window is full).
fn max_rise(x: &[f32]) -> f32 {
    let env = envelope(x);
    (240..env.len().saturating_sub(120)).map(|t| env[t + 120] - env[t]).fold(0.0, f32::max)
}

fn play(p: &mut PlaybackPipeline, action: Action<&[u8]>, stretch: Stretch, out: &mut Vec<f32>) {
    let r = p.play(&Playout { action, stretch }).expect("valid slot");
    let start = out.len();
    out.resize(start + r.samples, 0.0);
    assert_eq!(p.read(&mut out[start..]), r.samples);
}

/// Plays `packets`, inserting `events` (each `Conceal` and `Fec` standing for one packet) before every 25th packet,
/// optionally with a stretch on the resuming packet. Returns the output and the resume positions.
fn run(packets: &[Vec<u8>], events: &[Ev], resume_stretch: Stretch) -> (Vec<f32>, Vec<usize>) {
    let mut p = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    let mut out = Vec::new();
    let mut resumes = Vec::new();
    let mut i = 0;
    while i + 4 < packets.len() {
        let mut stretch = Stretch::None;
        if i >= 25 && i % 25 == 0 {
            for e in events {
                let action = match *e {
                    Ev::Conceal(n) => {
                        i += 1;
                        Action::Conceal { samples: n }
                    }
                    Ev::Silence(n) => Action::Silence { samples: n },
                    Ev::Fec => {
                        i += 1;
                        Action::DecodeFec { missing: Seq(i as u64 - 1), next_payload: packets[i].as_slice() }
                    }
                };
                play(&mut p, action, Stretch::None, &mut out);
            }
            resumes.push(out.len());
            stretch = resume_stretch;
        }
        let action = Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: packets[i].as_slice() };
        play(&mut p, action, stretch, &mut out);
        i += 1;
    }
    (out, resumes)
}

#[test]
fn decoded_audio_resumes_after_concealment_without_a_click() {
    let signal = vowel(48_000 * 8);
    let packets: Vec<Vec<u8>> = encode_all(&signal, OpusSettings::default()).unwrap().into_iter().flatten().collect();
    let (clean, _) = run(&packets, &[], Stretch::None);
    let clean = &clean[4_800..];
    let clean_step = max_step(clean);
    let clean_peak = envelope(clean).into_iter().fold(0.0f32, f32::max);
    println!("clean decode: max step {clean_step:.4}, peak {clean_peak:.3}, rise {:.3}", max_rise(clean) / clean_peak);
    let c = Ev::Conceal(960);
    let scenarios: &[(&str, &[Ev], Stretch)] = &[
        ("conceal x1", &[c], Stretch::None),
        ("conceal x2", &[c, c], Stretch::None),
        ("conceal x3", &[c, c, c], Stretch::None),
        ("conceal x5", &[c, c, c, c, c], Stretch::None),
        ("conceal 1000", &[Ev::Conceal(1000)], Stretch::None),
        ("conceal 900", &[Ev::Conceal(900)], Stretch::None),
        ("conceal 1000 x2", &[Ev::Conceal(1000), Ev::Conceal(1000)], Stretch::None),
        ("conceal 1000+500", &[Ev::Conceal(1000), Ev::Conceal(500)], Stretch::None),
        ("conceal + FEC", &[c, Ev::Fec], Stretch::None),
        ("conceal x2 + FEC", &[c, c, Ev::Fec], Stretch::None),
        ("conceal x5 + silence", &[c, c, c, c, c, Ev::Silence(960)], Stretch::None),
        ("conceal + silence", &[c, Ev::Silence(960)], Stretch::None),
        ("conceal + silence x3", &[c, Ev::Silence(960), Ev::Silence(960), Ev::Silence(960)], Stretch::None),
        ("conceal x3 + expand", &[c, c, c], Stretch::Expand { samples: 480 }),
        ("conceal x3 + shrink", &[c, c, c], Stretch::Shrink { samples: 480 }),
    ];
    let mut failures = Vec::new();
    for (name, events, stretch) in scenarios {
        let (out, resumes) = run(&packets, events, *stretch);
        assert!(resumes.len() >= 14);
        let (mut jump, mut rise) = (0.0f32, 0.0f32);
        for &r in &resumes {
            let around = &out[r.saturating_sub(960)..(r + 960).min(out.len())];
            jump = jump.max(max_step(around) / clean_step);
            let after = &out[r.saturating_sub(360)..(r + 960).min(out.len())];
            rise = rise.max(max_rise(after) / clean_peak);
        }
        println!("{name:22} jump {jump:5.2}  rise {rise:5.2}");
        if jump > 1.3 || rise > 0.52 {
            failures.push(format!("{name}: jump {jump:.2}, rise {rise:.2}"));
        }
    }
    assert!(failures.is_empty(), "clicks at resumes: {failures:#?}");
}
