//! Reserved bits and bytes (`PROTOCOL.md` §1: sent as zero, refused on receipt) are refused by every decoder, for
//! every datagram kind and every control field, with an error that names the field; plus the crashes the fuzzers
//! found, each kept as a test (their inputs are also in `fuzz/corpus/`, replayed by `tests/corpus.rs`).

use bytes::BytesMut;
use voice_proto::control::{ChannelConfig, ClientMessage, Member, Message, RoomInfo, ServerMessage, decode_frame};
use voice_proto::{
    AudioDown, AudioFlags, AudioHeader, AudioUp, ControlError, Datagram, DecodeError, KeyId, Ping, Pong, PublicId,
    ReceiverReport, ReportBlock, Seq, SessionSecret, SessionToken, Timestamp, WhisperTarget,
};

#[path = "support/roundtrip.rs"]
mod roundtrip;

fn encode(d: Datagram<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    d.encode(&mut v);
    v
}

/// A reserved field of a datagram: (name, first offset, length, bits that are reserved in each byte).
type Reserved = (&'static str, usize, usize, u8);

/// One valid datagram of every kind, and its reserved fields.
fn datagrams() -> Vec<(Vec<u8>, Vec<Reserved>)> {
    let header = AudioHeader {
        flags: AudioFlags::END_OF_TALKSPURT,
        key_id: KeyId(1),
        seq: Seq(7),
        timestamp: Timestamp(960),
        target: WhisperTarget(2),
    };
    let payload = [0xAB; 20];
    let secret = SessionSecret::new([3; 32]);
    let blocks = [
        ReportBlock { source: PublicId(7), cumulative_lost: 1, jitter_samples: 2, fraction_lost: 3 },
        ReportBlock { source: PublicId(9), cumulative_lost: 4, jitter_samples: 5, fraction_lost: 6 },
    ];
    let report = ReceiverReport::new(SessionToken(5), Some(48), &blocks).expect("2 blocks");
    let flags = vec![("flags bits 1–7", 2, 1, 0xFE)];
    vec![
        (
            encode(Datagram::AudioUp(AudioUp { token: SessionToken(5), header, payload: &payload, tag: [0; 8] })),
            flags.clone(),
        ),
        (encode(Datagram::AudioDown(AudioDown { sender: PublicId(5), header, payload: &payload })), flags),
        (encode(Datagram::Hello(secret.hello(SessionToken(5), 9))), vec![("bytes 2–3", 2, 2, 0xFF)]),
        (encode(Datagram::HelloAck(secret.hello_ack(PublicId(5), 9))), vec![("bytes 2–3", 2, 2, 0xFF)]),
        (
            encode(Datagram::Ping(Ping { token: SessionToken(5), echo: 9, tag: [0; 8] })),
            vec![("bytes 2–3", 2, 2, 0xFF)],
        ),
        (encode(Datagram::Pong(Pong { echo: 9 })), vec![("bytes 2–7", 2, 6, 0xFF)]),
        (
            encode(Datagram::ReceiverReport(report)),
            vec![
                ("byte 2", 2, 1, 0xFF),
                ("bytes 10–11", 10, 2, 0xFF),
                ("block bytes 13–15", 12 + 13, 3, 0xFF),
                ("block bytes 13–15", 12 + 16 + 13, 3, 0xFF),
            ],
        ),
    ]
}

#[test]
fn every_reserved_datagram_bit_is_refused() {
    for (valid, fields) in datagrams() {
        let kind = valid[1];
        assert!(Datagram::decode(&valid).is_ok(), "kind {kind}: the valid datagram decodes");
        let mut reserved_bytes = vec![false; valid.len()];
        for (field, at, len, mask) in fields {
            for offset in at..at + len {
                reserved_bytes[offset] = true;
                for bit in (0..8).map(|b| 1u8 << b).filter(|b| b & mask != 0) {
                    let mut bad = valid.clone();
                    bad[offset] |= bit;
                    let value = bad[offset];
                    let expected = Err(DecodeError::ReservedNotZero { kind, field, offset, value });
                    assert_eq!(Datagram::decode(&bad), expected, "kind {kind} byte {offset} bit {bit:#04x}");
                    let directed = if kind % 2 == 1 {
                        Datagram::decode_from_client(&bad)
                    } else {
                        Datagram::decode_from_relay(&bad)
                    };
                    assert_eq!(directed, expected);
                }
            }
        }
        // Every other byte of the fixed part may hold anything: no field but the reserved ones is refused for being
        // non-zero (version and kind aside).
        let fixed = if kind <= 2 { 22 } else { valid.len() };
        for offset in 2..fixed {
            if !reserved_bytes[offset] {
                let mut other = valid.clone();
                other[offset] ^= 0xFF;
                let r = Datagram::decode(&other);
                assert!(
                    !matches!(r, Err(DecodeError::ReservedNotZero { .. })),
                    "kind {kind} byte {offset} is not reserved: {r:?}"
                );
            }
        }
    }
}

#[test]
fn defined_audio_flags_are_accepted() {
    let payload = [0u8; 16];
    for flags in [AudioFlags::NONE, AudioFlags::END_OF_TALKSPURT, AudioFlags::DEFINED] {
        let header = AudioHeader { flags, ..AudioHeader::default() };
        let wire =
            encode(Datagram::AudioUp(AudioUp { token: SessionToken(1), header, payload: &payload, tag: [0; 8] }));
        assert!(matches!(Datagram::decode(&wire), Ok(Datagram::AudioUp(a)) if a.header.flags == flags));
    }
}

/// The complete frame of `m`.
fn frame_of(m: &ServerMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out).expect("encodes");
    out.to_vec()
}

