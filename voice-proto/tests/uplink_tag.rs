//! Protocol version 2's uplink tag (`PROTOCOL.md` §2.8) and the refusal of version-1 datagrams (§2.1).

use voice_proto::{
    AudioHeader, CryptoError, Datagram, DecodeError, KeyId, MAX_DATAGRAM_LEN, MediaKey, Ping, PublicId, ReceiverReport,
    ReportBlock, Seq, SessionSecret, SessionToken, UPLINK_TAG_LEN, UplinkKey, rewrite_up_to_down,
};

fn encode(d: Datagram<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    d.encode(&mut v);
    v
}

#[test]
fn siphash_2_4_reference_vector() {
    // The first vectors of the SipHash paper / reference implementation (key 00..0f, message 00..len−1): the tag is
    // SipHash-2-4 with the 64-bit result in little-endian byte order, as §2.8 says.
    let key = UplinkKey::from_bytes(&std::array::from_fn(|i| i as u8));
    assert_eq!(key.tag(&[]), [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]);
    let msg: Vec<u8> = (0..15).collect();
    assert_eq!(key.tag(&msg), [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1]);
}

#[test]
fn tags_verify_and_any_change_fails() {
    let secret = SessionSecret::new([7; 32]);
    let key = secret.uplink_key();
    let media = MediaKey::new(KeyId(1), &[1; 32]);
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let h = AudioHeader { seq: Seq(3), key_id: KeyId(1), ..AudioHeader::default() };
    let n = media.seal_audio_up(&key, SessionToken(9), PublicId(4), &h, b"opus", &mut buf).expect("seals");
    let blocks = [ReportBlock::default()];
    let report = ReceiverReport::new(SessionToken(9), Some(20), &blocks).expect("1 block");
    let datagrams = [
        buf[..n].to_vec(),
        encode(key.tagged(Datagram::Ping(Ping { token: SessionToken(9), echo: 5, tag: [0; UPLINK_TAG_LEN] }))),
        encode(key.tagged(Datagram::ReceiverReport(report))),
    ];
    for d in &datagrams {
        assert_eq!(key.verify(d), Ok(()));
        // It decodes, and re-encodes with the same tag.
        let decoded = Datagram::decode_from_client(d).expect("decodes");
        assert_eq!(&encode(decoded), d);
        // Every single-bit change anywhere (header, body or tag) fails.
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x10;
            assert_eq!(key.verify(&bad), Err(CryptoError::BadTag), "byte {i}");
        }
        // Another session's key fails; a truncated datagram fails.
        assert_eq!(SessionSecret::new([8; 32]).uplink_key().verify(d), Err(CryptoError::BadTag));
        assert_eq!(key.verify(&d[..d.len() - 1]), Err(CryptoError::BadTag));
    }
    assert_eq!(key.verify(&[1, 2, 3]), Err(CryptoError::BadTag), "shorter than a tag");
    // An untagged (zero-tag) ping does not verify.
    let zero = encode(Datagram::Ping(Ping { token: SessionToken(9), echo: 5, tag: [0; UPLINK_TAG_LEN] }));
    assert_eq!(key.verify(&zero), Err(CryptoError::BadTag));
}

#[test]
fn sign_in_place_matches_tagged() {
    let key = SessionSecret::new([2; 32]).uplink_key();
    let mut wire = encode(Datagram::Ping(Ping { token: SessionToken(1), echo: 2, tag: [0; UPLINK_TAG_LEN] }));
    key.sign_in_place(&mut wire).expect("long enough");
    let tagged = encode(key.tagged(Datagram::Ping(Ping { token: SessionToken(1), echo: 2, tag: [0; 8] })));
    assert_eq!(wire, tagged);
    assert!(key.sign_in_place(&mut [0u8; 3]).is_err());
}

