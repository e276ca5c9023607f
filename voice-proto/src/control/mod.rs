//! The TCP control plane: length-prefixed, versioned binary frames (`PROTOCOL.md` §5).
//!
//! Messages are decoded into owned values (control traffic is rare; the data plane is the zero-copy one). Unknown
//! message kinds decode to `Ok(None)` and are skipped; every string and list has a hard cap; reserved bits (the
//! frame's flags byte, undefined flag bits) are refused, so a message that decodes re-encodes to the same bytes
//! (bytes after its last known field aside, which are ignored); a decode error means the peer is broken and that one
//! connection is closed.
//!
//! [`ClientMessage`] and [`ServerMessage`] are encoded and decoded through the [`Message`] trait (bring it into scope);
//! [`Kind`] lists every message kind with its wire value.

mod client;
mod message;
mod server;
mod wire;

pub use client::{ClientMessage, Credential};
pub use message::{Kind, Message};
pub use server::ServerMessage;
pub use wire::{FRAME_HEADER_LEN, Frame, LEN_PREFIX, MAX_FRAME_LEN, decode_frame};

use std::fmt;

use crate::error::ControlError;
use crate::types::PublicId;
use wire::{Reader, Sink, Writer};

/// Cap on user, room, client, server and member names (bytes of UTF-8).
pub const MAX_NAME_LEN: usize = 64;
/// Cap on a password (user or room).
pub const MAX_PASSWORD_LEN: usize = 128;
/// Cap on a login token (e.g. a JWT from the app's backend).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Cap on one chat message.
pub const MAX_CHAT_LEN: usize = 4000;
/// Cap on an error or goodbye message text.
pub const MAX_ERROR_TEXT_LEN: usize = 512;
/// Cap on the rooms in one room list.
pub const MAX_ROOMS: usize = 512;
/// Cap on the members in one room state.
pub const MAX_MEMBERS: usize = 512;
/// Cap on the members of one whisper list.
pub const MAX_WHISPER_MEMBERS: usize = 64;

/// 32 secret bytes (a media key or a session secret) inside a control message. `Debug` does not print them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretBytes(pub [u8; 32]);

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(…)")
    }
}

/// Stable numeric error codes (`PROTOCOL.md` §5.5). Unknown codes are kept as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The request was malformed or not valid in this state.
    pub const BAD_REQUEST: Self = Self(1);
    /// The peer speaks an unsupported protocol version.
    pub const UNSUPPORTED_VERSION: Self = Self(2);
    /// Wrong user name, password or token.
    pub const AUTH_FAILED: Self = Self(3);
    /// The request needs a logged-in session.
    pub const NOT_LOGGED_IN: Self = Self(4);
    /// Login or resume on a connection that already has a session.
    pub const ALREADY_LOGGED_IN: Self = Self(5);
    /// No such room, and ad-hoc rooms are not allowed.
    pub const ROOM_NOT_FOUND: Self = Self(6);
    /// The room has `max_users` members already.
    pub const ROOM_FULL: Self = Self(7);
    /// The room password is wrong or missing.
    pub const WRONG_ROOM_PASSWORD: Self = Self(8);
    /// Voice is not allowed in this room (chat only).
    pub const VOICE_NOT_ALLOWED: Self = Self(9);
    /// The request needs the session to be in a room.
    pub const NOT_IN_ROOM: Self = Self(10);
    /// Resume refused: unknown or expired token, or wrong secret.
    pub const RESUME_FAILED: Self = Self(11);
    /// Too many requests.
    pub const RATE_LIMITED: Self = Self(12);
    /// A field or frame exceeds its cap.
    pub const TOO_LARGE: Self = Self(13);
    /// The server is shutting down.
    pub const SHUTTING_DOWN: Self = Self(14);
    /// An operator removed the session.
    pub const KICKED: Self = Self(15);
    /// The server failed; not the client's fault.
    pub const INTERNAL: Self = Self(16);
    /// A whisper list names no member of the room, or target 0.
    pub const INVALID_WHISPER: Self = Self(17);
    /// The session was resumed on another connection: this one is closed (PROTOCOL.md §5.3, Resume).
    pub const REPLACED: Self = Self(18);
    /// A user name, room name or chat text holds control characters (line breaks and tabs are allowed in chat).
    pub const INVALID_NAME: Self = Self(19);
}

/// Voice settings of a room, chosen by the server and applied by every member's encoder.
///
/// The defaults (each field says its own):
///
/// ```
/// use voice_proto::control::ChannelConfig;
///
/// assert_eq!(
///     ChannelConfig::default(),
///     ChannelConfig {
///         bitrate_bps: 32_000,
///         frame_ms: 20,
///         channels: 1,
///         fec: true,
///         dtx: true,
///         allow_voice: true,
///         max_users: 0,
///     }
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelConfig {
    /// Target Opus bitrate in bits per second (e.g. 16 000 for voice, 96 000 for music bots). Default: 32 000.
    pub bitrate_bps: u32,
    /// Frame duration: 10, 20, 40 or 60 ms. Default: 20.
    pub frame_ms: u8,
    /// 1 (mono) or 2 (stereo). Default: 1.
    pub channels: u8,
    /// Opus in-band FEC on. Default: `true`.
    pub fec: bool,
    /// Opus DTX on. Default: `true`.
    pub dtx: bool,
    /// Members may send audio (false = chat-only room). Default: `true`.
    pub allow_voice: bool,
    /// Most members the room admits (0 = unlimited). Default: 0.
    pub max_users: u16,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self { bitrate_bps: 32_000, frame_ms: 20, channels: 1, fec: true, dtx: true, allow_voice: true, max_users: 0 }
    }
}

