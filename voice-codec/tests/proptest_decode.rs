//! Property tests: arbitrary payload bytes through the decoder never panic and always yield a slot of the right
//! length.

use proptest::prelude::*;
use voice_codec::{PlaybackConfig, PlaybackPipeline, SlotSource, packet_samples};
use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};

fn play(p: &mut PlaybackPipeline, action: Action<&[u8]>) -> voice_codec::SlotReport {
    p.play(&Playout { action, stretch: Stretch::None }).expect("decoding never fails on payload bytes")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes: the slot is the packet's own duration if it parses as Opus, else exactly the stream's frame
    /// length (20 ms) of concealment.
    #[test]
    fn arbitrary_payload_yields_the_frame_length(payload in proptest::collection::vec(any::<u8>(), 0..400),
                                                 fec in any::<bool>()) {
        let mut p = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
        let action = if fec {
            Action::DecodeFec { missing: Seq(1), next_payload: payload.as_slice() }
        } else {
            Action::Play { seq: Seq(1), timestamp: Timestamp(0), payload: payload.as_slice() }
        };
        let report = play(&mut p, action);
        let expected = packet_samples(&payload).unwrap_or(960);
        if report.source == SlotSource::CorruptConcealed {
            prop_assert!(report.samples == 960 || report.samples == expected);
        } else {
            prop_assert_eq!(report.samples, expected);
        }
        prop_assert_eq!(p.buffered(), report.samples);
        let mut out = vec![0.0; report.samples];
        p.read(&mut out);
        prop_assert!(out.iter().all(|s| s.is_finite()));
    }

    /// A 20 ms TOC byte (SILK/CELT/hybrid configs with a 20 ms frame, code 0) followed by garbage: always exactly
    /// 960 samples.
    #[test]
    fn garbage_behind_a_20ms_toc_yields_exactly_960(config in prop::sample::select(vec![1u8, 5, 9, 13, 15, 19, 23, 27, 31]),
                                                    stereo in any::<bool>(),
                                                    body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut p = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
        let mut payload = vec![(config << 3) | (u8::from(stereo) << 2)];
        payload.extend_from_slice(&body);
        let report = play(&mut p, Action::Play { seq: Seq(1), timestamp: Timestamp(0), payload: payload.as_slice() });
        prop_assert_eq!(report.samples, 960);
        // And the next loss is concealed with exactly the frame length too.
        let report = play(&mut p, Action::Conceal { samples: 960 });
        prop_assert_eq!(report.samples, 960);
    }

    /// The fuzz body itself on arbitrary scripts.
    #[test]
    fn fuzz_body_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        voice_sim::fuzzing::codec_decode(&data);
    }
}
