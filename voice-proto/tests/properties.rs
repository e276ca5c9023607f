//! Property tests: encode → decode round trips for every datagram and control message, arbitrary bytes never panic
//! and never read past a declared length, sealing round trips and rejects any tampering, and the replay window
//! agrees with a simple model.

use std::collections::HashSet;

use bytes::BytesMut;
use proptest::prelude::*;
use voice_proto::control::{
    ChannelConfig, ClientMessage, Credential, ErrorCode, Member, Message, RoomInfo, SecretBytes, ServerMessage,
    decode_frame,
};
use voice_proto::{
    AudioDown, AudioFlags, AudioHeader, AudioUp, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, Ping, Pong, PublicId,
    REPLAY_WINDOW, ReceiverReport, ReplayError, ReplayWindow, ReportBlock, Seq, SessionSecret, SessionToken, TAG_LEN,
    Timestamp, WhisperTarget, rewrite_up_to_down,
};

#[path = "support/roundtrip.rs"]
mod roundtrip;

fn header() -> impl Strategy<Value = AudioHeader> {
    // Flags: the defined bits only (the others are reserved and refused).
    (any::<bool>(), any::<u8>(), any::<u64>(), any::<u32>(), any::<u16>()).prop_map(|(end, k, s, t, w)| AudioHeader {
        flags: if end { AudioFlags::END_OF_TALKSPURT } else { AudioFlags::NONE },
        key_id: KeyId(k),
        seq: Seq(s),
        timestamp: Timestamp(t),
        target: WhisperTarget(w),
    })
}

fn name() -> impl Strategy<Value = String> {
    // Up to 16 chars of up to 4 bytes each: at most 64 bytes, the name cap.
    "\\PC{0,16}"
}

fn config() -> impl Strategy<Value = ChannelConfig> {
    (any::<u32>(), prop::sample::select(vec![10u8, 20, 40, 60]), 1u8..=2, any::<[bool; 3]>(), any::<u16>()).prop_map(
        |(bitrate_bps, frame_ms, channels, [fec, dtx, allow_voice], max_users)| ChannelConfig {
            bitrate_bps,
            frame_ms,
            channels,
            fec,
            dtx,
            allow_voice,
            max_users,
        },
    )
}

fn member() -> impl Strategy<Value = Member> {
    (any::<u32>(), name(), any::<[bool; 3]>()).prop_map(|(id, name, [muted, deafened, speaking])| Member {
        id: PublicId(id),
        name,
        muted,
        deafened,
        speaking,
    })
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            name(),
            prop_oneof![name().prop_map(Credential::Password), "[A-Za-z0-9._-]{0,300}".prop_map(Credential::Token)],
            name()
        )
            .prop_map(|(user, credential, client)| ClientMessage::Login { user, credential, client }),
        (any::<u32>(), any::<[u8; 32]>())
            .prop_map(|(t, s)| ClientMessage::Resume { token: SessionToken(t), secret: SecretBytes(s) }),
        Just(ClientMessage::ListRooms),
        (name(), proptest::option::of(name())).prop_map(|(room, password)| ClientMessage::Join { room, password }),
        Just(ClientMessage::Leave),
        any::<(bool, bool)>().prop_map(|(muted, deafened)| ClientMessage::SetState { muted, deafened }),
        "\\PC{0,200}".prop_map(|text| ClientMessage::Chat { text }),
        (any::<u16>(), prop::collection::vec(any::<u32>(), 0..64)).prop_map(|(t, m)| ClientMessage::SetWhisper {
            target: WhisperTarget(t),
            members: m.into_iter().map(PublicId).collect(),
        }),
        any::<[u16; 4]>().prop_map(|[a, b, c, d]| ClientMessage::QualityReport {
            rtt_ms: a,
            loss_permille: b,
            jitter_ms: c,
            playout_delay_ms: d
        }),
        any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ClientMessage::Pong { nonce }),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let room_info = (name(), any::<u16>(), any::<u16>(), any::<(bool, bool)>()).prop_map(
        |(name, members, max_users, (has_password, allow_voice))| RoomInfo {
            name,
            members,
            max_users,
            has_password,
            allow_voice,
        },
    );
    prop_oneof![
        (any::<(u32, u32)>(), any::<[u8; 32]>(), any::<(u16, u16)>(), name()).prop_map(|((t, p), s, (u, g), n)| {
            ServerMessage::LoginOk {
                token: SessionToken(t),
                public_id: PublicId(p),
                secret: SecretBytes(s),
                udp_port: u,
                resume_grace_s: g,
                server_name: n,
            }
        }),
        any::<u32>().prop_map(|p| ServerMessage::ResumeOk { public_id: PublicId(p) }),
        prop::collection::vec(room_info, 0..20).prop_map(|rooms| ServerMessage::RoomList { rooms }),
        (name(), config(), prop::collection::vec(member(), 0..20))
            .prop_map(|(room, config, members)| ServerMessage::RoomState { room, config, members }),
        member().prop_map(|member| ServerMessage::MemberJoined { member }),
        any::<u32>().prop_map(|id| ServerMessage::MemberLeft { id: PublicId(id) }),
        member().prop_map(|member| ServerMessage::MemberUpdated { member }),
        (any::<u32>(), any::<bool>()).prop_map(|(id, speaking)| ServerMessage::Speaking { id: PublicId(id), speaking }),
        (any::<u32>(), name(), any::<u64>(), any::<bool>(), "\\PC{0,200}").prop_map(|(f, n, at, h, text)| {
            ServerMessage::Chat { from: PublicId(f), from_name: n, sent_at_ms: at, history: h, text }
        }),
        (any::<u8>(), any::<[u8; 32]>())
            .prop_map(|(k, key)| ServerMessage::MediaKey { key_id: KeyId(k), key: SecretBytes(key) }),
        config().prop_map(|config| ServerMessage::ChannelConfig { config }),
        (any::<u32>(), any::<bool>(), 0u8..=100).prop_map(|(bitrate_bps, fec, expected_loss_pct)| {
            ServerMessage::BitrateHint { bitrate_bps, fec, expected_loss_pct }
        }),
        Just(ServerMessage::RoomLeft),
        (any::<u16>(), "\\PC{0,100}").prop_map(|(c, message)| ServerMessage::Error { code: ErrorCode(c), message }),
        (any::<u16>(), "\\PC{0,100}").prop_map(|(c, message)| ServerMessage::Goodbye { code: ErrorCode(c), message }),
        any::<u64>().prop_map(|nonce| ServerMessage::Ping { nonce }),
        any::<u64>().prop_map(|nonce| ServerMessage::Pong { nonce }),
    ]
}

