//! Server → client control messages (kinds 0x0101–0x01FF, plus ping/pong 0x0040/0x0041).

use super::wire::{Fields, Reader, Sink, Writer};
use super::{
    ChannelConfig, ErrorCode, Kind, MAX_CHAT_LEN, MAX_ERROR_TEXT_LEN, MAX_MEMBERS, MAX_NAME_LEN, MAX_ROOMS, Member,
    Message, RoomInfo, SecretBytes, read_list,
};
use crate::error::ControlError;
use crate::types::{KeyId, PublicId, SessionToken};

/// A message the server sends to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// 0x0101: login accepted; the session exists.
    LoginOk {
        /// Token for UDP datagrams and for `Resume`.
        token: SessionToken,
        /// This session's public id.
        public_id: PublicId,
        /// Session secret: key of the hello MAC, proof for `Resume`.
        secret: SecretBytes,
        /// UDP port of the relay (same host as the control connection).
        udp_port: u16,
        /// How long the session survives a dropped TCP connection, seconds.
        resume_grace_s: u16,
        /// Server name, for display.
        server_name: String,
    },
    /// 0x0102: resume accepted; room state and media key follow.
    ResumeOk {
        /// This session's public id (unchanged).
        public_id: PublicId,
    },
    /// 0x0103: the room list.
    RoomList {
        /// Rooms the user may see.
        rooms: Vec<RoomInfo>,
    },
    /// 0x0104: joined `room`; its settings and members (self included).
    RoomState {
        /// Room name.
        room: String,
        /// Voice settings for the encoder.
        config: ChannelConfig,
        /// Members, self included.
        members: Vec<Member>,
    },
    /// 0x0105: a member joined the room.
    MemberJoined {
        /// The newcomer.
        member: Member,
    },
    /// 0x0106: a member left the room.
    MemberLeft {
        /// Who left.
        id: PublicId,
    },
    /// 0x0107: a member's state changed (mute, deafen).
    MemberUpdated {
        /// The member's new state.
        member: Member,
    },
    /// 0x0108: a member started or stopped speaking (derived by the relay from packet flow).
    Speaking {
        /// Who.
        id: PublicId,
        /// Speaking now.
        speaking: bool,
    },
    /// 0x0109: a chat message in the room (live, or history replayed on join).
    Chat {
        /// Author.
        from: PublicId,
        /// Author's name when it was sent.
        from_name: String,
        /// Server time of sending, milliseconds since the Unix epoch.
        sent_at_ms: u64,
        /// Replayed from history on join, not live.
        history: bool,
        /// The text.
        text: String,
    },
    /// 0x010A: the room's media key (on join, and on each rotation).
    MediaKey {
        /// Id carried by packets sealed with this key.
        key_id: KeyId,
        /// AES-256-GCM key.
        key: SecretBytes,
    },
    /// 0x010B: the room's voice settings changed.
    ChannelConfig {
        /// New settings.
        config: ChannelConfig,
    },
    /// 0x010C: the relay suggests encoder settings from receiver reports.
    BitrateHint {
        /// Target bitrate, bits per second.
        bitrate_bps: u32,
        /// Use Opus in-band FEC.
        fec: bool,
        /// Expected packet loss for the encoder, percent (0–100).
        expected_loss_pct: u8,
    },
    /// 0x010D: left the room (answer to `Leave`).
    RoomLeft,
    /// 0x010E: a request failed; the connection stays open.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// 0x010F: the server closes this connection (shutdown, kick); sent last.
    Goodbye {
        /// Why.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// 0x0040: liveness / RTT probe; answered with `Pong`.
    Ping {
        /// Echoed value.
        nonce: u64,
    },
    /// 0x0041: answer to the client's `Ping`.
    Pong {
        /// The ping's value.
        nonce: u64,
    },
}

impl Message for ServerMessage {
    fn kind(&self) -> Kind {
        match self {
            Self::LoginOk { .. } => Kind::LoginOk,
            Self::ResumeOk { .. } => Kind::ResumeOk,
            Self::RoomList { .. } => Kind::RoomList,
            Self::RoomState { .. } => Kind::RoomState,
            Self::MemberJoined { .. } => Kind::MemberJoined,
            Self::MemberLeft { .. } => Kind::MemberLeft,
            Self::MemberUpdated { .. } => Kind::MemberUpdated,
            Self::Speaking { .. } => Kind::Speaking,
            Self::Chat { .. } => Kind::ServerChat,
            Self::MediaKey { .. } => Kind::MediaKey,
            Self::ChannelConfig { .. } => Kind::ChannelConfig,
            Self::BitrateHint { .. } => Kind::BitrateHint,
            Self::RoomLeft => Kind::RoomLeft,
            Self::Error { .. } => Kind::Error,
            Self::Goodbye { .. } => Kind::Goodbye,
            Self::Ping { .. } => Kind::Ping,
            Self::Pong { .. } => Kind::Pong,
        }
    }
}

