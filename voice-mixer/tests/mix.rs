//! The mixer end to end: talkers' real Opus packets in, every listener's stream decoded and measured: each talking
//! listener hears everyone but itself, the others share one encode of everyone; nothing allocates per frame.
#![allow(clippy::disallowed_methods, reason = "the simulated clock needs an origin; only offsets from it matter")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_codec::{CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, Decoder};
use voice_mixer::{Mixer, MixerConfig, Recipients};
use voice_proto::{PublicId, Seq, Timestamp};

const FRAME: usize = 960;

/// `frames` Opus packets of a steady tone at `hz`.
fn tone_packets(hz: f32, frames: usize) -> Vec<Bytes> {
    let mut enc = CapturePipeline::new(CaptureConfig::default()).expect("encoder");
    let mut out = Vec::new();
    for f in 0..frames {
        let chunk: Vec<f32> =
            (0..FRAME).map(|i| 0.2 * (std::f32::consts::TAU * hz * (f * FRAME + i) as f32 / 48_000.0).sin()).collect();
        enc.push(&chunk).expect("push");
        while let Some(frame) = enc.poll_frame().expect("encode") {
            if let CaptureFrame::Packet { payload, .. } = frame {
                out.push(Bytes::copy_from_slice(payload));
            }
        }
    }
    out
}

/// Power of `x` at `hz` (Goertzel), normalized by length.
fn power_at(x: &[f32], hz: f32) -> f32 {
    let w = std::f32::consts::TAU * hz / 48_000.0;
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f32).powi(2)
}

struct Run {
    /// Decoded audio per recipient.
    heard: HashMap<PublicId, Vec<f32>>,
    /// Member lists seen per recipient.
    members: HashMap<PublicId, Vec<Vec<PublicId>>>,
    encodes_per_frame: Vec<u64>,
}

/// `talkers` (id, tone) send `frames` packets 20 ms apart (frame `i` of talker `k` lost when `lose(k, i)`);
/// `listeners` are in mixed mode. Every output is decoded per recipient.
fn run(talkers: &[(PublicId, f32)], listeners: &[PublicId], frames: usize, lose: impl Fn(usize, usize) -> bool) -> Run {
    let t0 = Instant::now();
    let mut mixer = Mixer::new(MixerConfig::default(), t0).expect("mixer");
    for &l in listeners {
        mixer.add_listener(l).expect("listener");
    }
    let packets: Vec<Vec<Bytes>> = talkers.iter().map(|&(_, hz)| tone_packets(hz, frames)).collect();
    let mut decoders: HashMap<PublicId, Decoder> =
        listeners.iter().map(|&l| (l, Decoder::new(ChannelLayout::Mono).expect("decoder"))).collect();
    let mut run = Run { heard: HashMap::new(), members: HashMap::new(), encodes_per_frame: Vec::new() };
    let mut pcm = vec![0.0f32; 5_760];
    for i in 0..frames + 10 {
        let now = t0 + Duration::from_millis(20 * i as u64);
        for (k, (&(id, _), stream)) in talkers.iter().zip(&packets).enumerate() {
            if let Some(packet) = stream.get(i).filter(|_| !lose(k, i)) {
                let (seq, ts) = (Seq(i as u64 + 1), Timestamp(960 * i as u32));
                mixer.handle_audio(now, id, seq, ts, false, packet.clone()).expect("audio");
            }
        }
        let before = mixer.stats().encodes;
        mixer.handle_timeout(now).expect("mix");
        run.encodes_per_frame.push(mixer.stats().encodes - before);
        while let Some(out) = mixer.poll_output() {
            let to: Vec<PublicId> = match out.recipients {
                Recipients::One(id) => vec![id],
                Recipients::Shared(ids) => ids.to_vec(),
            };
            for id in to {
                let n = decoders.get_mut(&id).expect("a listener").decode(out.payload, &mut pcm).expect("decodes");
                run.heard.entry(id).or_default().extend_from_slice(&pcm[..n]);
                run.members.entry(id).or_default().push(out.members.to_vec());
            }
        }
    }
    run
}

