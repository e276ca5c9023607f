//! The UDP data plane: every datagram kind, decoded zero-copy from `&[u8]` and encoded into a caller-owned
//! [`BufMut`]. Layouts are normative in `PROTOCOL.md` §2; the offsets below are the same ones. Reserved bits and
//! bytes are refused, not ignored: the encoding of every accepted datagram is unique.

use bytes::BufMut;

use crate::error::DecodeError;
use crate::types::{KeyId, PublicId, Seq, SessionToken, Timestamp, WhisperTarget};

/// Protocol version carried in byte 0 of every datagram. Version 2 added the uplink tag (`PROTOCOL.md` §2.8);
/// datagrams of version 1 are refused ([`DecodeError::UnsupportedVersion`]).
pub const VERSION: u8 = 2;
/// Version byte of every control frame (`PROTOCOL.md` §5.1). The control frame format did not change in protocol
/// version 2, so it is still 1.
pub const CONTROL_VERSION: u8 = 1;
/// Largest datagram a peer may send; larger ones are dropped unread.
pub const MAX_DATAGRAM_LEN: usize = 1200;
/// Length of the audio header (both directions).
pub const AUDIO_HEADER_LEN: usize = 22;
/// Length of the AEAD tag that ends every audio payload.
pub const TAG_LEN: usize = 16;
/// Length of the uplink tag that ends every tagged client → relay datagram (AUDIO_UP, PING, RECEIVER_REPORT;
/// `PROTOCOL.md` §2.8).
pub const UPLINK_TAG_LEN: usize = 8;
/// Smallest valid AUDIO_DOWN: a header and a sealed empty payload (also: an audio datagram without its uplink tag).
pub const MIN_AUDIO_LEN: usize = AUDIO_HEADER_LEN + TAG_LEN;
/// Smallest valid AUDIO_UP: a header, a sealed empty payload and the uplink tag.
pub const MIN_AUDIO_UP_LEN: usize = MIN_AUDIO_LEN + UPLINK_TAG_LEN;
/// Largest AUDIO_DOWN: the largest AUDIO_UP without its uplink tag.
pub const MAX_AUDIO_DOWN_LEN: usize = MAX_DATAGRAM_LEN - UPLINK_TAG_LEN;
/// Largest plaintext (Opus bytes) one audio datagram can carry.
pub const MAX_AUDIO_PLAINTEXT: usize = MAX_DATAGRAM_LEN - MIN_AUDIO_UP_LEN;
/// Length of a hello and of a hello-ack.
pub const HELLO_LEN: usize = 32;
/// Length of the MAC in a hello and a hello-ack.
pub const MAC_LEN: usize = 16;
/// Length of a pong, and of a ping without its uplink tag.
pub const PING_LEN: usize = 16;
/// Length of the fixed part of a receiver report.
pub const REPORT_HEADER_LEN: usize = 12;
/// Length of one receiver-report block.
pub const REPORT_BLOCK_LEN: usize = 16;
/// Most blocks one receiver report may carry.
pub const MAX_REPORT_BLOCKS: usize = 16;

/// The kind byte (offset 1) of every datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketKind {
    /// Client → relay audio ([`AudioUp`]).
    AudioUp = 0x01,
    /// Relay → client audio ([`AudioDown`]).
    AudioDown = 0x02,
    /// Client → relay address binding ([`Hello`]).
    Hello = 0x03,
    /// Relay → client binding confirmation ([`HelloAck`]).
    HelloAck = 0x04,
    /// Client → relay round-trip probe ([`Ping`]).
    Ping = 0x05,
    /// Relay → client probe answer ([`Pong`]).
    Pong = 0x06,
    /// Client → relay reception statistics ([`ReceiverReport`]).
    ReceiverReport = 0x07,
}