fn report_block((source, cumulative_lost, jitter_samples, fraction_lost): (u32, u32, u32, u8)) -> ReportBlock {
    ReportBlock { source: PublicId(source), cumulative_lost, jitter_samples, fraction_lost }
}

/// The wire form of one valid datagram of any kind.
fn datagram_bytes() -> impl Strategy<Value = Vec<u8>> {
    let report = (
        any::<u32>(),
        proptest::option::of(0u16..u16::MAX),
        prop::collection::vec(any::<(u32, u32, u32, u8)>(), 0..=16),
    )
        .prop_map(|(token, rtt, blocks)| {
            let blocks: Vec<_> = blocks.into_iter().map(report_block).collect();
            let mut v = Vec::new();
            Datagram::ReceiverReport(ReceiverReport::new(SessionToken(token), rtt, &blocks).unwrap()).encode(&mut v);
            v
        });
    let encode = |d: Datagram<'_>| {
        let mut v = Vec::new();
        d.encode(&mut v);
        v
    };
    prop_oneof![
        (any::<u32>(), header(), prop::collection::vec(any::<u8>(), TAG_LEN..200), any::<bool>()).prop_map(
            move |(id, header, payload, up)| if up {
                encode(Datagram::AudioUp(AudioUp { token: SessionToken(id), header, payload: &payload, tag: [0; 8] }))
            } else {
                encode(Datagram::AudioDown(AudioDown { sender: PublicId(id), header, payload: &payload }))
            }
        ),
        (any::<u32>(), any::<u64>(), any::<[u8; 32]>(), any::<bool>()).prop_map(move |(id, counter, secret, ack)| {
            let s = SessionSecret::new(secret);
            if ack {
                encode(Datagram::HelloAck(s.hello_ack(PublicId(id), counter)))
            } else {
                encode(Datagram::Hello(s.hello(SessionToken(id), counter)))
            }
        }),
        (any::<u32>(), any::<u64>()).prop_map(move |(t, echo)| encode(Datagram::Ping(Ping {
            token: SessionToken(t),
            echo,
            tag: [0; 8]
        }))),
        any::<u64>().prop_map(move |echo| encode(Datagram::Pong(Pong { echo }))),
        report,
        Just(Vec::new()),
    ]
}

