//! voice-codec benches: encode and decode of a 20 ms frame through our pipelines against raw libopus (audiopus) at
//! the same settings, the full capture pipeline from 44.1 kHz stereo with noise suppression and VAD, playback PLC and
//! FEC, the mixer, and the FEC recovery rate at 10 % random single-frame loss (printed, not timed). Because criterion
//! runs the raw and pipeline benches minutes apart on a shared machine, a paired measurement (alternating blocks,
//! median ratio) of the overhead is printed as well.
//!
//! Targets (issue 4): pipeline overhead over raw libopus ≤ 5 % for encode and decode; full capture ≤ 1 ms per 20 ms
//! frame; ≥ 90 % of lost frames whose successor arrived recovered from FEC.
#![allow(clippy::disallowed_methods, reason = "a benchmark program: it measures on the wall clock")]

use std::hint::black_box;
use std::time::Instant;

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};
use criterion::{Criterion, criterion_group, criterion_main};
use voice_codec::{
    CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, Mixer, OpusSettings, PlaybackConfig, PlaybackPipeline,
    VadConfig,
};
use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::audio::{encode_all, fec_recovery, speech_like};

const FRAME: usize = 960;
/// One second of speech-like audio, cycled frame by frame so every iteration encodes real content.
const FRAMES: usize = 50;

fn raw_encoder(s: &OpusSettings) -> Encoder {
    let mut e = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
    e.set_bitrate(Bitrate::BitsPerSecond(s.bitrate_bps as i32)).unwrap();
    e.set_complexity(s.complexity).unwrap();
    e.set_vbr(s.vbr).unwrap();
    e.set_inband_fec(s.inband_fec).unwrap();
    e.set_dtx(s.dtx).unwrap();
    e.set_packet_loss_perc(s.expected_loss_pct).unwrap();
    e
}

fn encode(c: &mut Criterion) {
    let signal = speech_like(FRAME * FRAMES, 1);
    let mut g = c.benchmark_group("encode_20ms");
    for complexity in [5u8, 10] {
        let settings = OpusSettings { complexity, ..OpusSettings::default() };
        g.bench_function(format!("raw_libopus_c{complexity}_fec"), |b| {
            let enc = raw_encoder(&settings);
            let mut out = [0u8; 4000];
            let mut i = 0;
            b.iter(|| {
                let frame = &signal[(i % FRAMES) * FRAME..][..FRAME];
                i += 1;
                black_box(enc.encode_float(black_box(frame), &mut out).unwrap())
            });
        });
        g.bench_function(format!("pipeline_c{complexity}_fec"), |b| {
            let mut cap = CapturePipeline::new(CaptureConfig { opus: settings, ..CaptureConfig::default() }).unwrap();
            let mut i = 0;
            b.iter(|| {
                let frame = &signal[(i % FRAMES) * FRAME..][..FRAME];
                i += 1;
                cap.push(black_box(frame)).unwrap();
                match cap.poll_frame().unwrap() {
                    Some(CaptureFrame::Packet { payload, .. }) => black_box(payload.len()),
                    _ => 0,
                }
            });
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let signal = speech_like(FRAME * FRAMES, 2);
    let packets: Vec<Vec<u8>> = encode_all(&signal, OpusSettings::default()).unwrap().into_iter().flatten().collect();
    let mut g = c.benchmark_group("decode_20ms");
    g.bench_function("raw_libopus", |b| {
        let mut dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).unwrap();
        let mut out = vec![0.0f32; FRAME];
        let mut i = 0;
        b.iter(|| {
            let p = Packet::try_from(packets[i % packets.len()].as_slice()).unwrap();
            i += 1;
            let n = dec.decode_float(Some(p), MutSignals::try_from(&mut out[..]).unwrap(), false).unwrap();
            black_box(out[n - 1])
        });
    });
    g.bench_function("pipeline", |b| {
        let mut pb = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
        let mut out = vec![0.0f32; FRAME];
        let mut i = 0;
        b.iter(|| {
            let payload = packets[i % packets.len()].as_slice();
            let action = Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload };
            i += 1;
            pb.play(&Playout { action, stretch: Stretch::None }).unwrap();
            black_box(pb.read(&mut out))
        });
    });
    g.bench_function("raw_libopus_plc", |b| {
        let mut dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).unwrap();
        let mut out = vec![0.0f32; FRAME];
        let p = Packet::try_from(packets[10].as_slice()).unwrap();
        dec.decode_float(Some(p), MutSignals::try_from(&mut out[..]).unwrap(), false).unwrap();
        b.iter(|| black_box(dec.decode_float(None, MutSignals::try_from(&mut out[..]).unwrap(), false).unwrap()));
    });
    g.bench_function("pipeline_plc", |b| {
        let mut pb = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
        let mut out = vec![0.0f32; FRAME];
        let action = Action::Play { seq: Seq(0), timestamp: Timestamp(0), payload: packets[10].as_slice() };
        pb.play(&Playout { action, stretch: Stretch::None }).unwrap();
        pb.read(&mut out);
        b.iter(|| {
            pb.play(&Playout { action: Action::<&[u8]>::Conceal { samples: 960 }, stretch: Stretch::None }).unwrap();
            black_box(pb.read(&mut out))
        });
    });
    g.bench_function("pipeline_fec", |b| {
        let mut pb = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
        let mut out = vec![0.0f32; FRAME];
        let mut i = 0;
        b.iter(|| {
            let next_payload = packets[i % packets.len()].as_slice();
            i += 1;
            let action = Action::DecodeFec { missing: Seq(i as u64), next_payload };
            pb.play(&Playout { action, stretch: Stretch::None }).unwrap();
            black_box(pb.read(&mut out))
        });
    });
    g.bench_function("pipeline_decode_shrink_240", |b| {
        let mut pb = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
        let mut out = vec![0.0f32; FRAME];
        let mut i = 0;
        b.iter(|| {
            let payload = packets[i % packets.len()].as_slice();
            let action = Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload };
            i += 1;
            pb.play(&Playout { action, stretch: Stretch::Shrink { samples: 240 } }).unwrap();
            black_box(pb.read(&mut out))
        });
    });
    g.finish();
}

