//! Property tests: arbitrary arrival orders with loss, duplication and reordering, across the 64-bit sequence wrap.
//! Invariants: the statistics count every decision truthfully (played, FEC, concealed, silence slots); no frame is
//! played twice or out of order; FEC only ever stands for the frame just before a buffered one; depth never exceeds
//! capacity.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use voice_jitter::{Action, Config, JitterBuffer, Packet, Policy, Stretch};
use voice_proto::{Seq, Timestamp};

#[derive(Clone, Debug)]
enum Op {
    /// Push frame `rel` (relative to the stream start).
    Push { rel: u16, eot: bool },
    /// One playout slot.
    Slot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..300, prop::bool::weighted(0.02)).prop_map(|(rel, eot)| Op::Push { rel, eot }),
        2 => Just(Op::Slot),
    ]
}

/// Applies `ops` with sequence numbers starting at `base`; panics on a broken invariant.
fn run(ops: &[Op], base: u64, capacity: usize, policy: Policy) {
    let config = Config::default().with_capacity(capacity).with_policy(policy);
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u16> = JitterBuffer::new(config, t0).expect("valid config");
    let mut now = t0 + Duration::from_secs(1);
    let mut last_played: Option<u16> = None;
    let mut pushes = 0u64;
    // Decisions by kind: play, FEC, conceal, silence — the buffer's own counters must agree with them.
    let mut kinds = [0u64; 4];
    for op in ops {
        match *op {
            Op::Push { rel, eot } => {
                let packet = Packet {
                    seq: Seq(base.wrapping_add(u64::from(rel))),
                    timestamp: Timestamp(u32::from(rel).wrapping_mul(960).wrapping_add(u32::MAX - 5_000)),
                    end_of_talkspurt: eot,
                    payload: rel,
                };
                let restarts = jb.stats().restarts;
                pushes += 1;
                let _ = jb.push(now, packet);
                if jb.stats().restarts != restarts {
                    // A jump too large to be a gap is a sender restart: ordering starts over.
                    last_played = None;
                }
                assert!(jb.depth() <= capacity, "depth {} > capacity {capacity}", jb.depth());
            }
            Op::Slot => {
                let decision = jb.poll_playout(now);
                kinds[match decision.action {
                    Action::Play { .. } => 0,
                    Action::DecodeFec { .. } => 1,
                    Action::Conceal { .. } => 2,
                    Action::Silence { .. } => 3,
                }] += 1;
                if let Action::Conceal { .. } = decision.action {
                    assert_eq!(decision.stretch, Stretch::None, "a concealed slot is never stretched");
                }
                match decision.action {
                    Action::Play { seq, payload, .. } => {
                        assert_eq!(seq, Seq(base.wrapping_add(u64::from(payload))));
                        if let Some(last) = last_played {
                            assert!(payload > last, "frame {payload} played after {last}");
                        }
                        last_played = Some(payload);
                    }
                    Action::DecodeFec { missing, next_payload } => {
                        assert_eq!(missing.distance(Seq(base)), i64::from(next_payload) - 1);
                        if let Some(last) = last_played {
                            assert!(next_payload > last + 1, "FEC for frame {} after {last}", next_payload - 1);
                        }
                    }
                    Action::Conceal { samples } => assert_eq!(samples, 960),
                    // Shorter while nothing is buffered (`Tuning::idle_slot`).
                    Action::Silence { samples } => assert!((1..=960).contains(&samples), "silence {samples}"),
                }
                now += Duration::from_millis(20);
            }
        }
    }
    // The statistics count each kind of decision truthfully, and every packet pushed is accounted for exactly
    // once: refused (duplicate, late, overflow), discarded unplayed, played, or still buffered. (A frame recovered
    // from FEC consumed no packet of its own: its successor is still played or counted later.)
    let stats = jb.stats();
    assert_eq!(stats.packets_received, pushes, "every push is counted");
    assert_eq!(
        stats.duplicates + stats.late + stats.overflow + stats.discarded + stats.played + jb.depth() as u64,
        stats.packets_received,
        "packets lost track of: {stats:?}"
    );
    assert_eq!(
        [stats.played, stats.fec_recovered, stats.concealed_frames, stats.silence_frames],
        kinds,
        "stats disagree with the decisions"
    );
    assert!(stats.played <= stats.packets_received);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_orders_keep_invariants(ops in prop::collection::vec(op(), 0..400), cap in 2usize..40, wrap in 0u64..400) {
        // `base` sits just below the 64-bit wrap, so most runs cross it.
        run(&ops, u64::MAX - wrap, cap, Policy::Adaptive);
        run(&ops, u64::MAX - wrap, cap, Policy::Fixed { delay: Duration::from_millis(40) });
    }

    #[test]
    fn jittered_stream_with_loss_and_duplicates(seed in any::<u64>(), loss in 0u32..30, dup in 0u32..20) {
        // A stream in order of arrival: jitter up to 100 ms reorders it; some packets lost, some duplicated.
        let mut rng = voice_sim::Rng::new(seed);
        let mut arrivals: Vec<(u64, u16)> = Vec::new();
        for rel in 0u16..300 {
            if rng.uniform() * 100.0 < f64::from(loss) { continue; }
            let at = u64::from(rel) * 20 + (rng.uniform() * 100.0) as u64;
            arrivals.push((at, rel));
            if rng.uniform() * 100.0 < f64::from(dup) { arrivals.push((at + 7, rel)); }
        }
        arrivals.sort_unstable();
        let mut ops = Vec::new();
        let mut next = 0;
        for slot in 0..400u64 {
            while next < arrivals.len() && arrivals[next].0 <= slot * 20 {
                ops.push(Op::Push { rel: arrivals[next].1, eot: false });
                next += 1;
            }
            ops.push(Op::Slot);
        }
        run(&ops, u64::MAX - 150, 64, Policy::Adaptive);
    }
}

