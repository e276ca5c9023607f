//! Counters and gauges in the spirit of NetEQ's network statistics and the W3C `RTCInboundRtpStreamStats`.

use std::time::Duration;

/// What the buffer has seen and done since construction. Cheap to copy; read it with
/// [`JitterBuffer::stats`](crate::JitterBuffer::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Packets passed to `push` (including duplicates and late ones).
    pub packets_received: u64,
    /// Packets refused because the same sequence number was buffered or already played.
    pub duplicates: u64,
    /// Packets refused because their slot was already played or given up.
    pub late: u64,
    /// Packets refused because the buffer was full.
    pub overflow: u64,
    /// Buffered packets discarded without being played (a re-anchor, or audio beyond `max_delay`).
    pub discarded: u64,
    /// Frames played from their own packet.
    pub played: u64,
    /// Frames recovered from the next packet's in-band FEC.
    pub fec_recovered: u64,
    /// Slots concealed (PLC) while the stream was active.
    pub concealed_frames: u64,
    /// Runs of consecutive concealed slots (each run counts once).
    pub conceal_events: u64,
    /// Missing frames skipped without a slot: the slots concealed while waiting for them stood for them, or playout
    /// was behind its target.
    pub skipped_frames: u64,
    /// Slots of silence (before the stream starts, after a talkspurt ends).
    pub silence_frames: u64,
    /// Slots with a shrink request (including silence slots shortened so that a talkspurt starts at the target).
    pub shrink_ops: u64,
    /// Slots with an expand request (including silence slots lengthened so that a talkspurt starts at the target).
    pub expand_ops: u64,
    /// Total samples (48 kHz) asked to be removed by shrink requests.
    pub shrink_samples: u64,
    /// Total samples (48 kHz) asked to be added by expand requests.
    pub expand_samples: u64,
    /// Times playout was (re)started on a packet: the first one, each talkspurt, after a stall, after a restart.
    pub reanchors: u64,
    /// Sequence jumps too large to be a gap (sender restart): the buffer was flushed and the stream restarted.
    pub restarts: u64,
    /// Delay of the audio at the last decision, relative to the fastest packet of the last ~2 s.
    pub current_delay: Duration,
    /// The target delay at the last decision.
    pub target_delay: Duration,
    /// Packets buffered now.
    pub depth: usize,
}
