//! Body of the `mixer` fuzz target: a room mixer fed arbitrary packets (payload bytes, sequence numbers, timestamps)
//! from a few talkers, listeners coming and going, and time passing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_mixer::{Mixer, MixerConfig, Recipients};
use voice_proto::{PublicId, Seq, Timestamp};

/// Drives a [`Mixer`] from `data` and checks what must hold whatever it is fed: no recipient ever hears itself
/// (a talking listener's own voice is never in its mix, and the shared mix never goes to a talker in it), and
/// every output carries a packet.
///
/// Each op is one byte (`op % 4`) and its operands: 0 a packet (talker byte, seq delta, timestamp delta, a length
/// byte and that many payload bytes), 1 add a listener (one byte: its id), 2 remove a listener or a talker (one
/// byte), 3 time passes (one byte: 0–126 ms, in 2 ms steps) and the due frames are mixed. At most 4 talkers and 4
/// listeners, and 64 ops per input: every mixed frame is a decode per talker and an encode per mix, and what more
/// of them could reach, fewer reach too.
pub fn mixer(data: &[u8]) {
    #[allow(clippy::disallowed_methods, reason = "the simulated clock needs an origin; only offsets from it matter")]
    let t0 = Instant::now();
    let config = MixerConfig::default().with_limits(4, 4);
    let Ok(mut mixer) = Mixer::new(config, t0) else { return };
    let (mut now, mut seq, mut ts) = (t0, 0u64, 0u32);
    let mut rest = data;
    let mut ops = 0;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        ops += 1;
        if ops > 64 {
            return;
        }
        match op % 4 {
            0 => {
                let [talker, dseq, dts, len, tail @ ..] = rest else { return };
                let n = usize::from(*len).min(tail.len());
                let (payload, tail) = tail.split_at(n);
                rest = tail;
                seq = seq.wrapping_add(u64::from(*dseq)).wrapping_sub(4);
                ts = ts.wrapping_add(u32::from(*dts) * 240);
                let id = PublicId(u32::from(talker % 6) + 1);
                let _ = mixer.handle_audio(
                    now,
                    id,
                    Seq(seq),
                    Timestamp(ts),
                    dseq & 0x80 != 0,
                    Bytes::copy_from_slice(payload),
                );
            }
            1 | 2 => {
                let Some((&b, tail)) = rest.split_first() else { return };
                rest = tail;
                let id = PublicId(u32::from(b % 6) + 1);
                if op % 4 == 1 {
                    let _ = mixer.add_listener(id);
                } else if b & 0x80 != 0 {
                    mixer.remove_talker(id);
                } else {
                    mixer.remove_listener(id);
                }
            }
            _ => {
                let Some((&ms, tail)) = rest.split_first() else { return };
                rest = tail;
                now += Duration::from_millis(u64::from(ms % 64) * 2);
                // Corrupt packets are concealed, never an error: a failing mix is a bug.
                mixer.handle_timeout(now).expect("mixing never fails on packet content");
                while let Some(out) = mixer.poll_output() {
                    assert!(!out.payload.is_empty(), "an output without a packet");
                    match out.recipients {
                        Recipients::One(id) => assert!(!out.members.contains(&id), "{id:?} hears itself"),
                        Recipients::Shared(ids) => {
                            assert!(ids.iter().all(|id| !out.members.contains(id)), "a talker gets the shared mix")
                        }
                    }
                }
            }
        }
    }
}
