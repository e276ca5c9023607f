//! Body of the `jitter` fuzz target, shared with the corpus-replay test so that stable Rust replays exactly what
//! the fuzzer runs. It panics only when an invariant of the buffer is broken; arbitrary input alone never makes it
//! panic.

use std::time::{Duration, Instant};

use voice_proto::{Seq, Timestamp};

use voice_jitter::{Action, Config, JitterBuffer, Packet, Policy};

/// Drives arbitrary pushes and playout slots from `data` and checks the invariants: one decision per slot, no
/// frame played twice or out of order (within one stream: a sequence jump counted in `Stats::restarts` starts a
/// new one), depth never above capacity.
///
/// Byte 0 picks the configuration; then each op is one byte (`op & 3`: 0–1 push, 2 slot, 3 jump of time) followed
/// by its operands.
pub fn jitter(data: &[u8]) {
    let Some((&cfg, mut rest)) = data.split_first() else {
        return;
    };
    let capacity = 2 + usize::from(cfg & 0x0f);
    let policy = if cfg & 0x10 != 0 { Policy::Fixed { delay: Duration::from_millis(40) } } else { Policy::Adaptive };
    let frame_ms = [10, 20, 40, 60][usize::from(cfg >> 6)];
    let config = Config::default().with_capacity(capacity).with_policy(policy).with_frame_ms(frame_ms);
    // Valid by construction: capacity in 2..=17, a supported frame size, default delay bounds.
    // Times are offsets from one origin, which is also the buffer's.
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(config, t0).expect("valid fuzz config");
    let base = u64::MAX - 200; // cross the 64-bit sequence wrap in most runs
    let mut now_us: u64 = 1_000_000;
    let mut last_played: Option<u64> = None;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op & 3 {
            0 | 1 => {
                let Some((&d, tail)) = rest.split_first() else { break };
                rest = tail;
                let rel = u64::from(d) + u64::from(op >> 2) * 256;
                let seq = base.wrapping_add(rel);
                let packet = Packet {
                    seq: Seq(seq),
                    timestamp: Timestamp((rel as u32).wrapping_mul(frame_ms * 48)),
                    end_of_talkspurt: op & 0x80 != 0 && op & 1 == 1,
                    payload: rel,
                };
                let restarts = jb.stats().restarts;
                let _ = jb.push(t0 + Duration::from_micros(now_us), packet);
                if jb.stats().restarts != restarts {
                    // A sender restart: a new stream, ordering starts over.
                    last_played = None;
                }
                assert!(jb.depth() <= capacity, "depth {} above capacity {capacity}", jb.depth());
            }
            2 => {
                let decision = jb.poll_playout(t0 + Duration::from_micros(now_us));
                match decision.action {
                    Action::Play { seq, payload, .. } => {
                        assert_eq!(seq.0, base.wrapping_add(payload), "payload and seq disagree");
                        if let Some(last) = last_played {
                            assert!(payload > last, "frame {payload} played after {last}");
                        }
                        last_played = Some(payload);
                    }
                    Action::DecodeFec { missing, next_payload } => {
                        assert_eq!(missing.distance(Seq(base)), next_payload as i64 - 1, "FEC of a non-successor");
                        if let Some(last) = last_played {
                            assert!(next_payload > last + 1, "FEC for an already played frame");
                        }
                    }
                    Action::Conceal { .. } | Action::Silence { .. } => {}
                }
                now_us += u64::from(frame_ms) * 1_000;
            }
            _ => {
                let Some((&d, tail)) = rest.split_first() else { break };
                rest = tail;
                now_us += u64::from(d) * 1_000;
            }
        }
    }
}
