//! Client → server control messages (kinds 0x0001–0x00FF, plus ping/pong 0x0040/0x0041).

use super::wire::{Fields, Reader, Sink, Writer};
use super::{
    Kind, MAX_CHAT_LEN, MAX_NAME_LEN, MAX_PASSWORD_LEN, MAX_TOKEN_LEN, MAX_WHISPER_MEMBERS, Message, SecretBytes,
    read_list,
};
use crate::error::ControlError;
use crate::types::{PublicId, SessionToken, WhisperTarget};

/// How a user proves who it is at login.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A password checked against the server's user list (tag 1).
    Password(String),
    /// A token issued by the app's own backend, e.g. a JWT (tag 2).
    Token(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Password(_) => "Password(…)",
            Self::Token(_) => "Token(…)",
        })
    }
}

/// A message a client sends to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// 0x0001: log in. Answered by `LoginOk` or `Error`.
    Login {
        /// User name.
        user: String,
        /// Password or token.
        credential: Credential,
        /// Free-form client software name, for logs.
        client: String,
    },
    /// 0x0002: resume a session after the TCP connection dropped, within the grace period.
    Resume {
        /// The session's token (from `LoginOk`).
        token: SessionToken,
        /// The session secret (from `LoginOk`): proves the resumer is the session's owner.
        secret: SecretBytes,
    },
    /// 0x0003: ask for the room list.
    ListRooms,
    /// 0x0004: join a room (leaving the current one).
    Join {
        /// Room name.
        room: String,
        /// Room password, if the room has one.
        password: Option<String>,
    },
    /// 0x0005: leave the current room.
    Leave,
    /// 0x0006: set own mute / deafen state.
    SetState {
        /// Send no audio.
        muted: bool,
        /// Receive no audio (the relay stops forwarding to this session).
        deafened: bool,
    },
    /// 0x0007: send a chat message to the room.
    Chat {
        /// The text.
        text: String,
    },
    /// 0x0008: set (or, with no members, clear) whisper list `target`.
    SetWhisper {
        /// 1..=65535; audio packets with this target go only to `members`. Target 0 is refused by the server with
        /// `INVALID_WHISPER`.
        target: WhisperTarget,
        /// Public ids of the recipients.
        members: Vec<PublicId>,
    },
    /// 0x0009: how this client receives the room, for the server's bitrate/FEC hints.
    QualityReport {
        /// Round-trip time to the relay, ms.
        rtt_ms: u16,
        /// Network loss, per mille.
        loss_permille: u16,
        /// Interarrival jitter, ms.
        jitter_ms: u16,
        /// Jitter-buffer playout delay, ms.
        playout_delay_ms: u16,
    },
    /// 0x000A: the client quits: the session ends at once (out of its room, token no longer valid) and the server
    /// closes the connection. Without it, a closed connection keeps the session for the resume grace.
    Quit,
    /// 0x0040: liveness / RTT probe; answered with `Pong`.
    Ping {
        /// Echoed value.
        nonce: u64,
    },
    /// 0x0041: answer to the server's `Ping`.
    Pong {
        /// The ping's value.
        nonce: u64,
    },
}

impl Message for ClientMessage {
    fn kind(&self) -> Kind {
        match self {
            Self::Login { .. } => Kind::Login,
            Self::Resume { .. } => Kind::Resume,
            Self::ListRooms => Kind::ListRooms,
            Self::Join { .. } => Kind::Join,
            Self::Leave => Kind::Leave,
            Self::SetState { .. } => Kind::SetState,
            Self::Chat { .. } => Kind::ClientChat,
            Self::SetWhisper { .. } => Kind::SetWhisper,
            Self::QualityReport { .. } => Kind::QualityReport,
            Self::Quit => Kind::Quit,
            Self::Ping { .. } => Kind::Ping,
            Self::Pong { .. } => Kind::Pong,
        }
    }
}