impl PacketKind {
    /// The kind for a wire byte, if any.
    #[must_use]
    #[inline]
    pub const fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::AudioUp,
            0x02 => Self::AudioDown,
            0x03 => Self::Hello,
            0x04 => Self::HelloAck,
            0x05 => Self::Ping,
            0x06 => Self::Pong,
            0x07 => Self::ReceiverReport,
            _ => return None,
        })
    }

    /// `true` for kinds a client sends to the relay.
    #[must_use]
    #[inline]
    pub const fn is_from_client(self) -> bool {
        matches!(self, Self::AudioUp | Self::Hello | Self::Ping | Self::ReceiverReport)
    }
}

/// Flags byte (offset 2) of an audio header. Bits other than the named ones ([`AudioFlags::DEFINED`]) are
/// reserved: senders set them to 0, and receivers refuse a packet that has any of them set
/// ([`DecodeError::ReservedNotZero`]). Encoding does not check: flags with reserved bits give a datagram that every
/// receiver drops. The default is [`AudioFlags::NONE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct AudioFlags(pub u8);

impl AudioFlags {
    /// No flag set.
    pub const NONE: Self = Self(0);
    /// This is the last packet of a talkspurt: the sender goes silent (DTX / VAD / push-to-talk released).
    pub const END_OF_TALKSPURT: Self = Self(0x01);
    /// Every bit this version defines; the others are reserved.
    pub const DEFINED: Self = Self::END_OF_TALKSPURT;

    /// `true` if every bit of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags with the bits of `other` added.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The fields an audio header has in both directions (all but the token / sender id).
///
/// The default is all zero: no flags, key 0, sequence 0, timestamp 0, addressed to the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct AudioHeader {
    /// Flags ([`AudioFlags`]). Default: [`AudioFlags::NONE`].
    pub flags: AudioFlags,
    /// Which media key sealed the payload. Default: `KeyId(0)`.
    pub key_id: KeyId,
    /// Per-sender sequence number. Default: `Seq(0)`.
    pub seq: Seq,
    /// Media timestamp of the first sample, 48 kHz. Default: `Timestamp(0)`.
    pub timestamp: Timestamp,
    /// 0 = the room; otherwise a whisper list. Default: `WhisperTarget(0)`, the room.
    pub target: WhisperTarget,
}

impl AudioHeader {
    /// Writes the 22-byte header with `kind` and `id` (token or public id) into `out`.
    #[inline]
    pub(crate) fn write(&self, kind: PacketKind, id: u32, out: &mut [u8; AUDIO_HEADER_LEN]) {
        out[0] = VERSION;
        out[1] = kind as u8;
        out[2] = self.flags.0;
        out[3] = self.key_id.0;
        out[4..8].copy_from_slice(&id.to_be_bytes());
        out[8..16].copy_from_slice(&self.seq.0.to_be_bytes());
        out[16..20].copy_from_slice(&self.timestamp.0.to_be_bytes());
        out[20..22].copy_from_slice(&self.target.0.to_be_bytes());
    }

    #[inline]
    fn read(b: &[u8; AUDIO_HEADER_LEN]) -> (u32, Self) {
        let id = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let seq = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        let ts = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
        let target = u16::from_be_bytes([b[20], b[21]]);
        let h = Self {
            flags: AudioFlags(b[2]),
            key_id: KeyId(b[3]),
            seq: Seq(seq),
            timestamp: Timestamp(ts),
            target: WhisperTarget(target),
        };
        (id, h)
    }

    /// The additional authenticated data of a payload: the relay → client header exactly as receivers will see it.
    ///
    /// The sender computes it with its own public id, so the relay's rewrite (token → public id) leaves it intact.
    #[must_use]
    #[inline]
    pub fn aad(&self, sender: PublicId) -> [u8; AUDIO_HEADER_LEN] {
        let mut out = [0u8; AUDIO_HEADER_LEN];
        self.write(PacketKind::AudioDown, sender.0, &mut out);
        out
    }
}

