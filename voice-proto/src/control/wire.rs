//! Frame layer and field primitives of the control channel (`PROTOCOL.md` §5.1–5.2).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::Kind;
use crate::datagram::CONTROL_VERSION;
use crate::error::ControlError;

/// Largest value of a frame's length prefix (bytes after the prefix). A larger prefix closes the connection.
pub const MAX_FRAME_LEN: usize = 65_536;
/// Bytes of the frame header after the length prefix: version, flags, kind.
pub const FRAME_HEADER_LEN: usize = 4;
/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// One control frame: a kind and its payload, not yet interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Message kind, as on the wire: [`Kind::from_u16`] names it (`None` for a kind this version does not know).
    pub kind: u16,
    /// Message payload (shares the connection's read buffer; no copy).
    pub payload: Bytes,
}

/// Takes one complete frame off the front of a connection's read buffer.
///
/// Returns `Ok(None)` while the frame is incomplete (read more bytes and call again). An error means the peer broke
/// the framing (a length out of range, a version other than 1, or a non-zero flags byte, which is reserved); the
/// connection must be closed. Version and flags are checked as soon as they arrive, before the rest of the frame.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, ControlError> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else { return Ok(None) };
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > MAX_FRAME_LEN {
        return Err(ControlError::FrameTooLarge { len });
    }
    if len < FRAME_HEADER_LEN {
        return Err(ControlError::FrameTooShort { len });
    }
    if buf.len() > LEN_PREFIX && buf[LEN_PREFIX] != CONTROL_VERSION {
        return Err(ControlError::UnsupportedVersion(buf[LEN_PREFIX]));
    }
    match buf.get(LEN_PREFIX + 1) {
        Some(&bits) if bits != 0 => return Err(ControlError::ReservedNotZero { field: "frame.flags", bits }),
        _ => {}
    }
    if buf.len() < LEN_PREFIX + len {
        buf.reserve(LEN_PREFIX + len - buf.len());
        return Ok(None);
    }
    buf.advance(LEN_PREFIX);
    let mut frame = buf.split_to(len).freeze();
    // Version and flags (reserved, zero) checked above; bytes 2..4 are the kind.
    let kind = u16::from_be_bytes([frame[2], frame[3]]);
    frame.advance(FRAME_HEADER_LEN);
    Ok(Some(Frame { kind, payload: frame }))
}

// The items below are `pub` in this private module: they appear in the methods of `Fields`, the sealed supertrait
// of the public `Message` trait, and are not nameable outside the crate.

/// Where a message's fields go: a counting pass first (caps checked, length known), then the real write.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

pub(crate) struct Count(pub(crate) usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

pub(crate) struct Put<'a, B: BufMut + ?Sized>(pub(crate) &'a mut B);

impl<B: BufMut + ?Sized> Sink for Put<'_, B> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.put_slice(bytes);
    }
}

/// Field writer over a [`Sink`].
#[derive(Debug)]
pub struct Writer<'s, S: Sink>(pub(crate) &'s mut S);

impl<S: Sink> Writer<'_, S> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.put(&[v]);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.put(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.put(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.put(&v.to_be_bytes());
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub(crate) fn raw(&mut self, v: &[u8]) {
        self.0.put(v);
    }
    pub(crate) fn str(&mut self, field: &'static str, v: &str, max: usize) -> Result<(), ControlError> {
        self.count(field, v.len(), max)?;
        self.0.put(v.as_bytes());
        Ok(())
    }
    /// A u16 count (or byte length) checked against its cap.
    pub(crate) fn count(&mut self, field: &'static str, len: usize, max: usize) -> Result<(), ControlError> {
        if len > max {
            return Err(ControlError::TooLong { field, len, max });
        }
        // max ≤ u16::MAX for every cap (checked by a test), so this fits.
        self.u16(len as u16);
        Ok(())
    }
}

/// The sealed half of [`Message`](super::Message): how a message family writes and reads its payload fields.
pub trait Fields: Sized {
    /// Writes the payload fields, checking every cap.
    fn write<S: Sink>(&self, w: &mut Writer<'_, S>) -> Result<(), ControlError>;
    /// Reads the payload of a `kind` message; `Ok(None)` if `kind` belongs to the other direction.
    fn read(kind: Kind, r: &mut Reader<'_>) -> Result<Option<Self>, ControlError>;
}

/// Field reader over a frame payload. Every read is bounds-checked; trailing bytes after the known fields are
/// ignored (room for fields added by later revisions).
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    kind: u16,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(kind: u16, buf: &'a [u8]) -> Self {
        Self { buf, kind }
    }

    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ControlError> {
        if self.buf.len() < n {
            return Err(ControlError::Truncated { kind: self.kind, field });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ControlError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(field, N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ControlError> {
        Ok(self.array::<1>(field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ControlError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ControlError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ControlError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ControlError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ControlError::InvalidValue { field }),
        }
    }
    /// A flags byte whose bits outside `defined` are reserved and must be zero.
    pub(crate) fn flags(&mut self, field: &'static str, defined: u8) -> Result<u8, ControlError> {
        let v = self.u8(field)?;
        match v & !defined {
            0 => Ok(v),
            bits => Err(ControlError::ReservedNotZero { field, bits }),
        }
    }
    /// A u16 count checked against its cap.
    pub(crate) fn count(&mut self, field: &'static str, max: usize) -> Result<usize, ControlError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(ControlError::TooLong { field, len, max });
        }
        Ok(len)
    }
    pub(crate) fn str(&mut self, field: &'static str, max: usize) -> Result<String, ControlError> {
        let len = self.count(field, max)?;
        let bytes = self.take(field, len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| ControlError::InvalidUtf8 { field })
    }
}
