//! Per-session state, kept compact: the relay may hold tens of thousands of them.

use std::net::SocketAddr;
use std::time::Instant;

use voice_proto::control::Member;
use voice_proto::{PublicId, SessionSecret, SessionToken, WhisperTarget};

use crate::ConnId;
use crate::ratelimit::TokenBucket;

/// One whisper list: audio with `target` goes only to `members` (those still in the sender's room).
#[derive(Debug)]
pub(crate) struct Whisper {
    pub(crate) target: WhisperTarget,
    pub(crate) members: Box<[PublicId]>,
}

/// What receivers reported about this session as a sender since the last bitrate decision, and the controller
/// that turns it into encoder hints.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LossState {
    /// Worst `fraction_lost` (1/256) any receiver reported since the last decision.
    pub(crate) worst: u8,
    /// Largest interarrival jitter any receiver reported since the last decision, ms.
    pub(crate) max_jitter_ms: u32,
    /// This session's own latest UDP round-trip time (from its receiver reports), ms.
    pub(crate) rtt_ms: Option<u32>,
    /// At least one report arrived since the last decision.
    pub(crate) seen: bool,
    /// Loss / congestion → bitrate and FEC.
    pub(crate) controller: crate::relay::hints::BitrateController,
    /// The last hint sent, to send only changes.
    pub(crate) last_hint: Option<crate::relay::hints::Hint>,
}

/// A logged-in session. Lives until its control connection has been gone for the resume grace period.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) token: SessionToken,
    pub(crate) public_id: PublicId,
    pub(crate) secret: SessionSecret,
    pub(crate) name: Box<str>,
    /// The UDP address proven by the last accepted HELLO.
    pub(crate) bound: Option<SocketAddr>,
    /// Last datagram from the bound address (binding idle timeout).
    pub(crate) last_rx: Instant,
    /// Counter of the last accepted HELLO.
    pub(crate) hello_counter: Option<u64>,
    /// The control connection, if attached.
    pub(crate) conn: Option<ConnId>,
    /// When the control connection went away (meaningful while `conn` is `None`).
    pub(crate) detached_at: Instant,
    /// Index of the room in the relay's room slab.
    pub(crate) room: Option<u32>,
    pub(crate) muted: bool,
    pub(crate) deafened: bool,
    pub(crate) speaking: bool,
    /// Last accepted audio packet (speaking timeout).
    pub(crate) last_audio: Instant,
    pub(crate) packet_bucket: TokenBucket,
    pub(crate) byte_bucket: TokenBucket,
    pub(crate) whispers: Vec<Whisper>,
    pub(crate) loss: LossState,
}

impl Session {
    pub(crate) fn member(&self) -> Member {
        Member {
            id: self.public_id,
            name: self.name.to_string(),
            muted: self.muted,
            deafened: self.deafened,
            speaking: self.speaking,
        }
    }

    /// Whether this session receives forwarded audio: bound and not deafened.
    #[inline]
    pub(crate) fn audio_destination(&self) -> Option<SocketAddr> {
        if self.deafened { None } else { self.bound }
    }

    #[inline]
    pub(crate) fn whisper(&self, target: WhisperTarget) -> Option<&Whisper> {
        self.whispers.iter().find(|w| w.target == target)
    }
}

/// `name` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate_name(name: &str, max: usize) -> &str {
    if name.len() <= max {
        return name;
    }
    // Index 0 is always a char boundary, so the loop stops and the slice below is in bounds.
    let mut end = max;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate_name;

    #[test]
    fn truncates_at_char_boundary() {
        assert_eq!(truncate_name("abc", 64), "abc");
        assert_eq!(truncate_name("ééé", 3), "é");
    }
}
