//! End-to-end behaviour of the capture and playback pipelines on a generated speech-like signal.

use voice_codec::{
    CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, CodecError, FrameDuration, OpusSettings,
    PlaybackConfig, PlaybackPipeline, SlotSource,
};
use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::audio::{best_correlation, encode_all, fec_recovery, speech_like};

fn play_slot(p: &mut PlaybackPipeline, action: Action<&[u8]>, stretch: Stretch) -> voice_codec::SlotReport {
    p.play(&Playout { action, stretch }).expect("valid slot")
}

fn decode_all(packets: &[Option<Vec<u8>>]) -> Vec<f32> {
    let mut p = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    let mut out = Vec::new();
    for (i, pk) in packets.iter().enumerate() {
        let action = match pk {
            Some(pk) => Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: pk.as_slice() },
            None => Action::Silence { samples: 960 },
        };
        let r = play_slot(&mut p, action, Stretch::None);
        let mut buf = vec![0.0; r.samples];
        assert_eq!(p.read(&mut buf), r.samples);
        out.extend_from_slice(&buf);
    }
    out
}

#[test]
fn round_trip_of_speech_like_signal_correlates() {
    let signal = speech_like(48_000 * 3, 7);
    let packets = encode_all(&signal, OpusSettings::default()).unwrap();
    assert_eq!(packets.len(), 150);
    let decoded = decode_all(&packets);
    assert_eq!(decoded.len(), signal.len());
    let (corr, lag) = best_correlation(&signal, &decoded, 1_000);
    println!("round trip correlation {corr:.3} at lag {lag}");
    assert!(corr >= 0.9, "correlation {corr}");
}

#[test]
fn plc_silence_and_fec_return_exactly_the_asked_length() {
    let signal = speech_like(48_000, 11);
    let packets = encode_all(&signal, OpusSettings::default()).unwrap();
    let mut p = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    let first = packets[0].as_deref().unwrap();
    assert_eq!(
        play_slot(&mut p, Action::Play { seq: Seq(0), timestamp: Timestamp(0), payload: first }, Stretch::None).samples,
        960
    );
    for n in [960u32, 480, 2_880, 120, 100, 1_000, 1, 0, 5_760, 8_640] {
        let r = play_slot(&mut p, Action::Conceal { samples: n }, Stretch::None);
        assert_eq!(r.samples, n as usize);
        assert_eq!(r.source, SlotSource::Concealed);
        let r = play_slot(&mut p, Action::Silence { samples: n }, Stretch::None);
        assert_eq!(r.samples, n as usize);
    }
    let next = packets[2].as_deref().unwrap();
    let r = play_slot(&mut p, Action::DecodeFec { missing: Seq(1), next_payload: next }, Stretch::None);
    assert_eq!((r.source, r.samples), (SlotSource::Fec, 960));
    assert!(matches!(
        p.play(&Playout { action: Action::<&[u8]>::Conceal { samples: 8_641 }, stretch: Stretch::None }),
        Err(CodecError::SlotTooLong { samples: 8_641, .. })
    ));
}

#[test]
fn corrupt_packets_are_concealed_with_the_frame_length() {
    let mut p =
        PlaybackPipeline::new(PlaybackConfig { frame: FrameDuration::Ms40, ..PlaybackConfig::default() }).unwrap();
    for bad in [&[][..], &[0xff, 0xff][..], &[0x03, 0xff, 0x00][..], &[0x0b][..]] {
        let r = play_slot(&mut p, Action::Play { seq: Seq(0), timestamp: Timestamp(0), payload: bad }, Stretch::None);
        assert_eq!(r.samples, 1920, "payload {bad:?}");
    }
    assert!(p.stats().corrupt >= 3);
}

#[test]
fn fec_recovers_a_dropped_frame_better_than_plc() {
    let r = fec_recovery(10, 10, 1, OpusSettings::default()).unwrap();
    println!("{r:?}");
    assert!(r.lost_active >= 10);
    assert!(r.fec_mse < 0.7 * r.plc_mse, "FEC error {} vs PLC error {}", r.fec_mse, r.plc_mse);
}

#[test]
fn fec_recovers_at_least_90_percent_of_single_losses() {
    let settings = OpusSettings { expected_loss_pct: 10, ..OpusSettings::default() };
    let mut total = (0, 0);
    for seed in 1..=3 {
        let r = fec_recovery(20, 10, seed, settings).unwrap();
        println!("seed {seed}: {r:?} → {:.1} %", r.recovered_pct());
        total.0 += r.recovered;
        total.1 += r.lost_active;
    }
    let pct = 100.0 * total.0 as f64 / total.1 as f64;
    println!("FEC recovered {}/{} active lost frames = {pct:.1} %", total.0, total.1);
    assert!(pct >= 90.0, "{pct}");
}