impl Fields for ClientMessage {
    fn write<S: Sink>(&self, w: &mut Writer<'_, S>) -> Result<(), ControlError> {
        match self {
            Self::Login { user, credential, client } => {
                w.str("user", user, MAX_NAME_LEN)?;
                match credential {
                    Credential::Password(p) => {
                        w.u8(1);
                        w.str("password", p, MAX_PASSWORD_LEN)?;
                    }
                    Credential::Token(t) => {
                        w.u8(2);
                        w.str("token", t, MAX_TOKEN_LEN)?;
                    }
                }
                w.str("client", client, MAX_NAME_LEN)?;
            }
            Self::Resume { token, secret } => {
                w.u32(token.0);
                w.raw(&secret.0);
            }
            Self::ListRooms | Self::Leave | Self::Quit => {}
            Self::Join { room, password } => {
                w.str("room", room, MAX_NAME_LEN)?;
                w.bool(password.is_some());
                if let Some(p) = password {
                    w.str("password", p, MAX_PASSWORD_LEN)?;
                }
            }
            Self::SetState { muted, deafened } => {
                w.bool(*muted);
                w.bool(*deafened);
            }
            Self::Chat { text } => w.str("text", text, MAX_CHAT_LEN)?,
            Self::SetWhisper { target, members } => {
                w.u16(target.0);
                w.count("members", members.len(), MAX_WHISPER_MEMBERS)?;
                for m in members {
                    w.u32(m.0);
                }
            }
            Self::QualityReport { rtt_ms, loss_permille, jitter_ms, playout_delay_ms } => {
                w.u16(*rtt_ms);
                w.u16(*loss_permille);
                w.u16(*jitter_ms);
                w.u16(*playout_delay_ms);
            }
            Self::Ping { nonce } | Self::Pong { nonce } => w.u64(*nonce),
        }
        Ok(())
    }

    fn read(kind: Kind, r: &mut Reader<'_>) -> Result<Option<Self>, ControlError> {
        Ok(Some(match kind {
            Kind::Login => {
                let user = r.str("user", MAX_NAME_LEN)?;
                let credential = match r.u8("credential")? {
                    1 => Credential::Password(r.str("password", MAX_PASSWORD_LEN)?),
                    2 => Credential::Token(r.str("token", MAX_TOKEN_LEN)?),
                    _ => return Err(ControlError::InvalidValue { field: "credential" }),
                };
                let client = r.str("client", MAX_NAME_LEN)?;
                Self::Login { user, credential, client }
            }
            Kind::Resume => {
                Self::Resume { token: SessionToken(r.u32("token")?), secret: SecretBytes(r.array("secret")?) }
            }
            Kind::ListRooms => Self::ListRooms,
            Kind::Join => {
                let room = r.str("room", MAX_NAME_LEN)?;
                let password = if r.bool("has_password")? { Some(r.str("password", MAX_PASSWORD_LEN)?) } else { None };
                Self::Join { room, password }
            }
            Kind::Leave => Self::Leave,
            Kind::Quit => Self::Quit,
            Kind::SetState => Self::SetState { muted: r.bool("muted")?, deafened: r.bool("deafened")? },
            Kind::ClientChat => Self::Chat { text: r.str("text", MAX_CHAT_LEN)? },
            Kind::SetWhisper => {
                // Target 0 decodes: it is a request error the server answers with INVALID_WHISPER, not a framing
                // error (PROTOCOL.md §5.3).
                let target = WhisperTarget(r.u16("target")?);
                let members = read_list(r, "members", MAX_WHISPER_MEMBERS, |r| Ok(PublicId(r.u32("members")?)))?;
                Self::SetWhisper { target, members }
            }
            Kind::QualityReport => Self::QualityReport {
                rtt_ms: r.u16("rtt_ms")?,
                loss_permille: r.u16("loss_permille")?,
                jitter_ms: r.u16("jitter_ms")?,
                playout_delay_ms: r.u16("playout_delay_ms")?,
            },
            Kind::Ping => Self::Ping { nonce: r.u64("nonce")? },
            Kind::Pong => Self::Pong { nonce: r.u64("nonce")? },
            _ => return Ok(None),
        }))
    }
}