#[test]
fn wraparound_is_seamless() {
    // A clean stream across the wrap: every frame is played, in order, nothing concealed.
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(Config::default(), t0).expect("valid config");
    let base = u64::MAX - 50;
    let mut played = Vec::new();
    // A few slots more than frames: the first frame waits for the start-up target (60 ms).
    for i in 0..210u64 {
        let now = t0 + Duration::from_millis(1_000 + 20 * i);
        if i < 200 {
            let packet = Packet {
                seq: Seq(base.wrapping_add(i)),
                timestamp: Timestamp((i as u32).wrapping_mul(960).wrapping_sub(960 * 100)),
                end_of_talkspurt: i == 199,
                payload: i,
            };
            jb.push(now, packet).expect("fresh packet");
        }
        if let Action::Play { payload, .. } = jb.poll_playout(now).action {
            played.push(payload);
        }
    }
    assert_eq!(played, (0..200).collect::<Vec<_>>());
    assert_eq!(jb.stats().concealed_frames, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Hostile inputs (any sequence number, timestamp and time, even going backwards or before the buffer's origin)
    /// never panic and never overfill the buffer.
    #[test]
    fn extreme_inputs_never_panic(
        pushes in prop::collection::vec(
            (any::<u64>(), any::<u32>(), any::<u64>(), any::<bool>(), any::<bool>(), any::<bool>()),
            0..200,
        ),
        cap in 2usize..20,
    ) {
        #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
        let t0 = Instant::now();
        let mut jb: JitterBuffer<u8> =
            JitterBuffer::new(Config::default().with_capacity(cap), t0).expect("valid config");
        for (seq, ts, now_us, before, eot, slot) in pushes {
            // Up to ~585 000 years after the origin, or before it (an instant the clock may not even represent
            // stays at the origin).
            let offset = Duration::from_micros(now_us);
            let now = if before { t0.checked_sub(offset) } else { t0.checked_add(offset) }.unwrap_or(t0);
            let _ = jb.push(now, Packet { seq: Seq(seq), timestamp: Timestamp(ts), end_of_talkspurt: eot, payload: 0 });
            prop_assert!(jb.depth() <= cap);
            if slot {
                let _ = jb.poll_playout(now);
            }
        }
    }
}
