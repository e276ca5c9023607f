//! voice-jitter benches: push + playout decision per packet, on a generated gamma-jitter trace with bursty loss
//! (reordering, FEC decisions, waits and time-stretch all exercised), for the adaptive and the fixed policy.
//!
//! Target (issue 3): push + decision ≤ 200 ns per packet. The buffer's construction is outside the timed part.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use voice_jitter::{Config, JitterBuffer, Packet, Policy};
use voice_proto::{Seq, Timestamp};
use voice_sim::{self as sim, Model, TraceSpec};

const PACKETS: usize = 2_000;

/// Arrival-ordered (arrival µs, seq) of a trace, and the slot times (one per frame, 20 ms apart).
fn prepared(model: Model) -> (Vec<(u64, u64)>, Vec<u64>) {
    let trace = sim::generate(&TraceSpec::new(model, 1, PACKETS));
    let mut arrivals: Vec<(u64, u64)> =
        trace.iter().filter_map(|p| p.arrival_ms.map(|a| ((a * 1_000.0) as u64, p.seq))).collect();
    arrivals.sort_unstable();
    let first = arrivals[0].0;
    let slots = (0..PACKETS as u64 + 50).map(|i| first + i * 20_000).collect();
    (arrivals, slots)
}

/// Pushes and decides through the whole trace; its times are offsets from `t0`, the buffer's origin.
fn run(jb: &mut JitterBuffer<Bytes>, t0: Instant, arrivals: &[(u64, u64)], slots: &[u64], payload: &Bytes) {
    let mut next = 0;
    for &slot in slots {
        while next < arrivals.len() && arrivals[next].0 <= slot {
            let (at, seq) = arrivals[next];
            let packet = Packet {
                seq: Seq(seq),
                timestamp: Timestamp((seq as u32).wrapping_mul(960)),
                end_of_talkspurt: false,
                payload: payload.clone(),
            };
            let _ = black_box(jb.push(t0 + Duration::from_micros(at), packet));
            next += 1;
        }
        black_box(jb.poll_playout(t0 + Duration::from_micros(slot)));
    }
}

fn push_and_decide(c: &mut Criterion) {
    let payload = Bytes::from_static(&[0x55; 100]);
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut group = c.benchmark_group("jitter");
    for (name, model, policy) in [
        ("adaptive/gamma30-ge5", Model::Gamma30Ge5, Policy::Adaptive),
        ("adaptive/spike5-l2", Model::Spike5L2, Policy::Adaptive),
        ("fixed40/gamma30-ge5", Model::Gamma30Ge5, Policy::Fixed { delay: Duration::from_millis(40) }),
    ] {
        let (arrivals, slots) = prepared(model);
        group.throughput(Throughput::Elements(PACKETS as u64));
        group.bench_function(format!("push+decision per packet/{name}"), |b| {
            b.iter_batched_ref(
                || JitterBuffer::new(Config::default().with_policy(policy), t0).expect("valid config"),
                |jb| run(jb, t0, &arrivals, &slots, &payload),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, push_and_decide);
criterion_main!(benches);