fn capture_full(c: &mut Criterion) {
    // 20 ms at 44.1 kHz stereo = 882 frames per push; each push yields one 960-sample 48 kHz frame.
    let mono = speech_like(882 * FRAMES, 3);
    let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, *s * 0.9]).collect();
    let mut g = c.benchmark_group("capture_full_20ms");
    for complexity in [5u8, 10] {
        g.bench_function(format!("44k1_stereo_resample_ns_vad_c{complexity}_fec"), |b| {
            let mut cap = CapturePipeline::new(CaptureConfig {
                device_rate_hz: 44_100,
                device_channels: 2,
                noise_suppression: true,
                vad: Some(VadConfig { hangover_frames: u32::MAX, ..VadConfig::default() }),
                opus: OpusSettings { complexity, ..OpusSettings::default() },
                ..CaptureConfig::default()
            })
            .unwrap();
            let mut i = 0;
            b.iter(|| {
                let chunk = &stereo[(i % FRAMES) * 882 * 2..][..882 * 2];
                i += 1;
                cap.push(black_box(chunk)).unwrap();
                let mut n = 0;
                while let Some(f) = cap.poll_frame().unwrap() {
                    if let CaptureFrame::Packet { payload, .. } = f {
                        n += payload.len();
                    }
                }
                black_box(n)
            });
        });
    }
    // The DSP part alone: push-to-talk closed, so every frame is resampled, denoised and VAD-scored but not encoded.
    g.bench_function("44k1_stereo_resample_ns_vad_without_opus", |b| {
        let mut cap = CapturePipeline::new(CaptureConfig {
            device_rate_hz: 44_100,
            device_channels: 2,
            noise_suppression: true,
            vad: Some(VadConfig::default()),
            push_to_talk: true,
            ..CaptureConfig::default()
        })
        .unwrap();
        let mut i = 0;
        b.iter(|| {
            let chunk = &stereo[(i % FRAMES) * 882 * 2..][..882 * 2];
            i += 1;
            cap.push(black_box(chunk)).unwrap();
            let mut n = 0;
            while cap.poll_frame().unwrap().is_some() {
                n += 1;
            }
            black_box(n)
        });
    });
    g.finish();
}