/// A few random byte changes (set, flip, truncate, extend) to valid wire bytes.
fn mutated(valid: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (0u8..4, any::<prop::sample::Index>(), any::<u8>());
    (valid, prop::collection::vec(edit, 0..4)).prop_map(|(mut v, edits)| {
        for (op, at, b) in edits {
            match op {
                _ if v.is_empty() => v.push(b),
                0 => {
                    let i = at.index(v.len());
                    v[i] = b;
                }
                1 => {
                    let i = at.index(v.len());
                    v[i] ^= 1 << (b % 8);
                }
                2 => v.truncate(at.index(v.len())),
                _ => v.push(b),
            }
        }
        v
    })
}

/// Every datagram that decodes re-encodes to exactly its bytes (no field is ignored or normalised on the way).
fn assert_canonical_datagram(wire: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(d) = Datagram::decode(wire) {
        let mut out = Vec::new();
        d.encode(&mut out);
        prop_assert_eq!(&out[..], wire, "{:?} re-encodes differently", d);
        prop_assert_eq!(d.encoded_len(), wire.len());
        // The directional decoders accept exactly the same bytes as the same datagram (or refuse the direction).
        for r in [Datagram::decode_from_client(wire), Datagram::decode_from_relay(wire)] {
            prop_assert!(r == Ok(d) || matches!(r, Err(voice_proto::DecodeError::WrongDirection(_))));
        }
    }
    roundtrip::datagram(wire);
    Ok(())
}

/// The wire form of one valid control frame, of either family.
fn frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        client_message().prop_map(|m| {
            let mut out = BytesMut::new();
            m.encode(&mut out).unwrap();
            out.to_vec()
        }),
        server_message().prop_map(|m| {
            let mut out = BytesMut::new();
            m.encode(&mut out).unwrap();
            out.to_vec()
        }),
    ]
}

/// Every control frame that decodes (as either family) re-encodes to exactly its bytes.
fn assert_canonical_frame(wire: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(wire);
    if let Ok(Some(frame)) = decode_frame(&mut buf) {
        let whole = &wire[..wire.len() - buf.len()];
        let mut out = BytesMut::new();
        match (ClientMessage::decode(&frame), ServerMessage::decode(&frame)) {
            (Ok(Some(m)), _) => m.encode(&mut out).unwrap(),
            (_, Ok(Some(m))) => m.encode(&mut out).unwrap(),
            _ => return Ok(()),
        }
        // Without trailing payload bytes (the generated frames have none), exactly the same bytes; with them (a
        // mutation that grew the length prefix), the same header and the payload up to the last known field.
        if out.len() == whole.len() {
            prop_assert_eq!(&out[..], whole);
        } else {
            prop_assert!(out.len() < whole.len());
            prop_assert_eq!(&out[4..], &whole[4..out.len()]);
        }
    }
    roundtrip::control_stream(wire);
    Ok(())
}

fn roundtrip_datagram(d: Datagram<'_>) {
    let mut wire = Vec::new();
    d.encode(&mut wire);
    assert_eq!(wire.len(), d.encoded_len());
    assert_eq!(Datagram::decode(&wire), Ok(d));
}

