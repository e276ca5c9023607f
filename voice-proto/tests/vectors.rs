//! Every hex test vector in `PROTOCOL.md` is checked here byte for byte, in both directions: the code must encode
//! the described value to exactly the doc's bytes, and decode the doc's bytes to exactly that value. Every vector
//! the code defines must appear in the doc and vice versa, so the spec cannot drift from the code.
//!
//! The spec is read from the crate's own copy, `voice-proto/PROTOCOL.md`, which is packaged with the crate, so this
//! test also runs from the published package. In the repository the copy must be identical to the root
//! `PROTOCOL.md` (the one people edit and link to): `packaged_spec_is_the_repository_spec` checks it (outside the
//! repository there is no root copy and that check has nothing to compare).
//!
//! After a deliberate format change, `VOICE_PROTO_BLESS=1 cargo test -p voice-proto --test vectors` rewrites the
//! hex blocks in `PROTOCOL.md` from the code, in both copies (review the diff!).

use std::collections::BTreeMap;

use bytes::BytesMut;
use voice_proto::control::{
    ChannelConfig, ClientMessage, Credential, ErrorCode, Kind, Member, Message, RoomInfo, SecretBytes, ServerMessage,
    decode_frame,
};
use voice_proto::{
    AudioFlags, AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, Ping, Pong, PublicId, ReceiverReport,
    ReportBlock, Seq, SessionSecret, SessionToken, Timestamp, WhisperTarget, rewrite_up_to_down,
};

/// The crate's copy of the spec (packaged with the crate).
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md");
/// The repository's spec, at the workspace root (absent in the unpacked package).
const REPO_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md");

/// The fixed inputs every vector is built from (also listed in PROTOCOL.md §8).
const TOKEN: SessionToken = SessionToken(0xDEAD_BEEF);
const ME: PublicId = PublicId(42);
fn media_key() -> MediaKey {
    MediaKey::new(KeyId(1), &std::array::from_fn(|i| i as u8))
}
fn secret() -> SessionSecret {
    SessionSecret::new(std::array::from_fn(|i| 0x20 + i as u8))
}

enum Expect {
    /// Bytes that are not a datagram or frame (the derived uplink key): compared, not decoded.
    Raw(Vec<u8>),
    Datagram(Vec<u8>),
    Client(ClientMessage),
    Server(ServerMessage),
}

fn sealed(header: AudioHeader, plain: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let n = media_key().seal_audio_up(&secret().uplink_key(), TOKEN, ME, &header, plain, &mut buf).expect("fits");
    buf[..n].to_vec()
}

fn datagram(d: Datagram<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    d.encode(&mut v);
    v
}

fn member(id: u32, name: &str, speaking: bool) -> Member {
    Member { id: PublicId(id), name: name.into(), muted: false, deafened: id == 7, speaking }
}