impl ChannelConfig {
    fn write<S: Sink>(&self, w: &mut Writer<'_, S>) {
        w.u32(self.bitrate_bps);
        w.u8(self.frame_ms);
        w.u8(self.channels);
        w.u8(u8::from(self.fec) | u8::from(self.dtx) << 1 | u8::from(self.allow_voice) << 2);
        w.u16(self.max_users);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ControlError> {
        let bitrate_bps = r.u32("config.bitrate_bps")?;
        let frame_ms = r.u8("config.frame_ms")?;
        if !matches!(frame_ms, 10 | 20 | 40 | 60) {
            return Err(ControlError::InvalidValue { field: "config.frame_ms" });
        }
        let channels = r.u8("config.channels")?;
        if !matches!(channels, 1 | 2) {
            return Err(ControlError::InvalidValue { field: "config.channels" });
        }
        let flags = r.flags("config.flags", 0b111)?;
        let max_users = r.u16("config.max_users")?;
        Ok(Self {
            bitrate_bps,
            frame_ms,
            channels,
            fec: flags & 1 != 0,
            dtx: flags & 2 != 0,
            allow_voice: flags & 4 != 0,
            max_users,
        })
    }
}

/// One room in a room list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomInfo {
    /// Room name (its identifier).
    pub name: String,
    /// Members now.
    pub members: u16,
    /// Most members (0 = unlimited).
    pub max_users: u16,
    /// Joining needs a room password.
    pub has_password: bool,
    /// Members may send audio.
    pub allow_voice: bool,
}

impl RoomInfo {
    fn write<S: Sink>(&self, w: &mut Writer<'_, S>) -> Result<(), ControlError> {
        w.str("room.name", &self.name, MAX_NAME_LEN)?;
        w.u16(self.members);
        w.u16(self.max_users);
        w.u8(u8::from(self.has_password) | u8::from(self.allow_voice) << 1);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ControlError> {
        let name = r.str("room.name", MAX_NAME_LEN)?;
        let members = r.u16("room.members")?;
        let max_users = r.u16("room.max_users")?;
        let flags = r.flags("room.flags", 0b11)?;
        Ok(Self { name, members, max_users, has_password: flags & 1 != 0, allow_voice: flags & 2 != 0 })
    }
}

/// A room member as other members see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// Public id (the one in relay → client audio packets).
    pub id: PublicId,
    /// Display name.
    pub name: String,
    /// Muted itself (sends no audio).
    pub muted: bool,
    /// Deafened itself (receives no audio).
    pub deafened: bool,
    /// Speaking now.
    pub speaking: bool,
}

impl Member {
    fn write<S: Sink>(&self, w: &mut Writer<'_, S>) -> Result<(), ControlError> {
        w.u32(self.id.0);
        w.str("member.name", &self.name, MAX_NAME_LEN)?;
        w.u8(u8::from(self.muted) | u8::from(self.deafened) << 1 | u8::from(self.speaking) << 2);
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ControlError> {
        let id = PublicId(r.u32("member.id")?);
        let name = r.str("member.name", MAX_NAME_LEN)?;
        let flags = r.flags("member.flags", 0b111)?;
        Ok(Self { id, name, muted: flags & 1 != 0, deafened: flags & 2 != 0, speaking: flags & 4 != 0 })
    }
}

/// Reads a u16-counted list of items.
fn read_list<T>(
    r: &mut Reader<'_>,
    field: &'static str,
    max: usize,
    item: impl Fn(&mut Reader<'_>) -> Result<T, ControlError>,
) -> Result<Vec<T>, ControlError> {
    let n = r.count(field, max)?;
    // Each item takes at least one byte, so a count larger than the rest of the frame cannot allocate much:
    // the capacity is bounded by the cap, itself ≤ 512.
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(item(r)?);
    }
    Ok(v)
}

// Every cap fits its u16 length prefix, and a full room list or member list fits in one frame.
const _: () = {
    let caps =
        [MAX_NAME_LEN, MAX_PASSWORD_LEN, MAX_TOKEN_LEN, MAX_CHAT_LEN, MAX_ERROR_TEXT_LEN, MAX_ROOMS, MAX_MEMBERS];
    let mut i = 0;
    while i < caps.len() {
        assert!(caps[i] <= u16::MAX as usize);
        i += 1;
    }
    assert!(MAX_ROOMS * (2 + MAX_NAME_LEN + 5) + 2 + FRAME_HEADER_LEN <= MAX_FRAME_LEN);
    assert!(MAX_MEMBERS * (4 + 2 + MAX_NAME_LEN + 1) + 2 + 2 + MAX_NAME_LEN + 9 + FRAME_HEADER_LEN <= MAX_FRAME_LEN);
};
