//! Round-trip oracles of the wire formats: the bodies of the `datagram`, `audio_open` and `control_stream` fuzz
//! targets (the test-support crate includes this file by path), and the checks this crate's property, reserved-bits
//! and corpus tests run, so stable Rust runs exactly what the fuzzers run. Each function panics only when an
//! invariant of the codec is broken (that is the bug the fuzzer looks for); arbitrary input alone never makes it
//! panic.
#![allow(dead_code, unreachable_pub, reason = "each test includes the oracles it needs")]

use bytes::BytesMut;

use voice_proto::control::{ClientMessage, Frame, Message, ServerMessage, decode_frame};
use voice_proto::{Datagram, KeyId, MediaKey, ReplayWindow};

/// Decode any datagram; a valid one must re-encode to the same bytes.
pub fn datagram(data: &[u8]) {
    if let Ok(d) = Datagram::decode(data) {
        let mut out = Vec::with_capacity(data.len());
        d.encode(&mut out);
        assert_eq!(out, data, "datagram re-encodes differently");
        assert_eq!(d.encoded_len(), data.len());
    }
}

/// Open arbitrary relay → client audio through a replay window: must never authenticate by chance, never panic.
pub fn audio_open(data: &[u8]) {
    let key = MediaKey::new(KeyId(0), &[0x42; 32]);
    let mut window = ReplayWindow::new();
    let mut buf = data.to_vec();
    if let Ok(Datagram::AudioDown(a)) = Datagram::decode(data) {
        let start = data.len() - a.payload.len();
        assert!(window.open(&key, a.sender, &a.header, &mut buf[start..]).is_err(), "forged packet authenticated");
        assert!(window.newest().is_none(), "a packet that failed to authenticate moved the window");
    }
}

/// Feed a byte stream to the frame decoder, decode every frame as both message families, and check that every
/// message re-encodes to the same bytes: the same header, and the payload up to the last field the message has
/// (`PROTOCOL.md` §5.1: bytes after it are ignored, room for later revisions; the length prefix shrinks by them).
pub fn control_stream(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut buf) {
        reencodes::<ClientMessage>(&frame);
        reencodes::<ServerMessage>(&frame);
    }
}

/// If `frame` decodes as an `M`, it re-encodes to the same bytes (trailing payload bytes aside), which decode to the
/// same `M`.
fn reencodes<M: Message + PartialEq + std::fmt::Debug>(frame: &Frame) {
    if let Ok(Some(m)) = M::decode(frame) {
        let mut out = BytesMut::new();
        m.encode(&mut out).expect("a decoded message re-encodes");
        // `decode_frame` refused any version but 1 and any non-zero flags byte, so this was the frame's header.
        let [k0, k1] = frame.kind.to_be_bytes();
        assert_eq!(
            out.get(4..8),
            Some(&[voice_proto::CONTROL_VERSION, 0, k0, k1][..]),
            "frame header re-encodes differently"
        );
        let payload = &out[8..];
        assert!(
            frame.payload.starts_with(payload),
            "message re-encodes differently:\n  in  {:02x?}\n  out {payload:02x?}",
            &frame.payload[..],
        );
        let f = decode_frame(&mut out).expect("own frame decodes").expect("own frame complete");
        assert_eq!(M::decode(&f), Ok(Some(m)));
    }
}