#[test]
fn stretch_changes_length_by_at_most_the_request() {
    let signal = speech_like(48_000 * 2, 5);
    let packets = encode_all(&signal, OpusSettings::default()).unwrap();
    // Shrinking anywhere the signal allows (by default a shrink waits for a pause between words).
    let mut p = PlaybackPipeline::new(PlaybackConfig { shrink_in_pauses: false, ..PlaybackConfig::default() }).unwrap();
    let (mut shrunk, mut expanded) = (0i64, 0i64);
    let mut stretched_audio = Vec::new();
    for (i, pk) in packets.iter().enumerate() {
        let pk = pk.as_deref().unwrap();
        let stretch = if i % 2 == 0 { Stretch::Shrink { samples: 240 } } else { Stretch::Expand { samples: 240 } };
        let r = play_slot(&mut p, Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: pk }, stretch);
        assert_eq!(r.samples as i64, 960 + r.stretched);
        assert!(r.stretched.abs() <= 240);
        if r.stretched < 0 {
            shrunk -= r.stretched
        } else {
            expanded += r.stretched
        }
        let mut buf = vec![0.0; r.samples];
        p.read(&mut buf);
        stretched_audio.extend_from_slice(&buf);
    }
    println!("shrunk {shrunk}, expanded {expanded}");
    // No clicks: the largest sample-to-sample step is no larger than in the unstretched decode.
    let plain = decode_all(&packets);
    let max_step = |x: &[f32]| x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0f32, f32::max);
    let (a, b) = (max_step(&plain), max_step(&stretched_audio));
    println!("max step plain {a:.4}, stretched {b:.4}");
    assert!(b <= a * 1.2, "stretch introduced a jump: {b} vs {a}");
    assert!(shrunk > 240 * 10 && expanded > 240 * 10, "stretch applied too rarely: {shrunk} / {expanded}");
}

#[test]
fn capture_accepts_any_chunk_size_from_44k1_stereo_and_settings_change_at_runtime() {
    let mono = speech_like(44_100 * 2, 9);
    let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, *s * 0.5]).collect();
    let mut cap =
        CapturePipeline::new(CaptureConfig { device_rate_hz: 44_100, device_channels: 2, ..CaptureConfig::default() })
            .unwrap();
    let mut frames = 0;
    let mut offset = 0;
    let sizes = [1usize, 7, 441, 1024, 333, 4096, 2];
    let mut k = 0;
    while offset < stereo.len() {
        let n = (sizes[k % sizes.len()] * 2).min(stereo.len() - offset);
        cap.push(&stereo[offset..offset + n]).unwrap();
        offset += n;
        k += 1;
        if k == 50 {
            cap.set_opus_settings(OpusSettings {
                frame: FrameDuration::Ms40,
                bitrate_bps: 16_000,
                ..OpusSettings::default()
            })
            .unwrap();
        }
        while let Some(f) = cap.poll_frame().unwrap() {
            let CaptureFrame::Packet { payload, samples } = f else { panic!("no gate configured") };
            assert_eq!(voice_codec::packet_samples(payload).unwrap(), samples as usize);
            frames += samples as usize;
        }
    }
    // 2 s at 48 kHz minus what waits for a whole frame and the resampler's block.
    assert!(frames > 96_000 - 2 * 1920 - 480 && frames <= 96_000, "{frames}");
    assert!(matches!(cap.push(&[0.0; 3]), Err(CodecError::PartialFrame { len: 3, channels: 2 })));
}

#[test]
fn stereo_layout_round_trips() {
    let mono = speech_like(48_000, 2);
    let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, -*s]).collect();
    let settings = OpusSettings { bitrate_bps: 64_000, ..OpusSettings::default() };
    let mut cap = CapturePipeline::new(CaptureConfig {
        device_channels: 2,
        layout: ChannelLayout::Stereo,
        opus: settings,
        ..CaptureConfig::default()
    })
    .unwrap();
    let mut p =
        PlaybackPipeline::new(PlaybackConfig { layout: ChannelLayout::Stereo, ..PlaybackConfig::default() }).unwrap();
    let mut out = Vec::new();
    for chunk in stereo.chunks(9_600) {
        cap.push(chunk).unwrap();
        while let Some(CaptureFrame::Packet { payload, .. }) = cap.poll_frame().unwrap() {
            let r = p
                .play(&Playout {
                    action: Action::Play { seq: Seq(0), timestamp: Timestamp(0), payload },
                    stretch: Stretch::None,
                })
                .unwrap();
            let mut buf = vec![0.0; r.samples * 2];
            p.read(&mut buf);
            out.extend_from_slice(&buf);
        }
    }
    let left: Vec<f32> = out.iter().step_by(2).copied().collect();
    let right: Vec<f32> = out.iter().skip(1).step_by(2).copied().collect();
    let (cl, _) = best_correlation(&mono, &left, 1_000);
    let neg: Vec<f32> = mono.iter().map(|s| -s).collect();
    let (cr, _) = best_correlation(&neg, &right, 1_000);
    assert!(cl > 0.85 && cr > 0.85, "{cl} {cr}");
}
