//! Body of the `codec_decode` fuzz target: every decoder path of the playback pipeline and the mixer.

use voice_jitter::{Action, Playout, Stretch};
use voice_proto::Seq;

use voice_codec::{ChannelLayout, MAX_SLOT_SAMPLES, Mixer, PlaybackConfig, PlaybackPipeline};

/// Records of one input [`codec_decode`] plays.
const MAX_RECORDS: usize = 24;

/// Drives every decoder path with arbitrary bytes and panics only if an invariant breaks (which is a bug).
///
/// The input is a script of records: `[op, stretch, stretch_len, len_lo, len_hi, payload…]`. `op % 4` picks
/// Play / DecodeFec / Conceal / Silence (with the 16-bit length as sample count for the last two, as a payload length
/// for the first two), `stretch % 3` none / shrink / expand by `stretch_len × 8` samples. The first byte of the
/// input chooses mono or stereo output. Every slot's audio goes through a mixer to 44.1 kHz stereo. At most
/// 24 records are played per input: a slot costs up to a few hundred microseconds (decode, pitch search
/// of a stretch, resampling), and what a long script could reach, a short one reaches too.
pub fn codec_decode(data: &[u8]) {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let layout = if first & 1 == 0 { ChannelLayout::Mono } else { ChannelLayout::Stereo };
    let config = PlaybackConfig { layout, ..PlaybackConfig::default() };
    // Valid configuration: construction cannot fail.
    let mut playback = PlaybackPipeline::new(config).expect("valid playback config");
    // Valid device format: construction cannot fail.
    let mut mixer = Mixer::new(layout, 44_100, 2).expect("valid mixer config");
    let mut seq = 0u64;
    let mut records = 0;
    while rest.len() >= 5 && records < MAX_RECORDS {
        records += 1;
        let (op, stretch_kind, stretch_len) = (rest[0], rest[1], u32::from(rest[2]) * 8);
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]]));
        rest = &rest[5..];
        let stretch = match stretch_kind % 3 {
            0 => Stretch::None,
            1 => Stretch::Shrink { samples: stretch_len },
            _ => Stretch::Expand { samples: stretch_len },
        };
        let action = match op % 4 {
            0 | 1 => {
                let take = len.min(rest.len());
                let payload = &rest[..take];
                rest = &rest[take..];
                seq += 1;
                if op % 4 == 0 {
                    Action::Play { seq: Seq(seq), timestamp: voice_proto::Timestamp(0), payload }
                } else {
                    Action::DecodeFec { missing: Seq(seq), next_payload: payload }
                }
            }
            2 => Action::Conceal { samples: len as u32 },
            _ => Action::Silence { samples: len as u32 },
        };
        let before = playback.buffered();
        match playback.play(&Playout { action: action.clone(), stretch }) {
            Ok(report) => {
                assert!(report.samples <= MAX_SLOT_SAMPLES as usize);
                if let Action::Conceal { samples } | Action::Silence { samples } = action {
                    let expected = i64::from(samples) + report.stretched;
                    assert_eq!(report.samples as i64, expected, "slot length");
                }
                if stretch == Stretch::None {
                    assert_eq!(report.stretched, 0);
                }
                assert!(playback.buffered() <= before + report.samples);
            }
            Err(voice_codec::CodecError::SlotTooLong { .. }) => assert!(len > MAX_SLOT_SAMPLES as usize),
            // A fuzz body reports a broken invariant by panicking: that is how the fuzzer finds it.
            Err(e) => panic!("unexpected error {e}"),
        }
        let n = playback.buffered().min(voice_codec::MAX_MIX_SAMPLES);
        // n is bounded by MAX_MIX_SAMPLES, the only error condition of mix.
        let out = mixer.mix([&mut playback], n).expect("bounded mix");
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }
}
