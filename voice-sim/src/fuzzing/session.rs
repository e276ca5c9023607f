//! Body of the `session` fuzz target: the client's sans-IO [`Session`] fed arbitrary control bytes, datagrams,
//! time, disconnects and application calls.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use voice_client::{ConnectionCommand, Session, SessionConfig, TalkMode};
use voice_proto::control::{ChannelConfig, Credential, Member, Message, SecretBytes, ServerMessage};
use voice_proto::{
    AudioFlags, AudioHeader, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, Seq, SessionSecret, SessionToken, Timestamp,
    WhisperTarget, rewrite_up_to_down,
};

const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 7000);
const RELAY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 7001);
const STRANGER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 9)), 7001);
const ME: PublicId = PublicId(42);
const OTHER: PublicId = PublicId(43);
const SECRET: [u8; 32] = [9; 32];
const KEY: [u8; 32] = [3; 32];

/// Drives a [`Session`] from `data` and checks what it may never do whatever it is fed: send a datagram anywhere
/// but the relay, or ask for a connection while one is open.
///
/// Byte 0: bit 0 starts the session logged in and in a room with another member and a media key (so arbitrary
/// input reaches the audio path at once), bit 1 pushes to talk, bits 2–3 the frame size. Then each op is one byte
/// (`op % 8`) followed by its operands:
/// 0 control bytes (a length byte, then that many bytes), 1 a raw datagram from the relay (same), 2 a datagram
/// from a stranger, 3 a well-sealed audio packet of the other member (seq delta, flags — reserved bits
/// included —, payload length, payload),
/// 4 time passes (one byte, × 4 ms), 5 playout of the other member, 6 a call of the application (one byte),
/// 7 a valid HELLO_ACK (one byte: its counter) or a disconnect.
pub fn session(data: &[u8]) {
    let Some((&cfg, mut rest)) = data.split_first() else {
        return;
    };
    #[allow(clippy::disallowed_methods, reason = "the simulated clock needs an origin; only offsets from it matter")]
    let mut now = Instant::now();
    let frame_ms = [20, 10, 40, 60][usize::from((cfg >> 2) & 3)];
    let config = SessionConfig::new(SERVER, "fuzz", Credential::Password("pw".into()))
        .with_room("lobby")
        .with_talk_mode(if cfg & 2 != 0 { TalkMode::PushToTalk } else { TalkMode::Continuous });
    let mut s = Session::new(config, now, 1);
    let mut connected = false;
    drain(&mut s, now, &mut connected);
    if cfg & 1 != 0 {
        handshake(&mut s, now, frame_ms);
        drain(&mut s, now, &mut connected);
    }
    let key = MediaKey::new(KeyId(1), &KEY);
    let mut seq = 0u64;
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 8 {
            0..=2 => {
                let (chunk, tail) = take_len(rest);
                rest = tail;
                match op % 8 {
                    0 => s.handle_control_bytes(now, chunk),
                    1 => s.handle_datagram(now, RELAY, BytesMut::from(chunk)),
                    _ => s.handle_datagram(now, STRANGER, BytesMut::from(chunk)),
                }
            }
            3 => {
                let [delta, flags, len, tail @ ..] = rest else { return };
                let n = usize::from(*len).min(tail.len());
                let (payload, tail) = tail.split_at(n);
                rest = tail;
                seq = seq.wrapping_add(u64::from(*delta)).wrapping_sub(8);
                let header = AudioHeader {
                    flags: AudioFlags(flags & 3),
                    seq: Seq(seq),
                    timestamp: Timestamp((seq as u32).wrapping_mul(48 * frame_ms)),
                    target: WhisperTarget(u16::from(flags >> 4)),
                    ..AudioHeader::default()
                };
                // The other member's AUDIO_UP as the relay forwards it: rewritten, its uplink tag cut off.
                let uplink = SessionSecret::new([8; 32]).uplink_key();
                if let Ok(len) = key.seal_audio_up(&uplink, SessionToken(1), OTHER, &header, payload, &mut buf)
                    && let Ok(len) = rewrite_up_to_down(&mut buf[..len], OTHER)
                {
                    s.handle_datagram(now, RELAY, BytesMut::from(&buf[..len]));
                }
            }
            4 => {
                let Some((&ms, tail)) = rest.split_first() else { return };
                rest = tail;
                now += Duration::from_millis(u64::from(ms) * 4);
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            5 => {
                let _ = s.poll_playout(now, OTHER);
            }
            6 => {
                let Some((&call, tail)) = rest.split_first() else { return };
                rest = tail;
                call_app(&mut s, now, call);
            }
            _ => {
                let Some((&b, tail)) = rest.split_first() else { return };
                rest = tail;
                if b == 0 {
                    s.handle_disconnected(now);
                    connected = false;
                } else {
                    let ack = SessionSecret::new(SECRET).hello_ack(ME, u64::from(b));
                    let mut out = Vec::new();
                    voice_proto::Datagram::HelloAck(ack).encode(&mut out);
                    s.handle_datagram(now, RELAY, BytesMut::from(&out[..]));
                }
            }
        }
        drain(&mut s, now, &mut connected);
    }
}