fn vectors() -> Vec<(&'static str, Expect)> {
    let h = AudioHeader {
        flags: AudioFlags::NONE,
        key_id: KeyId(1),
        seq: Seq(1000),
        timestamp: Timestamp(960_000),
        target: WhisperTarget::ROOM,
    };
    let up = sealed(h, b"opus-frame");
    let mut down = up.clone();
    let n = rewrite_up_to_down(&mut down, ME).expect("valid audio up");
    down.truncate(n);
    let whisper = sealed(
        // The next frame: seq and timestamp both move on (20 ms = 960 samples).
        AudioHeader {
            flags: AudioFlags::END_OF_TALKSPURT,
            target: WhisperTarget(3),
            seq: Seq(1001),
            timestamp: Timestamp(960_960),
            ..h
        },
        &[0xF8, 0xFF, 0xFE],
    );
    let blocks = [
        ReportBlock { source: PublicId(7), cumulative_lost: 12, jitter_samples: 1440, fraction_lost: 5 },
        ReportBlock { source: PublicId(9), cumulative_lost: 0, jitter_samples: 240, fraction_lost: 0 },
    ];
    let report = ReceiverReport::new(TOKEN, Some(48), &blocks).expect("2 blocks fit");
    let config = ChannelConfig {
        bitrate_bps: 32_000,
        frame_ms: 20,
        channels: 1,
        fec: true,
        dtx: true,
        allow_voice: true,
        max_users: 25,
    };
    let s = secret();
    let uplink = s.uplink_key();
    let ping = uplink.tagged(Datagram::Ping(Ping { token: TOKEN, echo: 0x0001_0203_0405_0607, tag: [0; 8] }));
    let report = uplink.tagged(Datagram::ReceiverReport(report));
    let key32 = SecretBytes(std::array::from_fn(|i| i as u8));
    vec![
        ("uplink_key", Expect::Raw(uplink_key_bytes(&s))),
        ("audio_up", Expect::Datagram(up)),
        ("audio_down", Expect::Datagram(down)),
        ("audio_up_whisper_end", Expect::Datagram(whisper)),
        ("hello", Expect::Datagram(datagram(Datagram::Hello(s.hello(TOKEN, 1))))),
        ("hello_ack", Expect::Datagram(datagram(Datagram::HelloAck(s.hello_ack(ME, 1))))),
        ("ping", Expect::Datagram(datagram(ping))),
        ("pong", Expect::Datagram(datagram(Datagram::Pong(Pong { echo: 0x0001_0203_0405_0607 })))),
        ("receiver_report", Expect::Datagram(datagram(report))),
        (
            "c_login_password",
            Expect::Client(ClientMessage::Login {
                user: "alice".into(),
                credential: Credential::Password("hunter2".into()),
                client: "vc/0.1".into(),
            }),
        ),
        (
            "c_login_token",
            Expect::Client(ClientMessage::Login {
                user: "bob".into(),
                credential: Credential::Token("eyJ0.e30.c2ln".into()),
                client: "bot".into(),
            }),
        ),
        ("c_resume", Expect::Client(ClientMessage::Resume { token: TOKEN, secret: SecretBytes(*s.as_bytes()) })),
        ("c_list_rooms", Expect::Client(ClientMessage::ListRooms)),
        ("c_join", Expect::Client(ClientMessage::Join { room: "lobby".into(), password: None })),
        (
            "c_join_password",
            Expect::Client(ClientMessage::Join { room: "staff".into(), password: Some("s3cret".into()) }),
        ),
        ("c_leave", Expect::Client(ClientMessage::Leave)),
        ("c_set_state", Expect::Client(ClientMessage::SetState { muted: true, deafened: false })),
        ("c_chat", Expect::Client(ClientMessage::Chat { text: "hi all".into() })),
        (
            "c_set_whisper",
            Expect::Client(ClientMessage::SetWhisper {
                target: WhisperTarget(3),
                members: vec![PublicId(7), PublicId(9)],
            }),
        ),
        (
            "c_quality_report",
            Expect::Client(ClientMessage::QualityReport {
                rtt_ms: 48,
                loss_permille: 25,
                jitter_ms: 12,
                playout_delay_ms: 60,
            }),
        ),
        ("c_quit", Expect::Client(ClientMessage::Quit)),
        ("c_ping", Expect::Client(ClientMessage::Ping { nonce: 99 })),
        ("c_pong", Expect::Client(ClientMessage::Pong { nonce: 99 })),
        (
            "s_login_ok",
            Expect::Server(ServerMessage::LoginOk {
                token: TOKEN,
                public_id: ME,
                secret: SecretBytes(*s.as_bytes()),
                udp_port: 7001,
                resume_grace_s: 60,
                server_name: "home".into(),
            }),
        ),
        ("s_resume_ok", Expect::Server(ServerMessage::ResumeOk { public_id: ME })),
        (
            "s_room_list",
            Expect::Server(ServerMessage::RoomList {
                rooms: vec![
                    RoomInfo {
                        name: "lobby".into(),
                        members: 3,
                        max_users: 25,
                        has_password: false,
                        allow_voice: true,
                    },
                    RoomInfo { name: "staff".into(), members: 0, max_users: 0, has_password: true, allow_voice: true },
                ],
            }),
        ),
        (
            "s_room_state",
            Expect::Server(ServerMessage::RoomState {
                room: "lobby".into(),
                config,
                members: vec![member(42, "alice", false), member(7, "bob", true)],
            }),
        ),
        ("s_member_joined", Expect::Server(ServerMessage::MemberJoined { member: member(9, "carol", false) })),
        ("s_member_left", Expect::Server(ServerMessage::MemberLeft { id: PublicId(9) })),
        (
            "s_member_updated",
            Expect::Server(ServerMessage::MemberUpdated {
                member: Member { id: PublicId(7), name: "bob".into(), muted: true, deafened: true, speaking: false },
            }),
        ),
        ("s_speaking", Expect::Server(ServerMessage::Speaking { id: PublicId(7), speaking: true })),
        (
            "s_chat",
            Expect::Server(ServerMessage::Chat {
                from: PublicId(7),
                from_name: "bob".into(),
                sent_at_ms: 1_763_800_000_000,
                history: true,
                text: "hey".into(),
            }),
        ),
        ("s_media_key", Expect::Server(ServerMessage::MediaKey { key_id: KeyId(1), key: key32 })),
        ("s_channel_config", Expect::Server(ServerMessage::ChannelConfig { config })),
        (
            "s_bitrate_hint",
            Expect::Server(ServerMessage::BitrateHint { bitrate_bps: 24_000, fec: true, expected_loss_pct: 10 }),
        ),
        ("s_room_left", Expect::Server(ServerMessage::RoomLeft)),
        (
            "s_error",
            Expect::Server(ServerMessage::Error { code: ErrorCode::ROOM_FULL, message: "room is full".into() }),
        ),
        (
            "s_goodbye",
            Expect::Server(ServerMessage::Goodbye { code: ErrorCode::SHUTTING_DOWN, message: "restart".into() }),
        ),
        ("s_ping", Expect::Server(ServerMessage::Ping { nonce: 7 })),
        ("s_pong", Expect::Server(ServerMessage::Pong { nonce: 7 })),
    ]
}

