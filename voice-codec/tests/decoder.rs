//! The plain [`Decoder`]: decode, FEC and concealment lengths, typed errors for bad arguments and corrupt packets,
//! and the same output as the playback pipeline it sits under.

use voice_codec::{ChannelLayout, CodecError, Decoder, OpusSettings, PlaybackConfig, PlaybackPipeline};
use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::audio::{best_correlation, encode_all, speech_like};

fn packets(seconds: usize, seed: u64) -> (Vec<f32>, Vec<Vec<u8>>) {
    let signal = speech_like(48_000 * seconds, seed);
    let packets = encode_all(&signal, OpusSettings::default()).unwrap().into_iter().map(|p| p.expect("no DTX"));
    (signal, packets.collect())
}

#[test]
fn decodes_what_the_capture_side_encoded() {
    let (signal, packets) = packets(2, 11);
    let mut decoder = Decoder::new(ChannelLayout::Mono).unwrap();
    assert_eq!(decoder.channels(), 1);
    let mut out = Vec::new();
    let mut pcm = [0.0f32; 5_760];
    for p in &packets {
        let n = decoder.decode(p, &mut pcm).unwrap();
        assert_eq!(n, 960);
        out.extend_from_slice(&pcm[..n]);
    }
    assert_eq!(out.len(), signal.len());
    let (corr, lag) = best_correlation(&signal, &out, 1_000);
    println!("decoder round trip correlation {corr:.3} at lag {lag}");
    assert!(corr >= 0.9, "correlation {corr}");
}

#[test]
fn the_playback_pipeline_plays_exactly_what_the_decoder_decodes() {
    let (_, packets) = packets(1, 5);
    let mut decoder = Decoder::new(ChannelLayout::Stereo).unwrap();
    let mut pipeline =
        PlaybackPipeline::new(PlaybackConfig { layout: ChannelLayout::Stereo, ..PlaybackConfig::default() }).unwrap();
    let (mut a, mut b) = ([0.0f32; 1_920], [0.0f32; 1_920]);
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(decoder.decode(p, &mut a).unwrap(), 960);
        let action = Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: p.as_slice() };
        pipeline.play(&Playout { action, stretch: Stretch::None }).unwrap();
        assert_eq!(pipeline.read(&mut b), 1_920);
        assert_eq!(a, b, "packet {i}");
    }
}

#[test]
fn fec_and_concealment_fill_the_asked_length() {
    let (_, packets) = packets(1, 3);
    let mut decoder = Decoder::new(ChannelLayout::Mono).unwrap();
    let mut pcm = [0.0f32; 960];
    for p in &packets[..10] {
        decoder.decode(p, &mut pcm).unwrap();
    }
    // Packet 10 lost: recover it from packet 11's FEC data, then decode packet 11 itself.
    assert_eq!(decoder.decode_fec(&packets[11], &mut pcm).unwrap(), 960);
    assert!(pcm.iter().any(|s| *s != 0.0), "FEC produced audio");
    assert_eq!(decoder.decode(&packets[11], &mut pcm).unwrap(), 960);
    // Then two losses in a row: 20 ms and 2.5 ms of concealment.
    assert_eq!(decoder.conceal(&mut pcm).unwrap(), 960);
    assert_eq!(decoder.conceal(&mut pcm[..120]).unwrap(), 120);
    assert_eq!(decoder.decode(&packets[14], &mut pcm).unwrap(), 960);
}

#[test]
fn bad_arguments_and_corrupt_packets_are_typed_errors() {
    let (_, packets) = packets(1, 4);
    let mut mono = Decoder::new(ChannelLayout::Mono).unwrap();
    let mut stereo = Decoder::new(ChannelLayout::Stereo).unwrap();
    let mut pcm = vec![0.0f32; 20_000];
    for corrupt in [&[][..], &[0xff, 0x00, 0x13][..], &[0x03][..]] {
        assert!(matches!(mono.decode(corrupt, &mut pcm), Err(CodecError::CorruptPacket)), "{corrupt:?}");
        assert!(matches!(mono.decode_fec(corrupt, &mut pcm[..960]), Err(CodecError::CorruptPacket)));
    }
    assert!(matches!(
        mono.decode(&packets[0], &mut pcm[..959]),
        Err(CodecError::BufferTooSmall { len: 959, needed: 960 })
    ));
    assert!(matches!(
        stereo.decode(&packets[0], &mut pcm[..1_000]),
        Err(CodecError::BufferTooSmall { len: 1_000, needed: 1_920 })
    ));
    for bad in [0, 100, 959, 5_880] {
        assert!(
            matches!(mono.conceal(&mut pcm[..bad]), Err(CodecError::InvalidFrameLength { samples }) if samples == bad),
            "{bad}"
        );
        assert!(matches!(mono.decode_fec(&packets[1], &mut pcm[..bad]), Err(CodecError::InvalidFrameLength { .. })));
    }
    assert!(matches!(stereo.conceal(&mut pcm[..961]), Err(CodecError::PartialFrame { len: 961, channels: 2 })));
    // After all that, the decoders still work.
    assert_eq!(mono.decode(&packets[0], &mut pcm).unwrap(), 960);
    assert_eq!(stereo.conceal(&mut pcm[..5_760 * 2]).unwrap(), 5_760);
}

#[test]
fn decoding_does_not_allocate() {
    let (_, packets) = packets(1, 9);
    let mut decoder = Decoder::new(ChannelLayout::Mono).unwrap();
    let mut pcm = [0.0f32; 960];
    decoder.decode(&packets[0], &mut pcm).unwrap();
    let info = allocation_counter::measure(|| {
        for (i, p) in packets.iter().enumerate().skip(1) {
            let n = match i % 3 {
                0 => decoder.decode_fec(p, &mut pcm),
                1 => decoder.conceal(&mut pcm),
                _ => decoder.decode(p, &mut pcm),
            };
            assert_eq!(n.unwrap(), 960);
        }
    });
    assert_eq!(info.count_total, 0, "the decoder allocated: {info:?}");
}