fn decode_server(bytes: &[u8]) -> Result<Option<ServerMessage>, ControlError> {
    let mut buf = BytesMut::from(bytes);
    let frame = decode_frame(&mut buf)?.expect("complete frame");
    ServerMessage::decode(&frame)
}

#[test]
fn every_reserved_control_bit_is_refused() {
    let config = ChannelConfig::default();
    let member = Member { id: PublicId(7), name: "bob".into(), muted: true, deafened: false, speaking: true };
    let room = RoomInfo { name: "lobby".into(), members: 1, max_users: 0, has_password: true, allow_voice: true };
    // (message, offset of the flags byte in its frame, bits defined there, field).
    let cases = [
        (ServerMessage::ChannelConfig { config }, 8 + 6, 0b111, "config.flags"),
        (
            ServerMessage::RoomState { room: "ab".into(), config, members: vec![member.clone()] },
            8 + 4 + 6,
            0b111,
            "config.flags",
        ),
        (ServerMessage::RoomList { rooms: vec![room] }, 8 + 2 + 7 + 4, 0b11, "room.flags"),
        (ServerMessage::MemberJoined { member: member.clone() }, 8 + 4 + 5, 0b111, "member.flags"),
        (ServerMessage::MemberUpdated { member }, 8 + 4 + 5, 0b111, "member.flags"),
    ];
    for (m, at, defined, field) in cases {
        let valid = frame_of(&m);
        assert_eq!(decode_server(&valid), Ok(Some(m.clone())));
        for bit in (0..8).map(|b| 1u8 << b) {
            let mut bad = valid.clone();
            bad[at] ^= bit;
            let r = decode_server(&bad);
            if bit & defined == 0 {
                assert_eq!(r, Err(ControlError::ReservedNotZero { field, bits: bit }), "{m:?} bit {bit:#04x}");
            } else {
                assert!(matches!(r, Ok(Some(_))), "{m:?}: bit {bit:#04x} is defined");
            }
        }
    }
}

#[test]
fn frame_flags_are_refused_before_the_rest_of_the_frame() {
    let mut frame = BytesMut::new();
    ClientMessage::Ping { nonce: 1 }.encode(&mut frame).expect("encodes");
    for bits in 1..=255u8 {
        let mut bad = frame.clone();
        bad[5] = bits;
        assert_eq!(decode_frame(&mut bad), Err(ControlError::ReservedNotZero { field: "frame.flags", bits }));
        // Six bytes are enough to tell: the connection closes without waiting for the rest.
        let mut head = BytesMut::from(&bad[..6]);
        assert_eq!(decode_frame(&mut head), Err(ControlError::ReservedNotZero { field: "frame.flags", bits }));
    }
    // Also for a kind the receiver does not know (which it would otherwise skip).
    let mut unknown = BytesMut::from(&[0, 0, 0, 4, 1, 0x80, 0x7f, 0x7f][..]);
    assert_eq!(decode_frame(&mut unknown), Err(ControlError::ReservedNotZero { field: "frame.flags", bits: 0x80 }));
}