/// The uplink key as `PROTOCOL.md` §2.8 derives it, computed here independently of `SessionSecret::uplink_key`:
/// HMAC-SHA-256(secret, "voice uplink tag v2"), first 16 bytes.
fn uplink_key_bytes(s: &SessionSecret) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.as_bytes());
    let full = ring::hmac::sign(&key, b"voice uplink tag v2");
    let bytes = full.as_ref()[..16].to_vec();
    // The crate's derivation gives the same key: its tags match tags made from these bytes.
    let mine = voice_proto::UplinkKey::from_bytes(&bytes.clone().try_into().expect("16 bytes"));
    assert_eq!(mine.tag(b"x"), s.uplink_key().tag(b"x"), "uplink key derivation differs from the spec");
    bytes
}

fn encode(e: &Expect) -> Vec<u8> {
    match e {
        Expect::Raw(b) | Expect::Datagram(b) => b.clone(),
        Expect::Client(m) => {
            let mut out = BytesMut::new();
            m.encode(&mut out).expect("vector encodes");
            out.to_vec()
        }
        Expect::Server(m) => {
            let mut out = BytesMut::new();
            m.encode(&mut out).expect("vector encodes");
            out.to_vec()
        }
    }
}

fn check_decode(name: &str, e: &Expect, bytes: &[u8]) {
    match e {
        Expect::Raw(_) => {}
        Expect::Datagram(_) => {
            let d = Datagram::decode(bytes).unwrap_or_else(|err| panic!("{name}: {err}"));
            let mut again = Vec::new();
            d.encode(&mut again);
            assert_eq!(again, bytes, "{name}: decode/encode differs");
        }
        Expect::Client(m) => {
            let f = decode_frame(&mut BytesMut::from(bytes)).expect("frame").expect("complete frame");
            assert_eq!(ClientMessage::decode(&f).expect("decodes").as_ref(), Some(m), "{name}");
        }
        Expect::Server(m) => {
            let f = decode_frame(&mut BytesMut::from(bytes)).expect("frame").expect("complete frame");
            assert_eq!(ServerMessage::decode(&f).expect("decodes").as_ref(), Some(m), "{name}");
        }
    }
}

fn hex_block(bytes: &[u8]) -> String {
    bytes.chunks(16).map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ") + "\n").collect()
}

/// `<!-- vector: NAME -->` followed by a fenced block: NAME → (byte range of the block body, parsed bytes).
fn doc_vectors(doc: &str) -> BTreeMap<String, (std::ops::Range<usize>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let marker = "<!-- vector: ";
    let mut at = 0;
    while let Some(i) = doc[at..].find(marker) {
        let start = at + i + marker.len();
        let end = start + doc[start..].find(" -->").expect("marker closes");
        let name = doc[start..end].to_string();
        let fence = end + doc[end..].find("```").expect("block after marker");
        let body_start = fence + doc[fence..].find('\n').expect("fence line") + 1;
        let body_end = body_start + doc[body_start..].find("```").expect("block closes");
        let bytes = doc[body_start..body_end]
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("vector {name}: bad hex `{h}`")))
            .collect();
        assert!(out.insert(name.clone(), (body_start..body_end, bytes)).is_none(), "vector {name} twice");
        at = body_end;
    }
    out
}