/// Client → relay audio: header with the sender's token, the sealed Opus payload (ciphertext + AEAD tag), then
/// the uplink tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioUp<'a> {
    /// The sender's session token.
    pub token: SessionToken,
    /// The rest of the header.
    pub header: AudioHeader,
    /// Sealed payload: ciphertext followed by the 16-byte AEAD tag (the uplink tag is not part of it).
    pub payload: &'a [u8],
    /// The uplink tag over every byte before it ([`crate::UplinkKey`]); zero until computed.
    pub tag: [u8; UPLINK_TAG_LEN],
}

/// Relay → client audio: the same bytes as [`AudioUp`], with kind 0x02 and the sender's public id in place of the
/// token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioDown<'a> {
    /// Who spoke.
    pub sender: PublicId,
    /// The rest of the header.
    pub header: AudioHeader,
    /// Sealed payload: ciphertext followed by the 16-byte tag.
    pub payload: &'a [u8],
}

/// Client → relay: binds the datagram's source address to the session named by `token`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The session to bind.
    pub token: SessionToken,
    /// Strictly increasing per session; the relay ignores a hello whose counter is not above the last accepted one.
    pub counter: u64,
    /// HMAC-SHA-256 of bytes 0..16 under the session secret, truncated to 16 bytes.
    pub mac: [u8; MAC_LEN],
}

/// Relay → client: the hello was accepted and this address is now bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HelloAck {
    /// The client's own public id.
    pub public_id: PublicId,
    /// Echo of the hello's counter.
    pub counter: u64,
    /// HMAC-SHA-256 of bytes 0..16 under the session secret, truncated to 16 bytes.
    pub mac: [u8; MAC_LEN],
}

/// Client → relay round-trip probe. Answered only from the session's bound address, and only if its uplink tag
/// verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ping {
    /// The sender's session token.
    pub token: SessionToken,
    /// Opaque value echoed in the pong (typically the send time in microseconds).
    pub echo: u64,
    /// The uplink tag over bytes 0..16 ([`crate::UplinkKey`]); zero until computed.
    pub tag: [u8; UPLINK_TAG_LEN],
}

/// Relay → client probe answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pong {
    /// The ping's `echo`.
    pub echo: u64,
}

/// Reception statistics about one remote sender, in the spirit of an RTCP receiver report block. The default is all
/// zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ReportBlock {
    /// The sender reported on.
    pub source: PublicId,
    /// Packets lost since the stream began (saturating).
    pub cumulative_lost: u32,
    /// Interarrival jitter in 48 kHz samples (RFC 3550 §6.4.1 estimator).
    pub jitter_samples: u32,
    /// Fraction lost since the previous report, in 1/256 units.
    pub fraction_lost: u8,
}

/// Client → relay: how the client receives each remote sender, plus its UDP round-trip time. The relay turns these
/// into bitrate / FEC hints for the senders. Zero-copy: decoded blocks stay in the datagram's bytes.
#[derive(Clone, Copy, Debug)]
pub struct ReceiverReport<'a> {
    /// The reporter's session token.
    pub token: SessionToken,
    /// Round-trip time to the relay in milliseconds, if measured (wire value 0xFFFF = unknown).
    pub rtt_ms: Option<u16>,
    blocks: Blocks<'a>,
    /// The uplink tag over every byte before it ([`crate::UplinkKey`]); zero until computed.
    pub tag: [u8; UPLINK_TAG_LEN],
}