#[test]
fn errors_name_the_field() {
    let e = DecodeError::ReservedNotZero { kind: 6, field: "bytes 2–7", offset: 4, value: 1 };
    assert_eq!(e.to_string(), "packet kind 0x06: reserved bytes 2–7 not zero (byte 4 is 0x01)");
    let e = ControlError::ReservedNotZero { field: "member.flags", bits: 0x08 };
    assert_eq!(e.to_string(), "field `member.flags` has reserved bits 0x08 set (they must be 0)");
}

/// The crashes found so far, each refused now for the field it abused (their files, in `fuzz/corpus/datagram/`, are
/// replayed by `tests/corpus.rs` too).
#[test]
fn regressions() {
    let cases: [(&str, &[u8], DecodeError); 2] = [
        // (Both in protocol version 2 form: version byte 2, the PING with its uplink tag.)
        // Issue 19 item 8: a PONG with bytes 4–7 non-zero decoded, then re-encoded with zeros there
        // (`regress-pong-reserved-bytes-4-7`).
        (
            "pong",
            &[0x02, 0x06, 0, 0, 0x01, 0x03, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07],
            DecodeError::ReservedNotZero { kind: 0x06, field: "bytes 2–7", offset: 4, value: 0x01 },
        ),
        // Found by `cargo xtask fuzz` (libFuzzer, `datagram`, within 30 s) before the fix: a PING with byte 3
        // non-zero decoded, then re-encoded with a zero there (`regress-ping-reserved-byte-3`).
        (
            "ping",
            &[
                0x02, 0x05, 0x00, 0x6a, 0xbc, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x09,
                0x07, // v2 ping
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, // its uplink tag (not checked by the decoder)
            ],
            DecodeError::ReservedNotZero { kind: 0x05, field: "bytes 2–3", offset: 3, value: 0x6a },
        ),
    ];
    for (what, bytes, error) in cases {
        assert_eq!(Datagram::decode(bytes), Err(error), "{what}");
        roundtrip::datagram(bytes);
    }
}

/// The corpus seeds named `reserved-*` and `regress-*` (`fuzz/corpus/`) are refused for a reserved field, so they
/// keep steering the fuzzers to these checks and keep replaying the crashes. (The corpus is in the repository, not
/// in the published crate: outside the repository there is nothing to check.)
#[test]
fn reserved_corpus_seeds_are_refused_for_their_reserved_field() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    if !fuzz.is_dir() {
        println!("no {} (not in the repository): nothing to check", fuzz.display());
        return;
    }
    let corpus = fuzz.join("corpus");
    let seeds = |target: &str| {
        let mut v: Vec<_> = std::fs::read_dir(corpus.join(target))
            .expect("corpus directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                name.starts_with("reserved-") || name.starts_with("regress-")
            })
            .collect();
        v.sort();
        v
    };
    let datagrams = seeds("datagram");
    assert!(datagrams.len() >= 5, "{datagrams:?}");
    for path in datagrams {
        let bytes = std::fs::read(&path).expect("seed");
        let r = Datagram::decode(&bytes);
        assert!(matches!(r, Err(DecodeError::ReservedNotZero { .. })), "{}: {r:?}", path.display());
    }
    let frames = seeds("control_stream");
    assert!(frames.len() >= 4, "{frames:?}");
    for path in frames {
        let mut buf = BytesMut::from(&std::fs::read(&path).expect("seed")[..]);
        let r = decode_frame(&mut buf).and_then(|f| ServerMessage::decode(&f.expect("a whole frame")));
        assert!(matches!(r, Err(ControlError::ReservedNotZero { .. })), "{}: {r:?}", path.display());
    }
}