/// A length byte and up to that many bytes of `rest`.
fn take_len(rest: &[u8]) -> (&[u8], &[u8]) {
    let Some((&len, tail)) = rest.split_first() else { return (&[], &[]) };
    tail.split_at(usize::from(len).min(tail.len()))
}

fn call_app(s: &mut Session, now: Instant, call: u8) {
    let flag = call & 0x10 != 0;
    match call % 12 {
        0 => drop(s.join("lobby", None)),
        1 => drop(s.join("other", Some("pw"))),
        2 => drop(s.leave()),
        3 => drop(s.send_chat("hello")),
        4 => s.set_muted(flag),
        5 => s.set_deafened(flag),
        6 => drop(s.set_whisper(WhisperTarget(u16::from(call >> 4) + 1), &[OTHER])),
        7 => s.set_ptt(flag),
        8 => s.handle_local_address_changed(now),
        9 => drop(s.list_rooms()),
        10 => s.set_talk_mode(if flag { TalkMode::PushToTalk } else { TalkMode::Continuous }),
        _ => s.close(),
    }
}

/// Logged in, in `lobby` with one other member, holding the media key.
fn handshake(s: &mut Session, now: Instant, frame_ms: u32) {
    let mut deliver = |msg: ServerMessage| {
        let mut buf = BytesMut::new();
        if msg.encode(&mut buf).is_ok() {
            s.handle_control_bytes(now, &buf);
        }
    };
    deliver(ServerMessage::LoginOk {
        token: SessionToken(7),
        public_id: ME,
        secret: SecretBytes(SECRET),
        udp_port: RELAY.port(),
        resume_grace_s: 60,
        server_name: "fuzz".into(),
    });
    deliver(ServerMessage::RoomList { rooms: vec![] });
    let member = |id, name: &str| Member { id, name: name.into(), muted: false, deafened: false, speaking: false };
    deliver(ServerMessage::RoomState {
        room: "lobby".into(),
        config: ChannelConfig { frame_ms: frame_ms as u8, ..ChannelConfig::default() },
        members: vec![member(ME, "fuzz"), member(OTHER, "other")],
    });
    deliver(ServerMessage::MediaKey { key_id: KeyId(1), key: SecretBytes(KEY) });
}

/// Takes every output; checks that datagrams only go to the relay and connections open only when closed.
fn drain(s: &mut Session, now: Instant, connected: &mut bool) {
    for _ in 0..16 {
        let mut moved = false;
        while let Some(cmd) = s.poll_connection() {
            moved = true;
            match cmd {
                ConnectionCommand::Connect => {
                    assert!(!*connected, "a connection asked for while one is open");
                    *connected = true;
                    s.handle_connected(now);
                }
                ConnectionCommand::Close => *connected = false,
            }
        }
        while s.poll_control_bytes().is_some() {
            moved = true;
        }
        while let Some(t) = s.poll_transmit() {
            moved = true;
            assert_eq!(t.destination.ip(), RELAY.ip(), "a datagram to somewhere other than the relay");
        }
        while s.poll_event().is_some() {
            moved = true;
        }
        while s.poll_encoder_hint().is_some() {
            moved = true;
        }
        if !moved {
            return;
        }
    }
}