#[derive(Clone, Copy, Debug)]
enum Blocks<'a> {
    /// `count × 16` bytes straight from a received datagram.
    Wire(&'a [u8]),
    /// Blocks given by the sender.
    Slice(&'a [ReportBlock]),
}

impl<'a> ReceiverReport<'a> {
    /// A report to send, its tag zero (compute it with [`crate::UplinkKey::tagged`]); `None` if there are more
    /// than [`MAX_REPORT_BLOCKS`] blocks (send several reports).
    #[must_use]
    pub fn new(token: SessionToken, rtt_ms: Option<u16>, blocks: &'a [ReportBlock]) -> Option<Self> {
        (blocks.len() <= MAX_REPORT_BLOCKS).then_some(Self {
            token,
            rtt_ms,
            blocks: Blocks::Slice(blocks),
            tag: [0; UPLINK_TAG_LEN],
        })
    }

    /// Number of blocks.
    #[must_use]
    pub fn len(&self) -> usize {
        match self.blocks {
            Blocks::Wire(b) => b.len() / REPORT_BLOCK_LEN,
            Blocks::Slice(s) => s.len(),
        }
    }

    /// `true` when the report carries no block.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> impl ExactSizeIterator<Item = ReportBlock> + 'a {
        let (wire, slice): (&'a [u8], &'a [ReportBlock]) = match self.blocks {
            Blocks::Wire(b) => (b, &[]),
            Blocks::Slice(s) => (&[], s),
        };
        let from_wire = wire.chunks_exact(REPORT_BLOCK_LEN).map(|c| ReportBlock {
            source: PublicId(be32(c, 0)),
            cumulative_lost: be32(c, 4),
            jitter_samples: be32(c, 8),
            fraction_lost: c[12],
        });
        // Exactly one of the two is non-empty.
        BlockIter { inner: from_wire.chain(slice.iter().copied()), left: self.len() }
    }
}

struct BlockIter<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator<Item = ReportBlock>> Iterator for BlockIter<I> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let b = self.inner.next()?;
        self.left = self.left.saturating_sub(1);
        Some(b)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator<Item = ReportBlock>> ExactSizeIterator for BlockIter<I> {}

impl PartialEq for ReceiverReport<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
            && self.rtt_ms == other.rtt_ms
            && self.tag == other.tag
            && self.blocks().eq(other.blocks())
    }
}

impl Eq for ReceiverReport<'_> {}

