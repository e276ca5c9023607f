//! Scenario tests on generated traces and hand-made streams. They assert behaviour in virtual time (what is played,
//! recovered or concealed, and the delay it is played at), never wall-clock timing.

use std::time::{Duration, Instant};

use voice_jitter::{Action, Config, JitterBuffer, Packet, Policy, PushError, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::{self as sim, Model, TraceSpec};

fn packet(seq: u64, ts: u32, payload: u64) -> Packet<u64> {
    Packet { seq: Seq(seq), timestamp: Timestamp(ts), end_of_talkspurt: false, payload }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn clean_link_recovers_from_a_300ms_spike_within_3s() {
    for seed in [1, 2, 3] {
        let trace = sim::generate(&TraceSpec::new(Model::CleanSpike, seed, 6_000));
        let report = sim::replay(&trace, Config::default(), 0).expect("valid config");
        assert_eq!(report.violations, 0, "seed {seed}");
        assert_eq!(report.late_lost, 0, "seed {seed}: the spike's packets are waited for");
        assert!(report.mean_delay_ms <= 12.0, "seed {seed}: mean {}", report.mean_delay_ms);
        // The spike hits packets sent from 61.0 s; 3 s later playout is back near the link's delay.
        let late: Vec<_> = report.frames.iter().filter(|f| f.slot_ms >= 61_040.0 + 3_000.0).collect();
        assert!(!late.is_empty());
        let worst = late.iter().map(|f| f.delay_ms).fold(0.0, f64::max);
        assert!(worst <= 30.0, "seed {seed}: delay {worst} ms 3 s after the spike");
        // And it did rise during the spike: the buffer waited instead of dropping.
        assert!(report.frames.iter().any(|f| f.delay_ms > 100.0), "seed {seed}");
    }
}

#[test]
fn spiky_link_returns_to_low_delay() {
    for seed in [5, 6] {
        let trace = sim::generate(&TraceSpec::new(Model::Spike5L2, seed, 15_000));
        let report = sim::replay(&trace, Config::default(), u64::MAX - 7_000).expect("valid config");
        assert_eq!(report.violations, 0, "seed {seed}");
        // 2% random loss: the target keeps a frame of room for FEC (~20 ms above the jitter alone).
        assert!(report.p50_delay_ms <= 45.0, "seed {seed}: p50 {}", report.p50_delay_ms);
        assert!(report.late_loss_pct() <= 2.0, "seed {seed}: late {}", report.late_loss_pct());
    }
}

#[test]
fn every_model_replays_without_violations_across_the_wrap() {
    for model in Model::ALL {
        for policy in [Policy::Adaptive, Policy::Fixed { delay: ms(40) }] {
            let trace = sim::generate(&TraceSpec::new(model, 9, 3_000));
            let report =
                sim::replay(&trace, Config::default().with_policy(policy), u64::MAX - 1_500).expect("valid config");
            assert_eq!(report.violations, 0, "{} {policy:?}", model.name());
            assert_eq!(report.played + report.late_lost + report.network_lost, report.sent);
            if matches!(policy, Policy::Fixed { .. }) {
                assert_eq!(report.shrink_ops + report.expand_ops, 0, "the fixed policy never stretches");
            }
        }
    }
}

#[test]
fn fec_is_chosen_when_the_successor_is_buffered() {
    // Constant 40 ms transit, a 60 ms minimum delay: frame 20 is lost, frame 21 is buffered at frame 20's slot.
    let config = Config::default().with_delay_bounds(ms(60), ms(1_000));
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(config, t0).expect("valid config");
    let mut fec = Vec::new();
    for slot in 0..100u64 {
        let now = t0 + ms(1_000 + 20 * slot);
        if slot != 20 && slot < 90 {
            let p = Packet { end_of_talkspurt: slot == 89, ..packet(500 + slot, (slot as u32) * 960, slot) };
            jb.push(now, p).expect("fresh");
        }
        let d = jb.poll_playout(now);
        if let Action::DecodeFec { missing, next_payload } = d.action {
            fec.push((missing, next_payload));
        }
    }
    assert_eq!(fec, vec![(Seq(520), 21)]);
    assert_eq!(jb.stats().concealed_frames, 0);
}

#[test]
fn talkspurt_after_dtx_starts_without_concealment() {
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(Config::default(), t0).expect("valid config");
    let mut played = 0;
    let mut silence = 0;
    for slot in 0..300u64 {
        let now = t0 + ms(1_000 + 20 * slot);
        // Talkspurt 1: frames 0..50, the last flagged; DTX for 3 s; talkspurt 2: 50 frames, timestamps 3 s later.
        let pkt = match slot {
            0..50 => Some(Packet { end_of_talkspurt: slot == 49, ..packet(slot, slot as u32 * 960, slot) }),
            200..250 => {
                Some(Packet { end_of_talkspurt: slot == 249, ..packet(slot - 150, (slot as u32) * 960, slot - 150) })
            }
            _ => None,
        };
        if let Some(p) = pkt {
            jb.push(now, p).expect("fresh");
        }
        match jb.poll_playout(now).action {
            Action::Play { .. } => played += 1,
            Action::Silence { .. } => silence += 1,
            other => panic!("slot {slot}: {other:?}"),
        }
    }
    assert_eq!(played, 100);
    assert!(silence >= 150);
    assert_eq!(jb.stats().concealed_frames, 0);
}

#[test]
fn sender_restart_reanchors() {
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(Config::default(), t0).expect("valid config");
    let mut played = Vec::new();
    for slot in 0..200u64 {
        let now = t0 + ms(1_000 + 20 * slot);
        let p = if slot < 100 {
            packet(1_000 + slot, slot as u32 * 960, slot)
        } else {
            // Restarted sender: new sequence and timestamp bases.
            packet(9_000_000 + slot, 77_777 + slot as u32 * 960, slot)
        };
        jb.push(now, p).expect("fresh");
        if let Action::Play { payload, .. } = jb.poll_playout(now).action {
            played.push(payload);
        }
    }
    assert_eq!(jb.stats().restarts, 1);
    assert!(played.len() >= 195, "played {}", played.len());
    assert!(played.windows(2).all(|w| w[0] < w[1]));
    assert!(jb.stats().concealed_frames <= 2);
}

#[test]
fn duplicates_and_late_packets_are_counted_and_refused() {
    // No start-up delay: frame 10 plays within a few ms (at the target).
    let mut config = Config::default();
    config.tuning.initial_delay_ms = 0.0;
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(config, t0).expect("valid config");
    jb.push(t0 + ms(0), packet(10, 0, 10)).expect("fresh");
    assert_eq!(jb.push(t0 + ms(1), packet(10, 0, 10)), Err(PushError::Duplicate));
    assert!(matches!(jb.poll_playout(t0 + ms(10)).action, Action::Play { seq: Seq(10), .. }));
    assert_eq!(jb.push(t0 + ms(2), packet(10, 0, 10)), Err(PushError::Duplicate));
    // Frame 11 never arrives in time; frame 12 does; frame 11's slot is given up, then 11 arrives: late.
    jb.push(t0 + ms(20), packet(12, 2 * 960, 12)).expect("fresh");
    for slot in 1..6u64 {
        let _ = jb.poll_playout(t0 + ms(20 * slot));
    }
    assert_eq!(jb.push(t0 + ms(130), packet(11, 960, 11)), Err(PushError::Late));
    let stats = jb.stats();
    assert_eq!((stats.duplicates, stats.late, stats.packets_received), (2, 1, 5));
}

#[test]
fn clock_drift_is_absorbed_by_stretching_not_dropping() {
    for drift_ppm in [-1_000.0, 1_000.0] {
        for model in [Model::Clean, Model::Gamma30Ge5] {
            let spec = TraceSpec { drift_ppm, ..TraceSpec::new(model, 4, 15_000) };
            let trace = sim::generate(&spec);
            let report = sim::replay(&trace, Config::default(), 0).expect("valid config");
            let name = format!("{} drift {drift_ppm}", model.name());
            assert_eq!(report.violations, 0, "{name}");
            assert_eq!(report.stats.discarded, 0, "{name}: frames dropped");
            assert!(report.stats.shrink_ops + report.stats.expand_ops > 0, "{name}");
            // The time each frame spends in the buffer (slot − its own arrival, both on the receiver's clock) stays
            // bounded over 5 minutes: a drift of 0.1% would otherwise add 300 ms (or drain the buffer).
            let residence = |f: &sim::PlayedFrame| {
                let arrival = trace[f.seq as usize].arrival_ms.expect("a played frame arrived");
                f.slot_ms - arrival
            };
            let first: f64 = report.frames.iter().take(3_000).map(residence).sum::<f64>() / 3_000.0;
            let last: f64 = report.frames.iter().rev().take(3_000).map(residence).sum::<f64>() / 3_000.0;
            assert!((last - first).abs() < 30.0, "{name}: first minute {first} ms, last minute {last} ms");
            if model == Model::Clean {
                assert_eq!(report.late_lost, 0, "{name}");
                assert!(report.stats.concealed_frames <= 5, "{name}: {}", report.stats.concealed_frames);
            }
        }
    }
}

#[test]
fn max_delay_bounds_the_playout_delay() {
    let trace = sim::generate(&TraceSpec::new(Model::Spike5L2, 3, 15_000));
    let config = Config::default().with_delay_bounds(Duration::ZERO, ms(100));
    let report = sim::replay(&trace, config, 0).expect("valid config");
    let worst = report.frames.iter().map(|f| f.delay_ms).fold(0.0, f64::max);
    assert!(worst <= 100.0 + 2.0 * 20.0 + 10.0, "worst {worst}");
}

#[test]
fn fixed_policy_plays_at_its_watermark() {
    let trace = sim::generate(&TraceSpec::new(Model::Clean, 1, 1_000));
    let report =
        sim::replay(&trace, Config::default().with_policy(Policy::Fixed { delay: ms(40) }), 0).expect("valid config");
    assert!((39.0..=41.0).contains(&report.mean_delay_ms), "{}", report.mean_delay_ms);
    assert_eq!(report.late_lost, 0);
}

#[test]
fn stretch_requests_stay_within_a_frame() {
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(Config::default(), t0).expect("valid config");
    // A burst of 20 frames at once after a silence: the buffer is deep and asks to shrink, never by a frame.
    for i in 0..20u64 {
        jb.push(t0 + ms(1_000), packet(i, i as u32 * 960, i)).expect("fresh");
    }
    for slot in 0..20u64 {
        match jb.poll_playout(t0 + ms(1_000 + 20 * slot)).stretch {
            Stretch::Shrink { samples } | Stretch::Expand { samples } => assert!(samples < 960),
            Stretch::None => {}
        }
    }
}

#[test]
fn invalid_configs_are_refused() {
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    assert!(JitterBuffer::<u64>::new(Config::default().with_frame_ms(25), t0).is_err());
    assert!(JitterBuffer::<u64>::new(Config::default().with_capacity(1), t0).is_err());
    assert!(JitterBuffer::<u64>::new(Config::default().with_delay_bounds(ms(200), ms(100)), t0).is_err());
}

#[test]
fn times_before_the_origin_count_as_the_origin() {
    // Two buffers with the same origin: one is given instants before it, the other the origin itself. Neither
    // panics, and they decide alike.
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let origin = t0 + ms(5_000);
    let mut early: JitterBuffer<u64> = JitterBuffer::new(Config::default(), origin).expect("valid config");
    let mut exact: JitterBuffer<u64> = JitterBuffer::new(Config::default(), origin).expect("valid config");
    for i in 0..10u64 {
        let before = t0 + ms(100 * i);
        assert_eq!(early.push(before, packet(i, i as u32 * 960, i)), exact.push(origin, packet(i, i as u32 * 960, i)));
        assert_eq!(early.poll_playout(before), exact.poll_playout(origin));
    }
    assert_eq!(early.stats(), exact.stats());
}
