//! Message kinds and the encode/decode trait both message families implement (`PROTOCOL.md` §5.3–5.4).

use bytes::BufMut;

use super::wire::{Count, Fields, Put, Reader, Writer};
use super::{FRAME_HEADER_LEN, Frame, MAX_FRAME_LEN};
use crate::datagram::CONTROL_VERSION;
use crate::error::ControlError;

/// Every control message kind of this protocol version, with its value on the wire.
///
/// Client → server kinds are `0x0001`–`0x00FF`, server → client kinds `0x0101`–`0x01FF`; [`Ping`](Self::Ping) and
/// [`Pong`](Self::Pong) go both ways. A [`Frame`] keeps its kind as a plain `u16`, since a peer of a later version
/// may send kinds this list does not have ([`Kind::from_u16`] returns `None` for them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
#[non_exhaustive]
pub enum Kind {
    /// [`ClientMessage::Login`](super::ClientMessage::Login).
    Login = 0x0001,
    /// [`ClientMessage::Resume`](super::ClientMessage::Resume).
    Resume = 0x0002,
    /// [`ClientMessage::ListRooms`](super::ClientMessage::ListRooms).
    ListRooms = 0x0003,
    /// [`ClientMessage::Join`](super::ClientMessage::Join).
    Join = 0x0004,
    /// [`ClientMessage::Leave`](super::ClientMessage::Leave).
    Leave = 0x0005,
    /// [`ClientMessage::SetState`](super::ClientMessage::SetState).
    SetState = 0x0006,
    /// [`ClientMessage::Chat`](super::ClientMessage::Chat): a chat message the client sends.
    ClientChat = 0x0007,
    /// [`ClientMessage::SetWhisper`](super::ClientMessage::SetWhisper).
    SetWhisper = 0x0008,
    /// [`ClientMessage::QualityReport`](super::ClientMessage::QualityReport).
    QualityReport = 0x0009,
    /// [`ClientMessage::Quit`](super::ClientMessage::Quit).
    Quit = 0x000A,
    /// `Ping` of either direction.
    Ping = 0x0040,
    /// `Pong` of either direction.
    Pong = 0x0041,
    /// [`ServerMessage::LoginOk`](super::ServerMessage::LoginOk).
    LoginOk = 0x0101,
    /// [`ServerMessage::ResumeOk`](super::ServerMessage::ResumeOk).
    ResumeOk = 0x0102,
    /// [`ServerMessage::RoomList`](super::ServerMessage::RoomList).
    RoomList = 0x0103,
    /// [`ServerMessage::RoomState`](super::ServerMessage::RoomState).
    RoomState = 0x0104,
    /// [`ServerMessage::MemberJoined`](super::ServerMessage::MemberJoined).
    MemberJoined = 0x0105,
    /// [`ServerMessage::MemberLeft`](super::ServerMessage::MemberLeft).
    MemberLeft = 0x0106,
    /// [`ServerMessage::MemberUpdated`](super::ServerMessage::MemberUpdated).
    MemberUpdated = 0x0107,
    /// [`ServerMessage::Speaking`](super::ServerMessage::Speaking).
    Speaking = 0x0108,
    /// [`ServerMessage::Chat`](super::ServerMessage::Chat): a chat message the server delivers.
    ServerChat = 0x0109,
    /// [`ServerMessage::MediaKey`](super::ServerMessage::MediaKey).
    MediaKey = 0x010A,
    /// [`ServerMessage::ChannelConfig`](super::ServerMessage::ChannelConfig).
    ChannelConfig = 0x010B,
    /// [`ServerMessage::BitrateHint`](super::ServerMessage::BitrateHint).
    BitrateHint = 0x010C,
    /// [`ServerMessage::RoomLeft`](super::ServerMessage::RoomLeft).
    RoomLeft = 0x010D,
    /// [`ServerMessage::Error`](super::ServerMessage::Error).
    Error = 0x010E,
    /// [`ServerMessage::Goodbye`](super::ServerMessage::Goodbye).
    Goodbye = 0x010F,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: &'static [Self] = &[
        Self::Login,
        Self::Resume,
        Self::ListRooms,
        Self::Join,
        Self::Leave,
        Self::SetState,
        Self::ClientChat,
        Self::SetWhisper,
        Self::QualityReport,
        Self::Quit,
        Self::Ping,
        Self::Pong,
        Self::LoginOk,
        Self::ResumeOk,
        Self::RoomList,
        Self::RoomState,
        Self::MemberJoined,
        Self::MemberLeft,
        Self::MemberUpdated,
        Self::Speaking,
        Self::ServerChat,
        Self::MediaKey,
        Self::ChannelConfig,
        Self::BitrateHint,
        Self::RoomLeft,
        Self::Error,
        Self::Goodbye,
    ];

    /// The kind's value on the wire.
    #[must_use]
    pub const fn to_u16(self) -> u16 {
        self as u16
    }

    /// The kind with this wire value; `None` for a kind this version does not know.
    #[must_use]
    pub fn from_u16(value: u16) -> Option<Self> {
        // ALL is in wire order (checked by a test).
        Self::ALL.binary_search_by_key(&value, |k| k.to_u16()).ok().map(|i| Self::ALL[i])
    }
}