/// Any datagram, decoded zero-copy. Audio payloads borrow from the input; with a [`bytes::Bytes`] input, turn a
/// payload back into `Bytes` without copying with [`bytes::Bytes::slice_ref`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// The 0-byte NAT keepalive. Refreshes a binding; otherwise ignored.
    Keepalive,
    /// Client → relay audio.
    AudioUp(AudioUp<'a>),
    /// Relay → client audio.
    AudioDown(AudioDown<'a>),
    /// Client → relay hello.
    Hello(Hello),
    /// Relay → client hello-ack.
    HelloAck(HelloAck),
    /// Client → relay ping.
    Ping(Ping),
    /// Relay → client pong.
    Pong(Pong),
    /// Client → relay receiver report.
    ReceiverReport(ReceiverReport<'a>),
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
fn be64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

/// The last [`UPLINK_TAG_LEN`] bytes of `buf` (callers checked that it is long enough).
#[inline]
fn trailing_tag(buf: &[u8]) -> [u8; UPLINK_TAG_LEN] {
    let mut tag = [0u8; UPLINK_TAG_LEN];
    if let Some(t) = buf.len().checked_sub(UPLINK_TAG_LEN).and_then(|at| buf.get(at..)) {
        tag.copy_from_slice(t);
    }
    tag
}

#[inline]
fn fixed_len(kind: u8, buf: &[u8], expected: usize) -> Result<(), DecodeError> {
    if buf.len() == expected { Ok(()) } else { Err(DecodeError::BadLength { kind, expected, len: buf.len() }) }
}

/// Refuses a reserved field (`buf[at..at + len]`, all in bounds) that is not all zero.
#[inline]
fn reserved(kind: u8, buf: &[u8], at: usize, len: usize, field: &'static str) -> Result<(), DecodeError> {
    match buf[at..at + len].iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(DecodeError::ReservedNotZero { kind, field, offset: at + i, value: buf[at + i] }),
    }
}

impl<'a> Datagram<'a> {
    /// Decodes and validates any datagram. Never panics, never reads past `buf`.
    ///
    /// Refuses a reserved bit or byte that is not zero ([`DecodeError::ReservedNotZero`]; `PROTOCOL.md` §1), so a
    /// datagram that decodes re-encodes ([`Datagram::encode`]) to exactly its bytes.
    #[inline]
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_dir(buf, None)
    }

    /// Decodes a datagram received by the relay: kinds only a relay sends are refused.
    #[inline]
    pub fn decode_from_client(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_dir(buf, Some(true))
    }

    /// Decodes a datagram received by a client: kinds only a client sends are refused.
    #[inline]
    pub fn decode_from_relay(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_dir(buf, Some(false))
    }

    /// `from_client`: `Some(true)` at the relay, `Some(false)` at a client, `None` to accept both directions.
    #[inline]
    fn decode_dir(buf: &'a [u8], from_client: Option<bool>) -> Result<Self, DecodeError> {
        let len = buf.len();
        if len == 0 {
            return Ok(Self::Keepalive);
        }
        if len > MAX_DATAGRAM_LEN {
            return Err(DecodeError::Oversize { len });
        }
        if len < 2 {
            return Err(DecodeError::TooShort { len, needed: 2 });
        }
        if buf[0] != VERSION {
            return Err(DecodeError::UnsupportedVersion(buf[0]));
        }
        let kind_byte = buf[1];
        let kind = PacketKind::from_u8(kind_byte).ok_or(DecodeError::UnknownKind(kind_byte))?;
        if from_client.is_some_and(|c| c != kind.is_from_client()) {
            return Err(DecodeError::WrongDirection(kind_byte));
        }
        match kind {
            PacketKind::AudioUp | PacketKind::AudioDown => {
                let up = kind == PacketKind::AudioUp;
                let (min, tag_len) = if up { (MIN_AUDIO_UP_LEN, UPLINK_TAG_LEN) } else { (MIN_AUDIO_LEN, 0) };
                if len < min {
                    return Err(DecodeError::TooShort { len, needed: min });
                }
                if !up && len > MAX_AUDIO_DOWN_LEN {
                    return Err(DecodeError::Oversize { len });
                }
                let Some((head, payload)) = buf[..len - tag_len].split_first_chunk::<AUDIO_HEADER_LEN>() else {
                    return Err(DecodeError::TooShort { len, needed: min });
                };
                let flags = head[2];
                if flags & !AudioFlags::DEFINED.0 != 0 {
                    let field = "flags bits 1–7";
                    return Err(DecodeError::ReservedNotZero { kind: kind_byte, field, offset: 2, value: flags });
                }
                let (id, header) = AudioHeader::read(head);
                Ok(if up {
                    Self::AudioUp(AudioUp { token: SessionToken(id), header, payload, tag: trailing_tag(buf) })
                } else {
                    Self::AudioDown(AudioDown { sender: PublicId(id), header, payload })
                })
            }
            PacketKind::Hello | PacketKind::HelloAck => {
                fixed_len(kind_byte, buf, HELLO_LEN)?;
                // Refused before any MAC check: the MAC then covers bytes 2–3 as zero, which is also as sent.
                reserved(kind_byte, buf, 2, 2, "bytes 2–3")?;
                let id = be32(buf, 4);
                let counter = be64(buf, 8);
                let mut mac = [0u8; MAC_LEN];
                mac.copy_from_slice(&buf[16..32]);
                Ok(if kind == PacketKind::Hello {
                    Self::Hello(Hello { token: SessionToken(id), counter, mac })
                } else {
                    Self::HelloAck(HelloAck { public_id: PublicId(id), counter, mac })
                })
            }
            PacketKind::Ping => {
                fixed_len(kind_byte, buf, PING_LEN + UPLINK_TAG_LEN)?;
                reserved(kind_byte, buf, 2, 2, "bytes 2–3")?;
                Ok(Self::Ping(Ping { token: SessionToken(be32(buf, 4)), echo: be64(buf, 8), tag: trailing_tag(buf) }))
            }
            PacketKind::Pong => {
                fixed_len(kind_byte, buf, PING_LEN)?;
                reserved(kind_byte, buf, 2, 6, "bytes 2–7")?;
                Ok(Self::Pong(Pong { echo: be64(buf, 8) }))
            }
            PacketKind::ReceiverReport => {
                if len < REPORT_HEADER_LEN + UPLINK_TAG_LEN {
                    return Err(DecodeError::TooShort { len, needed: REPORT_HEADER_LEN + UPLINK_TAG_LEN });
                }
                let count = usize::from(buf[3]);
                if count > MAX_REPORT_BLOCKS {
                    return Err(DecodeError::InvalidField("report block count"));
                }
                let blocks_end = REPORT_HEADER_LEN + count * REPORT_BLOCK_LEN;
                fixed_len(kind_byte, buf, blocks_end + UPLINK_TAG_LEN)?;
                reserved(kind_byte, buf, 2, 1, "byte 2")?;
                reserved(kind_byte, buf, 10, 2, "bytes 10–11")?;
                for block in 0..count {
                    reserved(
                        kind_byte,
                        buf,
                        REPORT_HEADER_LEN + block * REPORT_BLOCK_LEN + 13,
                        3,
                        "block bytes 13–15",
                    )?;
                }
                let rtt = be16(buf, 8);
                Ok(Self::ReceiverReport(ReceiverReport {
                    token: SessionToken(be32(buf, 4)),
                    rtt_ms: (rtt != u16::MAX).then_some(rtt),
                    blocks: Blocks::Wire(&buf[REPORT_HEADER_LEN..blocks_end]),
                    tag: trailing_tag(buf),
                }))
            }
        }
    }

    /// The datagram's kind (`None` for the keepalive, which has no kind byte).
    #[must_use]
    #[inline]
    pub const fn kind(&self) -> Option<PacketKind> {
        Some(match self {
            Self::Keepalive => return None,
            Self::AudioUp(_) => PacketKind::AudioUp,
            Self::AudioDown(_) => PacketKind::AudioDown,
            Self::Hello(_) => PacketKind::Hello,
            Self::HelloAck(_) => PacketKind::HelloAck,
            Self::Ping(_) => PacketKind::Ping,
            Self::Pong(_) => PacketKind::Pong,
            Self::ReceiverReport(_) => PacketKind::ReceiverReport,
        })
    }

    /// Bytes [`Datagram::encode`] writes.
    #[must_use]
    #[inline]
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Keepalive => 0,
            Self::AudioUp(a) => AUDIO_HEADER_LEN + a.payload.len() + UPLINK_TAG_LEN,
            Self::AudioDown(a) => AUDIO_HEADER_LEN + a.payload.len(),
            Self::Hello(_) | Self::HelloAck(_) => HELLO_LEN,
            Self::Ping(_) => PING_LEN + UPLINK_TAG_LEN,
            Self::Pong(_) => PING_LEN,
            Self::ReceiverReport(r) => REPORT_HEADER_LEN + r.len() * REPORT_BLOCK_LEN + UPLINK_TAG_LEN,
        }
    }

    /// Appends the wire form to `out`. Encoding cannot fail; an audio payload longer than the protocol allows gives
    /// a datagram receivers drop (the sealing functions refuse such payloads earlier).
    #[inline]
    pub fn encode<B: BufMut + ?Sized>(&self, out: &mut B) {
        match self {
            Self::Keepalive => {}
            Self::AudioUp(a) => {
                let mut h = [0u8; AUDIO_HEADER_LEN];
                a.header.write(PacketKind::AudioUp, a.token.0, &mut h);
                out.put_slice(&h);
                out.put_slice(a.payload);
                out.put_slice(&a.tag);
            }
            Self::AudioDown(a) => {
                let mut h = [0u8; AUDIO_HEADER_LEN];
                a.header.write(PacketKind::AudioDown, a.sender.0, &mut h);
                out.put_slice(&h);
                out.put_slice(a.payload);
            }
            Self::Hello(h) => out.put_slice(&hello_bytes(PacketKind::Hello, h.token.0, h.counter, &h.mac)),
            Self::HelloAck(h) => {
                out.put_slice(&hello_bytes(PacketKind::HelloAck, h.public_id.0, h.counter, &h.mac));
            }
            Self::Ping(p) => {
                out.put_slice(&[VERSION, PacketKind::Ping as u8, 0, 0]);
                out.put_u32(p.token.0);
                out.put_u64(p.echo);
                out.put_slice(&p.tag);
            }
            Self::Pong(p) => {
                out.put_slice(&[VERSION, PacketKind::Pong as u8, 0, 0]);
                out.put_u32(0);
                out.put_u64(p.echo);
            }
            Self::ReceiverReport(r) => {
                // `len` never exceeds MAX_REPORT_BLOCKS (16): `new` and `decode` both refuse more.
                out.put_slice(&[VERSION, PacketKind::ReceiverReport as u8, 0, r.len() as u8]);
                out.put_u32(r.token.0);
                out.put_u16(r.rtt_ms.unwrap_or(u16::MAX));
                out.put_u16(0);
                for b in r.blocks() {
                    out.put_u32(b.source.0);
                    out.put_u32(b.cumulative_lost);
                    out.put_u32(b.jitter_samples);
                    out.put_slice(&[b.fraction_lost, 0, 0, 0]);
                }
                out.put_slice(&r.tag);
            }
        }
    }
}

