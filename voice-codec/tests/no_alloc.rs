//! Steady-state processing allocates nothing: capture (44.1 kHz stereo → 48 kHz mono, gain, noise suppression, VAD
//! with fast attack and pre-roll, push-to-talk, Opus with FEC), playback (decode, FEC, PLC, silence with
//! fade-out and comfort noise, resume fades, corrupt packets, shrink and expand) and the mixer (to 44.1 kHz stereo).
//!
//! The counting global allocator comes from the `allocation-counter` dev-dependency (thread-local counts, so other
//! tests running in parallel do not interfere). We do not write our own `GlobalAlloc`: the workspace sets
//! `unsafe_code = "forbid"`, and `forbid` cannot be lifted by an `#![allow(unsafe_code)]` in a test file (E0453).

use voice_codec::{
    CaptureConfig, CapturePipeline, ChannelLayout, Mixer, OpusSettings, PlaybackConfig, PlaybackPipeline, VadConfig,
};
use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::Rng;
use voice_sim::audio::{encode_all, speech_like};

#[test]
fn steady_state_capture_playback_and_mix_do_not_allocate() {
    let mono = speech_like(44_100 * 4, 8);
    let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, *s * 0.8]).collect();
    let mut cap = CapturePipeline::new(CaptureConfig {
        device_rate_hz: 44_100,
        device_channels: 2,
        gain: Some(1.2),
        noise_suppression: true,
        vad: Some(VadConfig::default()),
        // No DTX here: it would drop the faint frames the pre-roll holds (DTX's own paths: tests/dtx.rs).
        opus: OpusSettings { dtx: false, ..OpusSettings::default() },
        push_to_talk: true,
        ..CaptureConfig::default()
    })
    .unwrap();
    cap.set_push_to_talk(true);

    // Speech over faint noise, so the playback side learns a background and plays comfort noise in silences.
    let mut rng = Rng::new(3);
    let noisy: Vec<f32> = speech_like(48_000 * 4, 2).iter().map(|s| s + (rng.next_f32() - 0.5) * 0.004).collect();
    let packets: Vec<Vec<u8>> = encode_all(&noisy, OpusSettings::default()).unwrap().into_iter().flatten().collect();
    let mut speakers = [
        PlaybackPipeline::new(PlaybackConfig::default()).unwrap(),
        PlaybackPipeline::new(PlaybackConfig {
            layout: ChannelLayout::Stereo,
            volume: 0.7,
            ..PlaybackConfig::default()
        })
        .unwrap(),
    ];
    let mut mixer = Mixer::new(ChannelLayout::Mono, 44_100, 2).unwrap();
    let corrupt = [0xffu8, 0x00, 0x13];
    let faint: Vec<f32> = (0..stereo.len()).map(|_| (rng.next_f32() - 0.5) * 0.002).collect();

    let step = |i: usize, cap: &mut CapturePipeline, speakers: &mut [PlaybackPipeline; 2], mixer: &mut Mixer| {
        // Odd chunk sizes, as device callbacks deliver them.
        let size = [441, 300, 512, 129][i % 4] * 2;
        let start = (i * 882) % (stereo.len() - 1024);
        // Alternate about 0.8 s of speech and of faint noise, so the voice gate closes and opens again (pre-roll).
        let chunk = if (i / 100) % 2 == 1 { &faint[start..start + size] } else { &stereo[start..start + size] };
        cap.push(chunk).unwrap();
        let (mut bytes, mut prerolled) = (0, 0);
        while let Some(f) = cap.poll_frame().unwrap() {
            match f {
                voice_codec::CaptureFrame::Packet { payload, .. } => bytes += payload.len(),
                voice_codec::CaptureFrame::Preroll { payload, .. } => {
                    bytes += payload.len();
                    prerolled += 1;
                }
                voice_codec::CaptureFrame::Gated { .. } => {}
            }
        }
        let p = &packets[i % packets.len()];
        let next = &packets[(i + 1) % packets.len()];
        for (k, s) in speakers.iter_mut().enumerate() {
            let action = match (i + k) % 7 {
                0 => Action::DecodeFec { missing: Seq(i as u64), next_payload: next.as_slice() },
                1 => Action::Conceal { samples: 960 },
                2 => Action::Silence { samples: 480 },
                3 => Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: &corrupt[..] },
                _ => Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: p.as_slice() },
            };
            let stretch = match i % 5 {
                0 => Stretch::Shrink { samples: 240 },
                1 => Stretch::Expand { samples: 240 },
                _ => Stretch::None,
            };
            s.play(&Playout { action, stretch }).unwrap();
        }
        let out = mixer.mix(speakers.iter_mut(), 960).unwrap();
        (bytes + out.len(), prerolled)
    };

    // Warm up: first frames, resampler blocks, buffers reaching their steady size.
    for i in 0..200 {
        step(i, &mut cap, &mut speakers, &mut mixer);
    }
    let (mut work, mut prerolled) = (0, 0);
    let info = allocation_counter::measure(|| {
        for i in 200..600 {
            let (w, p) = step(i, &mut cap, &mut speakers, &mut mixer);
            work += w;
            prerolled += p;
        }
    });
    assert!(work > 0);
    assert!(prerolled > 0, "the pre-roll path was not exercised");
    // The counter does count on this thread (guards against a silently inactive allocator).
    let probe = allocation_counter::measure(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert_eq!(probe.count_total, 1);
    assert_eq!(info.count_total, 0, "steady-state processing allocated: {info:?}");
}