#[test]
fn protocol_md_vectors_match_the_code() {
    let mut doc = std::fs::read_to_string(DOC).expect("PROTOCOL.md in the crate directory");
    let in_doc = doc_vectors(&doc);
    let code = vectors();
    if std::env::var_os("VOICE_PROTO_BLESS").is_some() {
        // Rewrite from the end so earlier ranges stay valid.
        let mut edits: Vec<_> = code
            .iter()
            .filter_map(|(name, e)| in_doc.get(*name).map(|(range, _)| (range.clone(), hex_block(&encode(e)))))
            .collect();
        edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
        for (range, text) in edits {
            doc.replace_range(range, &text);
        }
        std::fs::write(DOC, &doc).expect("write PROTOCOL.md");
        if std::path::Path::new(REPO_DOC).exists() {
            std::fs::write(REPO_DOC, &doc).expect("write the root PROTOCOL.md");
        }
    }
    let in_doc = doc_vectors(&doc);
    for (name, e) in &code {
        let (_, bytes) = in_doc.get(*name).unwrap_or_else(|| panic!("PROTOCOL.md lacks vector `{name}`"));
        assert_eq!(hex_block(bytes), hex_block(&encode(e)), "vector `{name}` differs from the code");
        check_decode(name, e, bytes);
    }
    for name in in_doc.keys() {
        assert!(code.iter().any(|(n, _)| n == name), "PROTOCOL.md has vector `{name}` the code does not check");
    }
}

#[test]
fn packaged_spec_is_the_repository_spec() {
    // In the repository both copies exist and must not drift; in the unpacked package only the crate's copy does.
    let Ok(repo) = std::fs::read_to_string(REPO_DOC) else { return };
    let copy = std::fs::read_to_string(DOC).expect("PROTOCOL.md in the crate directory");
    assert!(
        copy == repo,
        "voice-proto/PROTOCOL.md differs from the root PROTOCOL.md: after editing the spec, run \
         `cp PROTOCOL.md voice-proto/PROTOCOL.md` (the crate ships its copy)"
    );
}

#[test]
fn every_kind_has_a_vector() {
    let code = vectors();
    let mut datagram_kinds = std::collections::BTreeSet::new();
    let (mut client, mut server) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    for (_, e) in &code {
        match e {
            Expect::Raw(_) => {}
            Expect::Datagram(b) => {
                datagram_kinds.insert(b[1]);
            }
            Expect::Client(m) => {
                client.insert(m.kind());
            }
            Expect::Server(m) => {
                server.insert(m.kind());
            }
        }
    }
    assert_eq!(datagram_kinds.into_iter().collect::<Vec<_>>(), (1..=7).collect::<Vec<u8>>());
    assert_eq!(client.len(), 12, "every client message kind");
    assert_eq!(server.len(), 17, "every server message kind");
    let covered: std::collections::BTreeSet<Kind> = client.union(&server).copied().collect();
    assert_eq!(covered.into_iter().collect::<Vec<_>>(), Kind::ALL, "every kind of `Kind` has a vector");
}

#[test]
fn kinds_convert_to_and_from_their_wire_values() {
    assert!(Kind::ALL.windows(2).all(|w| w[0].to_u16() < w[1].to_u16()), "Kind::ALL is in wire order");
    for &k in Kind::ALL {
        assert_eq!(Kind::from_u16(k.to_u16()), Some(k));
        assert_eq!(u16::from(k), k as u16);
    }
    let known: std::collections::BTreeSet<u16> = Kind::ALL.iter().map(|k| k.to_u16()).collect();
    assert_eq!((0..=u16::MAX).filter(|v| Kind::from_u16(*v).is_some()).count(), known.len());
}

#[test]
fn sealed_vector_opens_with_the_documented_inputs() {
    // The audio_down vector decrypts with the documented key to the documented plaintext.
    let (_, e) = vectors().into_iter().find(|(n, _)| *n == "audio_down").expect("vector");
    let Expect::Datagram(mut bytes) = e else { unreachable!("datagram vector") };
    let (sender, header, start) = match Datagram::decode_from_relay(&bytes).expect("decodes") {
        Datagram::AudioDown(a) => (a.sender, a.header, bytes.len() - a.payload.len()),
        other => panic!("unexpected {other:?}"),
    };
    let plain = media_key().open_in_place(sender, &header, &mut bytes[start..]).expect("opens");
    assert_eq!(plain, b"opus-frame");
}

#[test]
fn tagged_vectors_verify_with_the_documented_key() {
    // Every client → relay vector but the hello ends with a tag over the bytes before it, under the documented key;
    // the same bytes with any bit of the tag flipped do not verify.
    let key = secret().uplink_key();
    for (name, e) in vectors() {
        let Expect::Datagram(bytes) = e else { continue };
        if !matches!(bytes[1], 0x01 | 0x05 | 0x07) {
            continue;
        }
        assert_eq!(key.verify(&bytes), Ok(()), "{name}");
        let mut bad = bytes.clone();
        *bad.last_mut().expect("not empty") ^= 1;
        assert_eq!(key.verify(&bad), Err(voice_proto::CryptoError::BadTag), "{name}");
    }
}