/// The 32-byte hello / hello-ack; `mac` is the last 16 bytes.
pub(crate) fn hello_bytes(kind: PacketKind, id: u32, counter: u64, mac: &[u8; MAC_LEN]) -> [u8; HELLO_LEN] {
    let mut b = [0u8; HELLO_LEN];
    b[..MAC_LEN].copy_from_slice(&hello_mac_input(kind, id, counter));
    b[MAC_LEN..].copy_from_slice(mac);
    b
}

/// Bytes 0..16 of a hello / hello-ack: what the MAC covers.
pub(crate) fn hello_mac_input(kind: PacketKind, id: u32, counter: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = VERSION;
    b[1] = kind as u8;
    b[4..8].copy_from_slice(&id.to_be_bytes());
    b[8..16].copy_from_slice(&counter.to_be_bytes());
    b
}

/// Turns a client → relay audio datagram into the relay → client form **in place**: sets the kind byte to 0x02,
/// overwrites the token with the sender's public id, and returns the length of the AUDIO_DOWN — the AUDIO_UP's
/// length less the uplink tag, which the caller cuts off (e.g. [`bytes::BytesMut::truncate`]: no copy). Nothing
/// else changes, so the payload's AAD still verifies.
///
/// It does **not** check the uplink tag: the relay verifies it first ([`crate::UplinkKey::verify`]). The relay
/// calls this once per packet on its receive buffer, then shares the same bytes (e.g. a frozen
/// [`bytes::BytesMut`]) with every recipient. Fails, leaving `buf` untouched, if `buf` is not a valid
/// client → relay audio datagram.
#[inline]
pub fn rewrite_up_to_down(buf: &mut [u8], sender: PublicId) -> Result<usize, DecodeError> {
    match Datagram::decode(buf)? {
        Datagram::AudioUp(_) => {
            buf[1] = PacketKind::AudioDown as u8;
            buf[4..8].copy_from_slice(&sender.0.to_be_bytes());
            Ok(buf.len() - UPLINK_TAG_LEN)
        }
        other => Err(DecodeError::WrongDirection(other.kind().map_or(0, |k| k as u8))),
    }
}
