//! Errors: a bad configuration at construction, and the reasons a pushed packet was not buffered.

use thiserror::Error;

/// Why [`JitterBuffer::new`](crate::JitterBuffer::new) refused a [`Config`](crate::Config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `frame_ms` must be one of the Opus frame durations the stack uses: 10, 20, 40 or 60.
    #[error("unsupported frame duration {0} ms (expected 10, 20, 40 or 60)")]
    FrameDuration(u32),
    /// `capacity` must hold at least two frames (the one playing and its successor, for FEC).
    #[error("capacity {0} is too small (at least 2 packets)")]
    Capacity(usize),
    /// `min_delay` is larger than `max_delay`, or `max_delay` is beyond what the buffer supports (10 s).
    #[error("delay bounds are inconsistent: min {min_ms} ms, max {max_ms} ms")]
    DelayBounds {
        /// The configured minimum delay, in milliseconds.
        min_ms: u128,
        /// The configured maximum delay, in milliseconds.
        max_ms: u128,
    },
}

/// Why a pushed packet was not buffered. None of these is fatal: the buffer keeps working and counts each case in
/// its [`Stats`](crate::Stats). The packet (and its payload) is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PushError {
    /// The same sequence number is already buffered or was already played.
    #[error("duplicate packet")]
    Duplicate,
    /// The packet's slot has already been played out (or given up): it arrived too late to be used.
    #[error("packet arrived after its playout slot")]
    Late,
    /// The buffer already holds `capacity` packets; the new one was refused. Happens only when the sender runs far
    /// ahead of playout (a configuration with `capacity` smaller than `max_delay` allows, or a misbehaving sender).
    #[error("buffer full")]
    Full,
}