impl Fields for ServerMessage {
    fn write<S: Sink>(&self, w: &mut Writer<'_, S>) -> Result<(), ControlError> {
        match self {
            Self::LoginOk { token, public_id, secret, udp_port, resume_grace_s, server_name } => {
                w.u32(token.0);
                w.u32(public_id.0);
                w.raw(&secret.0);
                w.u16(*udp_port);
                w.u16(*resume_grace_s);
                w.str("server_name", server_name, MAX_NAME_LEN)?;
            }
            Self::ResumeOk { public_id } => w.u32(public_id.0),
            Self::RoomList { rooms } => {
                w.count("rooms", rooms.len(), MAX_ROOMS)?;
                for r in rooms {
                    r.write(w)?;
                }
            }
            Self::RoomState { room, config, members } => {
                w.str("room", room, MAX_NAME_LEN)?;
                config.write(w);
                w.count("members", members.len(), MAX_MEMBERS)?;
                for m in members {
                    m.write(w)?;
                }
            }
            Self::MemberJoined { member } | Self::MemberUpdated { member } => member.write(w)?,
            Self::MemberLeft { id } => w.u32(id.0),
            Self::Speaking { id, speaking } => {
                w.u32(id.0);
                w.bool(*speaking);
            }
            Self::Chat { from, from_name, sent_at_ms, history, text } => {
                w.u32(from.0);
                w.str("from_name", from_name, MAX_NAME_LEN)?;
                w.u64(*sent_at_ms);
                w.bool(*history);
                w.str("text", text, MAX_CHAT_LEN)?;
            }
            Self::MediaKey { key_id, key } => {
                w.u8(key_id.0);
                w.raw(&key.0);
            }
            Self::ChannelConfig { config } => config.write(w),
            Self::BitrateHint { bitrate_bps, fec, expected_loss_pct } => {
                if *expected_loss_pct > 100 {
                    return Err(ControlError::InvalidValue { field: "expected_loss_pct" });
                }
                w.u32(*bitrate_bps);
                w.bool(*fec);
                w.u8(*expected_loss_pct);
            }
            Self::RoomLeft => {}
            Self::Error { code, message } | Self::Goodbye { code, message } => {
                w.u16(code.0);
                w.str("message", message, MAX_ERROR_TEXT_LEN)?;
            }
            Self::Ping { nonce } | Self::Pong { nonce } => w.u64(*nonce),
        }
        Ok(())
    }

    fn read(kind: Kind, r: &mut Reader<'_>) -> Result<Option<Self>, ControlError> {
        Ok(Some(match kind {
            Kind::LoginOk => Self::LoginOk {
                token: SessionToken(r.u32("token")?),
                public_id: PublicId(r.u32("public_id")?),
                secret: SecretBytes(r.array("secret")?),
                udp_port: r.u16("udp_port")?,
                resume_grace_s: r.u16("resume_grace_s")?,
                server_name: r.str("server_name", MAX_NAME_LEN)?,
            },
            Kind::ResumeOk => Self::ResumeOk { public_id: PublicId(r.u32("public_id")?) },
            Kind::RoomList => Self::RoomList { rooms: read_list(r, "rooms", MAX_ROOMS, RoomInfo::read)? },
            Kind::RoomState => Self::RoomState {
                room: r.str("room", MAX_NAME_LEN)?,
                config: ChannelConfig::read(r)?,
                members: read_list(r, "members", MAX_MEMBERS, Member::read)?,
            },
            Kind::MemberJoined => Self::MemberJoined { member: Member::read(r)? },
            Kind::MemberLeft => Self::MemberLeft { id: PublicId(r.u32("id")?) },
            Kind::MemberUpdated => Self::MemberUpdated { member: Member::read(r)? },
            Kind::Speaking => Self::Speaking { id: PublicId(r.u32("id")?), speaking: r.bool("speaking")? },
            Kind::ServerChat => Self::Chat {
                from: PublicId(r.u32("from")?),
                from_name: r.str("from_name", MAX_NAME_LEN)?,
                sent_at_ms: r.u64("sent_at_ms")?,
                history: r.bool("history")?,
                text: r.str("text", MAX_CHAT_LEN)?,
            },
            Kind::MediaKey => Self::MediaKey { key_id: KeyId(r.u8("key_id")?), key: SecretBytes(r.array("key")?) },
            Kind::ChannelConfig => Self::ChannelConfig { config: ChannelConfig::read(r)? },
            Kind::BitrateHint => {
                let bitrate_bps = r.u32("bitrate_bps")?;
                let fec = r.bool("fec")?;
                let expected_loss_pct = r.u8("expected_loss_pct")?;
                if expected_loss_pct > 100 {
                    return Err(ControlError::InvalidValue { field: "expected_loss_pct" });
                }
                Self::BitrateHint { bitrate_bps, fec, expected_loss_pct }
            }
            Kind::RoomLeft => Self::RoomLeft,
            Kind::Error => {
                Self::Error { code: ErrorCode(r.u16("code")?), message: r.str("message", MAX_ERROR_TEXT_LEN)? }
            }
            Kind::Goodbye => {
                Self::Goodbye { code: ErrorCode(r.u16("code")?), message: r.str("message", MAX_ERROR_TEXT_LEN)? }
            }
            Kind::Ping => Self::Ping { nonce: r.u64("nonce")? },
            Kind::Pong => Self::Pong { nonce: r.u64("nonce")? },
            _ => return Ok(None),
        }))
    }
}
