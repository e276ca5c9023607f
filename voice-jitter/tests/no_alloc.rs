//! "No allocation after construction": push and playout decisions are counted by a counting global allocator
//! (the `allocation-counter` crate installs it; the workspace forbids `unsafe`, which implementing `GlobalAlloc`
//! here would need).

use std::time::{Duration, Instant};

use voice_jitter::{Config, JitterBuffer, Packet, Policy};
use voice_proto::{Seq, Timestamp};
use voice_sim::{self as sim, Model, TraceSpec};

fn drive(policy: Policy) {
    // The trace and the arrival order are prepared before counting.
    let trace = sim::generate(&TraceSpec::new(Model::Gamma30Ge5, 11, 3_000));
    let mut arrivals: Vec<(u64, u64)> =
        trace.iter().filter_map(|p| p.arrival_ms.map(|a| ((a * 1_000.0) as u64, p.seq))).collect();
    arrivals.sort_unstable();
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(Config::default().with_policy(policy), t0).expect("valid config");
    let info = allocation_counter::measure(|| {
        let mut next = 0;
        let mut slot_us = arrivals[0].0;
        let mut decisions = 0u64;
        while next < arrivals.len() {
            while next < arrivals.len() && arrivals[next].0 <= slot_us {
                let (at, seq) = arrivals[next];
                let packet = Packet {
                    seq: Seq(seq),
                    timestamp: Timestamp((seq as u32).wrapping_mul(960)),
                    end_of_talkspurt: seq % 500 == 499,
                    payload: seq,
                };
                let _ = jb.push(t0 + Duration::from_micros(at), packet);
                next += 1;
            }
            let _ = jb.poll_playout(t0 + Duration::from_micros(slot_us));
            decisions += 1;
            slot_us += 20_000;
        }
        assert!(decisions > 1_000);
    });
    assert_eq!(info.count_total, 0, "push/poll allocated {} times", info.count_total);
}

#[test]
fn adaptive_push_and_decisions_do_not_allocate() {
    drive(Policy::Adaptive);
}

#[test]
fn fixed_push_and_decisions_do_not_allocate() {
    drive(Policy::Fixed { delay: Duration::from_millis(40) });
}

#[test]
fn the_counter_counts() {
    // Guards the two tests above against a counter that sees nothing.
    let info = allocation_counter::measure(|| {
        std::hint::black_box(vec![1u8; 16]);
    });
    assert!(info.count_total >= 1);
}
