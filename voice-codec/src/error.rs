//! Typed errors of the codec pipelines.
//!
//! Errors are for bad input from the caller (sizes, configuration) and for failures of the libraries underneath.
//! Corrupt or hostile *packets* never surface as errors from the playback path: they are concealed and counted in
//! [`crate::PlaybackStats`]. [`CodecError::CorruptPacket`] is only returned by the plain [`crate::Decoder`] and by
//! the inspection helper [`crate::packet_samples`], where the caller decides what to do instead.

use thiserror::Error;

/// Everything that can go wrong in voice-codec.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A device sample rate outside 8 kHz ..= 384 kHz was configured.
    #[error("unsupported sample rate {rate_hz} Hz (supported: 8000..=384000)")]
    UnsupportedSampleRate {
        /// The rejected rate.
        rate_hz: u32,
    },
    /// A device channel count of zero or more than 8 was configured.
    #[error("unsupported channel count {channels} (supported: 1..=8)")]
    UnsupportedChannels {
        /// The rejected count.
        channels: u16,
    },
    /// A setting is outside its valid range (the message names the setting and the range).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// An interleaved chunk whose length is not a multiple of the channel count.
    #[error("chunk of {len} samples is not a whole number of {channels}-channel frames")]
    PartialFrame {
        /// Length of the chunk in samples.
        len: usize,
        /// Channel count it was supposed to be interleaved with.
        channels: usize,
    },
    /// More input was pushed than the pipeline can hold before it is drained (poll the frames out first).
    #[error("input overflow: {pending} samples pending, capacity {capacity} (drain with poll_frame)")]
    Overflow {
        /// Samples per channel that would have been pending.
        pending: usize,
        /// Capacity in samples per channel.
        capacity: usize,
    },
    /// A playout slot asked for more samples than one slot may hold.
    #[error("slot of {samples} samples exceeds the maximum of {max}")]
    SlotTooLong {
        /// Requested samples per channel.
        samples: u32,
        /// Largest slot accepted, samples per channel at 48 kHz.
        max: u32,
    },
    /// A buffer given by the caller is too small for the output.
    #[error("output buffer holds {len} samples, {needed} needed")]
    BufferTooSmall {
        /// Length of the given buffer.
        len: usize,
        /// Length required.
        needed: usize,
    },
    /// A packet that is not valid Opus (empty, bad TOC, impossible frame count or duration).
    #[error("corrupt Opus packet")]
    CorruptPacket,
    /// A decode or concealment length that is not a whole number of 2.5 ms blocks (120 samples per channel at
    /// 48 kHz) between 2.5 ms and 120 ms.
    #[error("{samples} samples per channel is not a whole number of 2.5 ms blocks in 2.5..=120 ms")]
    InvalidFrameLength {
        /// The requested samples per channel.
        samples: usize,
    },
    /// libopus rejected a call; for settings this means the value is out of range.
    #[error("opus: {0}")]
    Opus(OpusError),
    /// The resampler could not be built or rejected a buffer.
    #[error("resampler: {0}")]
    Resampler(String),
    /// Writing a WAV dump failed.
    #[error("audio dump: {0}")]
    Dump(#[from] hound::Error),
}

impl CodecError {
    /// Wraps an error of the Opus binding (its type stays out of this crate's public API).
    pub(crate) fn opus(e: audiopus::Error) -> Self {
        Self::Opus(OpusError(e))
    }
}

/// An error reported by libopus (or by the binding to it), as in [`CodecError::Opus`]; its `Display` says what
/// failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpusError(audiopus::Error);

impl OpusError {
    /// The libopus error code (`OPUS_BAD_ARG` = −1 … `OPUS_ALLOC_FAIL` = −7), if libopus itself returned the error
    /// (rather than the binding refusing an argument before the call).
    #[must_use]
    pub fn code(&self) -> Option<i32> {
        match self.0 {
            audiopus::Error::Opus(code) => Some(code as i32),
            _ => None,
        }
    }
}

impl std::fmt::Display for OpusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for OpusError {}

impl From<rubato::ResamplerConstructionError> for CodecError {
    fn from(e: rubato::ResamplerConstructionError) -> Self {
        Self::Resampler(e.to_string())
    }
}