fn mixer(c: &mut Criterion) {
    let mut g = c.benchmark_group("mix_20ms");
    g.bench_function("4_speakers_to_44k1_stereo", |b| {
        let mut speakers: Vec<PlaybackPipeline> =
            (0..4).map(|_| PlaybackPipeline::new(PlaybackConfig::default()).unwrap()).collect();
        let mut mixer = Mixer::new(ChannelLayout::Mono, 44_100, 2).unwrap();
        b.iter(|| {
            for s in &mut speakers {
                s.play(&Playout { action: Action::<&[u8]>::Silence { samples: 960 }, stretch: Stretch::None }).unwrap();
            }
            black_box(mixer.mix(speakers.iter_mut(), 960).unwrap().len())
        });
    });
    g.finish();
}

/// Paired overhead measurement, printed (not a criterion bench): raw libopus and our pipeline run in alternating
/// blocks of frames on the same input, so machine load hits both alike; the figure is the median over blocks of
/// pipeline time / raw time − 1.
fn overhead_paired(_: &mut Criterion) {
    const ROUNDS: usize = 41;
    let signal = speech_like(FRAME * FRAMES, 1);
    let settings = OpusSettings::default();
    let packets: Vec<Vec<u8>> = encode_all(&signal, settings).unwrap().into_iter().flatten().collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };

    let enc = raw_encoder(&settings);
    let mut cap = CapturePipeline::new(CaptureConfig { opus: settings, ..CaptureConfig::default() }).unwrap();
    let mut out = [0u8; 4000];
    let raw_block = |out: &mut [u8; 4000]| {
        let t = Instant::now();
        for f in signal.chunks_exact(FRAME) {
            black_box(enc.encode_float(f, out).unwrap());
        }
        t.elapsed().as_secs_f64()
    };
    let mut ours_block = || {
        let t = Instant::now();
        for f in signal.chunks_exact(FRAME) {
            cap.push(f).unwrap();
            black_box(cap.poll_frame().unwrap());
        }
        t.elapsed().as_secs_f64()
    };
    let mut ratios = Vec::new();
    for r in 0..ROUNDS {
        let (a, b) = if r % 2 == 0 {
            let a = raw_block(&mut out);
            (a, ours_block())
        } else {
            let b = ours_block();
            (raw_block(&mut out), b)
        };
        ratios.push(b / a - 1.0);
    }
    let enc_overhead = median(ratios);

    let mut dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).unwrap();
    let mut pb = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    let mut pcm = vec![0.0f32; FRAME];
    let mut raw_pcm = vec![0.0f32; FRAME];
    let mut ratios = Vec::new();
    for r in 0..ROUNDS {
        let mut raw = || {
            let t = Instant::now();
            for _ in 0..4 {
                for p in &packets {
                    let p = Packet::try_from(p.as_slice()).unwrap();
                    black_box(
                        dec.decode_float(Some(p), MutSignals::try_from(&mut raw_pcm[..]).unwrap(), false).unwrap(),
                    );
                }
            }
            t.elapsed().as_secs_f64()
        };
        let a1 = if r % 2 == 0 { raw() } else { 0.0 };
        let t = Instant::now();
        for _ in 0..4 {
            for (i, p) in packets.iter().enumerate() {
                let action = Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: p.as_slice() };
                pb.play(&Playout { action, stretch: Stretch::None }).unwrap();
                black_box(pb.read(&mut pcm));
            }
        }
        let b = t.elapsed().as_secs_f64();
        let a = if r % 2 == 0 { a1 } else { raw() };
        ratios.push(b / a - 1.0);
    }
    let dec_overhead = median(ratios);
    println!(
        "overhead_paired: pipeline vs raw libopus, 20 ms mono frames, {settings:?}, median of {ROUNDS} alternating \
         blocks: encode {:+.1} %, decode {:+.1} %",
        100.0 * enc_overhead,
        100.0 * dec_overhead
    );
}

fn fec_rate(_: &mut Criterion) {
    // Not timed: the deterministic FEC recovery measurement, printed with the bench results.
    let settings = OpusSettings::default();
    let (mut rec, mut lost, mut all) = (0, 0, 0);
    for seed in 1..=5 {
        let r = fec_recovery(30, 10, seed, settings).unwrap();
        rec += r.recovered;
        lost += r.lost_active;
        all += r.lost;
    }
    println!(
        "fec_recovery: 10% random single-frame loss, 5 × 30 s, {settings:?}: {rec}/{lost} active lost frames recovered \
         from FEC = {:.1} % ({all} frames lost in total, silent ones not scored)",
        100.0 * rec as f64 / lost as f64
    );
}

criterion_group!(benches, fec_rate, overhead_paired, encode, decode, capture_full, mixer);
criterion_main!(benches);