proptest! {
    #[test]
    fn audio_roundtrips(token in any::<u32>(), h in header(), payload in prop::collection::vec(any::<u8>(), TAG_LEN..600)) {
        roundtrip_datagram(Datagram::AudioUp(AudioUp { token: SessionToken(token), header: h, payload: &payload, tag: [0; 8] }));
        roundtrip_datagram(Datagram::AudioDown(AudioDown { sender: PublicId(token), header: h, payload: &payload }));
    }

    #[test]
    fn small_datagrams_roundtrip(token in any::<u32>(), counter in any::<u64>(), secret in any::<[u8; 32]>(),
                                 rtt in proptest::option::of(0u16..u16::MAX),
                                 blocks in prop::collection::vec(any::<(u32, u32, u32, u8)>(), 0..=16)) {
        let s = SessionSecret::new(secret);
        let hello = s.hello(SessionToken(token), counter);
        prop_assert_eq!(s.verify_hello(&hello), Ok(()));
        roundtrip_datagram(Datagram::Hello(hello));
        let ack = s.hello_ack(PublicId(token), counter);
        prop_assert_eq!(s.verify_hello_ack(&ack), Ok(()));
        roundtrip_datagram(Datagram::HelloAck(ack));
        roundtrip_datagram(Datagram::Ping(Ping { token: SessionToken(token), echo: counter, tag: [0; 8] }));
        roundtrip_datagram(Datagram::Pong(Pong { echo: counter }));
        let blocks: Vec<_> = blocks.into_iter().map(report_block).collect();
        let r = ReceiverReport::new(SessionToken(token), rtt, &blocks).unwrap();
        prop_assert_eq!(r.blocks().collect::<Vec<_>>(), blocks.clone());
        roundtrip_datagram(Datagram::ReceiverReport(r));
    }

    #[test]
    fn arbitrary_datagrams_never_panic(data in prop::collection::vec(any::<u8>(), 0..1300)) {
        roundtrip::datagram(&data);
        roundtrip::audio_open(&data);
    }

    #[test]
    fn decodable_datagrams_reencode_identically(wire in mutated(datagram_bytes())) {
        assert_canonical_datagram(&wire)?;
    }

    #[test]
    fn arbitrary_decodable_datagrams_reencode_identically(
        kind in 1u8..=7, rest in prop::collection::vec(any::<u8>(), 0..80)
    ) {
        // Version and kind right, everything else random: mostly refusals, sometimes a datagram.
        let wire: Vec<u8> = [1, kind].into_iter().chain(rest).collect();
        assert_canonical_datagram(&wire)?;
    }

    #[test]
    fn decodable_control_frames_reencode_identically(wire in mutated(frame_bytes())) {
        assert_canonical_frame(&wire)?;
    }

    #[test]
    fn trailing_payload_bytes_are_ignored_and_not_reencoded(
        wire in frame_bytes(), extra in prop::collection::vec(any::<u8>(), 1..40)
    ) {
        // PROTOCOL.md §5.1: bytes after the last known field are ignored (room for later revisions).
        let mut longer = wire.clone();
        longer.extend_from_slice(&extra);
        let len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) + extra.len() as u32;
        longer[..4].copy_from_slice(&len.to_be_bytes());
        let decode = |bytes: &[u8]| {
            let frame = decode_frame(&mut BytesMut::from(bytes)).unwrap().unwrap();
            (ClientMessage::decode(&frame).ok().flatten(), ServerMessage::decode(&frame).ok().flatten())
        };
        let (short, long) = (decode(&wire), decode(&longer));
        prop_assert!(short.0.is_some() || short.1.is_some());
        prop_assert_eq!(&short, &long);
        assert_canonical_frame(&longer)?;
    }

    #[test]
    fn datagram_prefixes_never_panic(h in header(), cut in 0usize..64) {
        // Every truncation below the minimum AUDIO_UP length is refused (never read past its end); longer ones
        // decode as packets with a shorter payload (whose uplink tag then fails: it is checked separately).
        let payload = [0u8; 20];
        let mut wire = Vec::new();
        Datagram::AudioUp(AudioUp { token: SessionToken(1), header: h, payload: &payload, tag: [0; 8] }).encode(&mut wire);
        let cut = cut.min(wire.len());
        let r = Datagram::decode(&wire[..cut]);
        prop_assert_eq!(r.is_ok(), cut == 0 || cut >= voice_proto::MIN_AUDIO_UP_LEN);
    }

    #[test]
    fn client_messages_roundtrip(m in client_message(), trailing in prop::collection::vec(any::<u8>(), 0..40)) {
        let mut wire = BytesMut::new();
        m.encode(&mut wire).unwrap();
        wire.extend_from_slice(&trailing);
        let frame = decode_frame(&mut wire).unwrap().unwrap();
        // The decoder took exactly the declared length and left the rest for the next frame.
        prop_assert_eq!(&wire[..], &trailing[..]);
        prop_assert_eq!(ClientMessage::decode(&frame), Ok(Some(m)));
    }

    #[test]
    fn server_messages_roundtrip(m in server_message(), trailing in prop::collection::vec(any::<u8>(), 0..40)) {
        let mut wire = BytesMut::new();
        m.encode(&mut wire).unwrap();
        wire.extend_from_slice(&trailing);
        let frame = decode_frame(&mut wire).unwrap().unwrap();
        prop_assert_eq!(&wire[..], &trailing[..]);
        prop_assert_eq!(ServerMessage::decode(&frame), Ok(Some(m)));
    }

    #[test]
    fn control_frames_split_anywhere(m in server_message(), split in 0usize..200) {
        // Bytes arriving in two reads decode to the same single frame.
        let mut full = BytesMut::new();
        m.encode(&mut full).unwrap();
        let split = split.min(full.len());
        let mut buf = BytesMut::from(&full[..split]);
        let first = decode_frame(&mut buf).unwrap();
        if split < full.len() {
            prop_assert!(first.is_none());
            buf.extend_from_slice(&full[split..]);
            let f = decode_frame(&mut buf).unwrap().unwrap();
            prop_assert_eq!(ServerMessage::decode(&f), Ok(Some(m)));
        }
    }

    #[test]
    fn arbitrary_control_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        roundtrip::control_stream(&data);
    }

    #[test]
    fn seal_open_roundtrip_and_tamper(h in header(), plain in prop::collection::vec(any::<u8>(), 0..400),
                                      sender in any::<u32>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let key = MediaKey::new(h.key_id, &[5; 32]);
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let uplink = SessionSecret::new([6; 32]).uplink_key();
        let n = key.seal_audio_up(&uplink, SessionToken(1), PublicId(sender), &h, &plain, &mut buf).unwrap();
        prop_assert_eq!(uplink.verify(&buf[..n]), Ok(()));
        // Tampering with any single bit of the AUDIO_UP makes its uplink tag fail.
        let mut bad_up = buf;
        bad_up[flip.index(n)] ^= 1 << bit;
        prop_assert!(uplink.verify(&bad_up[..n]).is_err());
        let n = rewrite_up_to_down(&mut buf[..n], PublicId(sender)).unwrap();
        // Tampering with any single bit of the relayed packet makes it fail to open (or to decode).
        let mut bad = buf;
        bad[flip.index(n)] ^= 1 << bit;
        if let Ok(Datagram::AudioDown(a)) = Datagram::decode(&bad[..n]) {
            let (s, hh) = (a.sender, a.header);
            prop_assert!(key.open_in_place(s, &hh, &mut bad[22..n]).is_err());
        }
        let Ok(Datagram::AudioDown(a)) = Datagram::decode(&buf[..n]) else { panic!("relayed packet decodes") };
        let (s, hh) = (a.sender, a.header);
        prop_assert_eq!(&*key.open_in_place(s, &hh, &mut buf[22..n]).unwrap(), &plain[..]);
    }

    #[test]
    fn replay_window_matches_model(seqs in prop::collection::vec(0u64..2000, 1..400)) {
        let mut w = ReplayWindow::new();
        let mut seen = HashSet::new();
        let mut top: Option<u64> = None;
        for s in seqs {
            let expected = if seen.contains(&s) {
                Err(ReplayError::Duplicate)
            } else if top.is_some_and(|t| s + REPLAY_WINDOW <= t) {
                Err(ReplayError::TooOld)
            } else {
                Ok(())
            };
            // A seen number that also fell out of the window may report either reason.
            let got = w.check(Seq(s));
            if seen.contains(&s) && top.is_some_and(|t| s + REPLAY_WINDOW <= t) {
                prop_assert!(got.is_err());
            } else {
                prop_assert_eq!(got, expected, "seq {}", s);
            }
            if got.is_ok() {
                w.commit(Seq(s));
                seen.insert(s);
                top = Some(top.map_or(s, |t| t.max(s)));
            }
        }
    }
}