#[test]
fn each_talker_hears_everyone_else_and_the_others_share_one_encode() {
    let (alice, bob, carol, dave) = (PublicId(1), PublicId(2), PublicId(3), PublicId(4));
    let talkers = [(alice, 300.0), (bob, 500.0), (carol, 700.0)];
    let r = run(&talkers, &[alice, bob, carol, dave], 100, |_, _| false);
    // Steady state (after the jitter buffers' start): three mix-minus encodes and one shared.
    let steady = &r.encodes_per_frame[20..100];
    assert!(steady.iter().all(|&e| e == 4), "encodes per frame: {steady:?}");
    for (me, hz) in [(alice, 300.0), (bob, 500.0), (carol, 700.0)] {
        let heard = &r.heard[&me][FRAME * 20..];
        let own = power_at(heard, hz);
        for (other, ohz) in talkers.iter().filter(|(id, _)| *id != me) {
            let p = power_at(heard, *ohz);
            assert!(p > 1e3 * own, "{me:?} hears {other:?} ({p:e}) far above itself ({own:e})");
        }
        let lists = &r.members[&me];
        assert!(lists[20..].iter().all(|m| m.len() == 2 && !m.contains(&me)), "{me:?}: {:?}", &lists[20..25]);
    }
    let dave_heard = &r.heard[&dave][FRAME * 20..];
    let powers: Vec<f32> = talkers.iter().map(|&(_, hz)| power_at(dave_heard, hz)).collect();
    let (lo, hi) = powers.iter().fold((f32::MAX, 0.0f32), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    assert!(hi < 4.0 * lo, "dave hears all three alike: {powers:?}");
    assert!(r.members[&dave][20..].iter().all(|m| m == &[alice, bob, carol]));
}

#[test]
fn a_lone_talker_gets_no_mix_and_the_room_hears_it() {
    let (alice, bob, carol) = (PublicId(1), PublicId(2), PublicId(3));
    let r = run(&[(alice, 440.0)], &[alice, bob, carol], 60, |_, _| false);
    assert!(!r.heard.contains_key(&alice), "nothing of herself alone");
    assert!(r.encodes_per_frame.iter().all(|&e| e <= 1), "one shared encode per frame at most");
    let heard = &r.heard[&bob][FRAME * 10..];
    assert!(power_at(heard, 440.0) > 1e-4, "bob hears alice");
    assert_eq!(r.heard[&bob], r.heard[&carol], "bob and carol got the very same packets");
}

#[test]
fn lost_packets_are_recovered_from_fec_or_concealed() {
    let (alice, bob) = (PublicId(1), PublicId(2));
    let t0 = Instant::now();
    let mut mixer = Mixer::new(MixerConfig::default(), t0).expect("mixer");
    mixer.add_listener(bob).expect("listener");
    let packets = tone_packets(440.0, 100);
    for (i, p) in packets.iter().enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        if i % 10 != 5 {
            mixer.handle_audio(now, alice, Seq(i as u64), Timestamp(960 * i as u32), false, p.clone()).unwrap();
        }
        mixer.handle_timeout(now).unwrap();
        while mixer.poll_output().is_some() {}
    }
    let s = mixer.stats();
    assert!(s.fec + s.concealed >= 8, "{s:?}");
    assert!(s.fec >= 5, "the successor's FEC stands in for most losses: {s:?}");
}

#[test]
fn mixing_allocates_nothing_per_frame() {
    let ids: Vec<PublicId> = (1..=6).map(PublicId).collect();
    let t0 = Instant::now();
    let mut mixer = Mixer::new(MixerConfig::default(), t0).expect("mixer");
    for &id in &ids {
        mixer.add_listener(id).expect("listener");
    }
    // Packets are handed over, not cloned (a server hands over what it received, split off its receive buffer).
    let mut packets: Vec<Vec<Bytes>> = (0..3).map(|k| tone_packets(300.0 + 150.0 * k as f32, 300)).collect();
    let mut step = |i: usize, mixer: &mut Mixer| {
        let now = t0 + Duration::from_millis(20 * i as u64);
        for (k, talker) in packets.iter_mut().enumerate() {
            let p = std::mem::take(&mut talker[i]);
            mixer.handle_audio(now, ids[k], Seq(i as u64), Timestamp(960 * i as u32), false, p).unwrap();
        }
        mixer.handle_timeout(now).unwrap();
        let mut bytes = 0;
        while let Some(out) = mixer.poll_output() {
            bytes += out.payload.len() + out.members.len();
        }
        bytes
    };
    for i in 0..100 {
        step(i, &mut mixer);
    }
    let mut work = 0;
    let counted = allocation_counter::measure(|| {
        for i in 100..300 {
            work += step(i, &mut mixer);
        }
    });
    assert!(work > 0);
    assert_eq!(counted.count_total, 0, "allocations in 200 frames of 3 talkers and 6 listeners");
    // The counter does count on this thread.
    let probe = allocation_counter::measure(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert!(probe.count_total > 0);
}

#[test]
fn an_overloaded_mix_is_soft_clipped_not_cut_flat() {
    // Four loud talkers: their sum reaches well past full scale; the listener's decoded mix stays within it, with
    // no run of samples stuck at one level (flat tops).
    let (talkers, listener) =
        ([(PublicId(1), 200.0), (PublicId(2), 210.0), (PublicId(3), 220.0), (PublicId(4), 230.0)], PublicId(9));
    let loud: Vec<Vec<Bytes>> = talkers
        .iter()
        .map(|&(_, hz)| {
            let mut enc = CapturePipeline::new(CaptureConfig::default()).expect("encoder");
            let mut out = Vec::new();
            for f in 0..60 {
                let chunk: Vec<f32> = (0..FRAME)
                    .map(|i| 0.6 * (std::f32::consts::TAU * hz * (f * FRAME + i) as f32 / 48_000.0).sin())
                    .collect();
                enc.push(&chunk).expect("push");
                while let Some(CaptureFrame::Packet { payload, .. }) = enc.poll_frame().expect("encode") {
                    out.push(Bytes::copy_from_slice(payload));
                }
            }
            out
        })
        .collect();
    let t0 = Instant::now();
    let mut mixer = Mixer::new(MixerConfig::default(), t0).expect("mixer");
    mixer.add_listener(listener).expect("listener");
    let mut decoder = Decoder::new(ChannelLayout::Mono).expect("decoder");
    let (mut heard, mut pcm) = (Vec::new(), vec![0.0f32; 5_760]);
    for i in 0..60 {
        let now = t0 + Duration::from_millis(20 * i as u64);
        for (&(id, _), stream) in talkers.iter().zip(&loud) {
            mixer.handle_audio(now, id, Seq(i as u64), Timestamp(960 * i as u32), false, stream[i].clone()).unwrap();
        }
        mixer.handle_timeout(now).unwrap();
        while let Some(out) = mixer.poll_output() {
            let n = decoder.decode(out.payload, &mut pcm).unwrap();
            heard.extend_from_slice(&pcm[..n]);
        }
    }
    let peak = heard.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.7 && peak <= 1.05, "loud, and within full scale (plus codec overshoot): {peak}");
    let flat = heard.windows(3).filter(|w| w[0].abs() > 0.7 && w[0] == w[1] && w[1] == w[2]).count();
    assert_eq!(flat, 0, "no flat tops");
}