#[test]
fn rewrite_cuts_the_tag_off() {
    let key = SessionSecret::new([7; 32]).uplink_key();
    let media = MediaKey::new(KeyId(1), &[1; 32]);
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let h = AudioHeader { seq: Seq(3), key_id: KeyId(1), ..AudioHeader::default() };
    let n = media.seal_audio_up(&key, SessionToken(9), PublicId(4), &h, b"opus", &mut buf).expect("seals");
    let down = rewrite_up_to_down(&mut buf[..n], PublicId(4)).expect("rewrites");
    assert_eq!(down, n - UPLINK_TAG_LEN);
    let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..down]) else { panic!("audio down") };
    let (sender, header, at) = (a.sender, a.header, down - a.payload.len());
    assert_eq!(media.open_in_place(sender, &header, &mut buf[at..down]).expect("opens"), b"opus");
}

#[test]
fn largest_plaintext_fits_and_down_is_bounded() {
    let key = SessionSecret::new([7; 32]).uplink_key();
    let media = MediaKey::new(KeyId(1), &[1; 32]);
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let plain = [0u8; voice_proto::MAX_AUDIO_PLAINTEXT];
    let h = AudioHeader::default();
    let n = media.seal_audio_up(&key, SessionToken(9), PublicId(4), &h, &plain, &mut buf).expect("seals");
    assert_eq!(n, MAX_DATAGRAM_LEN);
    assert!(media.seal_audio_up(&key, SessionToken(9), PublicId(4), &h, &[0; 1155], &mut buf).is_err());
    let down = rewrite_up_to_down(&mut buf, PublicId(4)).expect("rewrites");
    assert_eq!(down, voice_proto::MAX_AUDIO_DOWN_LEN);
    // An AUDIO_DOWN longer than that cannot come from a version-2 relay and is refused.
    assert!(matches!(Datagram::decode_from_relay(&buf), Err(DecodeError::Oversize { len: 1200 })));
}

#[test]
fn version_1_datagrams_are_refused_with_a_clear_error() {
    // The PING vector of protocol version 1 (PROTOCOL.md of version 1, §9.1), and the v1 AUDIO_UP vector.
    let v1_ping = [0x01, 0x05, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7];
    let v1_audio: Vec<u8> =
        "01 01 00 01 de ad be ef 00 00 00 00 00 00 03 e8 00 0e a6 00 00 00 eb 35 0c 4c aa 1e 9c 3e \
                             6d 72 f2 04 ef 12 05 f6 5e 24 76 8c 6c 5e b7 e1 5a f3"
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).expect("hex"))
            .collect();
    for v1 in [&v1_ping[..], &v1_audio[..]] {
        for r in [Datagram::decode(v1), Datagram::decode_from_client(v1), Datagram::decode_from_relay(v1)] {
            assert_eq!(r, Err(DecodeError::UnsupportedVersion(1)));
        }
    }
    // Whatever the length: a v1 datagram padded to a v2 length is still refused for its version.
    let mut padded = v1_ping.to_vec();
    padded.extend_from_slice(&[0; UPLINK_TAG_LEN]);
    assert_eq!(Datagram::decode_from_client(&padded), Err(DecodeError::UnsupportedVersion(1)));
    let e = DecodeError::UnsupportedVersion(1).to_string();
    assert_eq!(e, "unsupported protocol version 1 (this implementation speaks version 2 only)");
    assert_eq!(voice_proto::VERSION, 2);
    // The control frames did not change and keep version 1.
    assert_eq!(voice_proto::CONTROL_VERSION, 1);
}

#[test]
fn untagged_v2_lengths_are_refused() {
    // A version-2 PING or report without its tag has the wrong length.
    let mut ping = vec![0x02, 0x05, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7];
    assert!(matches!(Datagram::decode_from_client(&ping), Err(DecodeError::BadLength { expected: 24, .. })));
    ping.extend_from_slice(&[0; UPLINK_TAG_LEN]);
    assert!(matches!(Datagram::decode_from_client(&ping), Ok(Datagram::Ping(_))));
    let report = [0x02, 0x07, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 48, 0, 0];
    assert!(matches!(Datagram::decode_from_client(&report), Err(DecodeError::TooShort { needed: 20, .. })));
}