#[test]
fn forged_packets_do_not_move_the_window() {
    let key = MediaKey::new(KeyId(1), &[1; 32]);
    let other = MediaKey::new(KeyId(1), &[2; 32]);
    let mut w = ReplayWindow::new();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let h = AudioHeader { seq: Seq(500), key_id: KeyId(1), ..AudioHeader::default() };
    let uplink = SessionSecret::new([3; 32]).uplink_key();
    let n = other.seal_audio_up(&uplink, SessionToken(1), PublicId(3), &h, b"x", &mut buf).unwrap() - 8;
    assert!(w.open(&key, PublicId(3), &h, &mut buf[22..n]).is_err());
    assert_eq!(w.newest(), None);
    // The genuine packet with that number is still accepted afterwards.
    let n = key.seal_audio_up(&uplink, SessionToken(1), PublicId(3), &h, b"x", &mut buf).unwrap() - 8;
    assert_eq!(&*w.open(&key, PublicId(3), &h, &mut buf[22..n]).unwrap(), b"x");
}

#[test]
fn hello_with_wrong_secret_or_tampered_counter_fails() {
    let s = SessionSecret::new([9; 32]);
    let mut h = s.hello(SessionToken(5), 10);
    assert!(SessionSecret::new([8; 32]).verify_hello(&h).is_err());
    h.counter = 11;
    assert!(s.verify_hello(&h).is_err());
}

#[test]
fn oversize_messages_are_refused_without_writing() {
    let mut out = BytesMut::new();
    let long = "x".repeat(65);
    let m = ClientMessage::Join { room: long, password: None };
    assert!(m.encode(&mut out).is_err());
    assert!(out.is_empty());
    let m = ClientMessage::SetWhisper { target: WhisperTarget(1), members: vec![PublicId(1); 65] };
    assert!(m.encode(&mut out).is_err());
    assert!(out.is_empty());
    // A declared frame length over the cap is refused before any payload arrives.
    let mut b = BytesMut::from(&[0u8, 1, 0, 1, 1, 0][..]);
    assert!(decode_frame(&mut b).is_err());
}
