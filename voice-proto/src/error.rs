//! Errors of voice-proto. Hot-path errors are small `Copy` types; [`Error`] lifts them all with `From`.

/// Why a UDP datagram could not be decoded. The receiver drops the datagram and counts the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The datagram is shorter than the fixed part of its kind (or than 2 bytes, too short to carry a kind).
    #[error("datagram of {len} bytes is too short (need {needed})")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Bytes the fixed part of this kind needs.
        needed: usize,
    },
    /// The datagram is longer than [`crate::MAX_DATAGRAM_LEN`].
    #[error("datagram of {len} bytes exceeds the maximum")]
    Oversize {
        /// Bytes received.
        len: usize,
    },
    /// The version byte is not one this implementation speaks (version 1, which had no uplink tag, included: see
    /// `PROTOCOL.md` §2.1).
    #[error("unsupported protocol version {0} (this implementation speaks version {v} only)", v = crate::VERSION)]
    UnsupportedVersion(u8),
    /// The kind byte names no packet kind of this version.
    #[error("unknown packet kind {0:#04x}")]
    UnknownKind(u8),
    /// A fixed-size kind arrived with another length.
    #[error("packet kind {kind:#04x} must be {expected} bytes, got {len}")]
    BadLength {
        /// The kind byte.
        kind: u8,
        /// Its fixed length.
        expected: usize,
        /// The length received.
        len: usize,
    },
    /// The kind is valid but not in the direction it was received (e.g. relay → client audio sent to the relay).
    #[error("packet kind {0:#04x} is not valid in this direction")]
    WrongDirection(u8),
    /// A field holds a value outside its valid range.
    #[error("field `{0}` holds an invalid value")]
    InvalidField(&'static str),
    /// A field `PROTOCOL.md` calls reserved is not zero. Reserved bits and bytes mean nothing in this version and
    /// are refused rather than ignored, so that every datagram a receiver accepts has exactly one encoding.
    #[error("packet kind {kind:#04x}: reserved {field} not zero (byte {offset} is {value:#04x})")]
    ReservedNotZero {
        /// The kind byte.
        kind: u8,
        /// The reserved field, as `PROTOCOL.md` §2 lays it out (e.g. `"bytes 2–7"` of a PONG, `"flags bits 1–7"`
        /// of audio).
        field: &'static str,
        /// Offset in the datagram of the first byte that is not zero.
        offset: usize,
        /// That byte.
        value: u8,
    },
}

/// Why sealing or opening an audio payload failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The payload did not authenticate: wrong key, tampered header or ciphertext, or forged packet.
    #[error("payload failed authentication")]
    AuthFailed,
    /// The ciphertext is shorter than the authentication tag.
    #[error("ciphertext shorter than the tag")]
    TooShort,
    /// The plaintext does not fit in one datagram.
    #[error("plaintext of {len} bytes does not fit in a datagram (max {max})")]
    PayloadTooLarge {
        /// Plaintext length given.
        len: usize,
        /// Largest plaintext that fits.
        max: usize,
    },
    /// The caller's output buffer is too small for the sealed packet.
    #[error("output buffer of {have} bytes is too small (need {need})")]
    BufferTooSmall {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// No key with the packet's key id is installed.
    #[error("no media key with id {0}")]
    UnknownKey(u8),
    /// The hello / hello-ack MAC does not verify.
    #[error("hello MAC does not verify")]
    BadMac,
    /// The uplink tag of an AUDIO_UP, PING or RECEIVER_REPORT does not verify under the session's key (or the
    /// datagram is too short to carry one).
    #[error("uplink tag does not verify")]
    BadTag,
}

/// Why the replay window refused a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// This sequence number was already accepted.
    #[error("duplicate sequence number")]
    Duplicate,
    /// The sequence number is older than the window reaches.
    #[error("sequence number older than the replay window")]
    TooOld,
}

/// Why an incoming audio payload was not accepted by [`crate::ReplayWindow::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Refused by the replay window before any decryption.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Did not authenticate.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Why a TCP control frame or message could not be encoded or decoded. A decode error closes that one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The frame's length prefix is larger than [`crate::control::MAX_FRAME_LEN`] (or a message would encode larger).
    #[error("control frame of {len} bytes exceeds the maximum")]
    FrameTooLarge {
        /// Declared or needed length.
        len: usize,
    },
    /// The frame's length prefix is smaller than the frame header.
    #[error("control frame length {len} is shorter than the frame header")]
    FrameTooShort {
        /// Declared length.
        len: usize,
    },
    /// The frame's version byte is not one this implementation speaks.
    #[error("unsupported control protocol version {0}")]
    UnsupportedVersion(u8),
    /// A message ended before one of its fields.
    #[error("message {kind:#06x} truncated in field `{field}`")]
    Truncated {
        /// Message kind.
        kind: u16,
        /// The field that did not fit.
        field: &'static str,
    },
    /// A string or list is longer than its cap.
    #[error("field `{field}` has length {len}, more than the cap {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length (bytes for strings, items for lists).
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A string field is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A field holds a value outside its valid range (a bool other than 0/1, an unknown enum tag, …).
    #[error("field `{field}` holds an invalid value")]
    InvalidValue {
        /// The field.
        field: &'static str,
    },
    /// Bits `PROTOCOL.md` calls reserved are set: the frame header's flags byte, or an undefined bit of a flags
    /// field. They mean nothing in this version and are refused rather than ignored, so that every message a
    /// receiver accepts has exactly one encoding.
    #[error("field `{field}` has reserved bits {bits:#04x} set (they must be 0)")]
    ReservedNotZero {
        /// The field (`"frame.flags"`, `"config.flags"`, `"room.flags"`, `"member.flags"`).
        field: &'static str,
        /// The reserved bits that were set.
        bits: u8,
    },
}

/// Any error of voice-proto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A datagram could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The replay window refused a packet.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// A control frame or message was invalid.
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Replay(r) => Self::Replay(r),
            OpenError::Crypto(c) => Self::Crypto(c),
        }
    }
}