impl From<Kind> for u16 {
    fn from(kind: Kind) -> Self {
        kind.to_u16()
    }
}

/// A control message: encoding to a complete frame and decoding from one, for
/// [`ClientMessage`](super::ClientMessage) and [`ServerMessage`](super::ServerMessage) alike.
///
/// Bring it into scope to call `kind`, `encode` and `decode` (`use voice_proto::control::Message;`). The trait is
/// sealed (its supertrait `Fields`, how a message writes and reads its fields, is private to this crate): these two
/// enums are its only implementations.
///
/// ```
/// use bytes::BytesMut;
/// use voice_proto::control::{ClientMessage, Kind, Message, ServerMessage, decode_frame};
///
/// let mut wire = BytesMut::new();
/// ClientMessage::Ping { nonce: 7 }.encode(&mut wire).unwrap();
/// let frame = decode_frame(&mut wire).unwrap().expect("one whole frame");
/// assert_eq!(Kind::from_u16(frame.kind), Some(Kind::Ping));
/// assert_eq!(ClientMessage::decode(&frame), Ok(Some(ClientMessage::Ping { nonce: 7 })));
/// // Ping exists in both directions.
/// assert_eq!(ServerMessage::decode(&frame), Ok(Some(ServerMessage::Ping { nonce: 7 })));
///
/// // A kind of the other direction is skipped, like an unknown one.
/// ClientMessage::ListRooms.encode(&mut wire).unwrap();
/// let frame = decode_frame(&mut wire).unwrap().expect("one whole frame");
/// assert_eq!(ServerMessage::decode(&frame), Ok(None));
/// ```
pub trait Message: Fields {
    /// The message kind on the wire.
    fn kind(&self) -> Kind;

    /// Appends the complete frame (length prefix, header, payload) to `out`. Fails, writing nothing, if a field
    /// exceeds its cap or the frame would exceed [`MAX_FRAME_LEN`].
    fn encode<B: BufMut + ?Sized>(&self, out: &mut B) -> Result<(), ControlError> {
        // A counting pass first: caps are checked and the length is known before a byte is written.
        let mut count = Count(0);
        self.write(&mut Writer(&mut count))?;
        let len = FRAME_HEADER_LEN + count.0;
        if len > MAX_FRAME_LEN {
            return Err(ControlError::FrameTooLarge { len });
        }
        // len ≤ MAX_FRAME_LEN < u32::MAX.
        out.put_u32(len as u32);
        out.put_slice(&[CONTROL_VERSION, 0]);
        out.put_u16(self.kind().to_u16());
        self.write(&mut Writer(&mut Put(out)))
    }

    /// Decodes a frame; `Ok(None)` for a kind this version does not know or that belongs to the other direction
    /// (skip it). An error means the peer is broken: close the connection.
    fn decode(frame: &Frame) -> Result<Option<Self>, ControlError> {
        let Some(kind) = Kind::from_u16(frame.kind) else { return Ok(None) };
        Self::read(kind, &mut Reader::new(frame.kind, &frame.payload))
    }
}
