//! Per-session state of the control plane, kept compact: the relay may hold tens of thousands of them.

use std::net::SocketAddr;
use std::time::Instant;

use std::sync::Arc;

use voice_proto::control::Member;
use voice_proto::{KEY_LEN, PublicId, SessionToken, WhisperTarget};

use crate::ConnId;
use crate::ids::RoomIdx;

/// One whisper list: audio with `target` goes only to `members` (those still in the sender's room).
#[derive(Clone, Debug)]
pub(crate) struct Whisper {
    pub(crate) target: WhisperTarget,
    /// Shared by the control plane and every shard.
    pub(crate) members: Arc<[PublicId]>,
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

/// The control plane's record of a logged-in session. Lives until its control connection has been gone for the
/// resume grace period. (Its forwarding record is in every shard: `relay::shard::FwdSession`.)
#[derive(Debug)]
pub(crate) struct Session {
    /// Distinguishes this session from earlier ones in the same slot (events from shards name both).
    pub(crate) generation: u32,
    pub(crate) token: SessionToken,
    pub(crate) public_id: PublicId,
    /// The session secret's bytes (for Resume; the shards hold the HMAC keys).
    pub(crate) secret: [u8; KEY_LEN],
    pub(crate) name: Box<str>,
    /// The bound UDP address, as the control plane decided it from the shards' `Bound` events.
    pub(crate) bound: Option<SocketAddr>,
    /// Counter of the newest HELLO a shard accepted.
    pub(crate) hello_counter: Option<u64>,
    /// The control connection, if attached.
    pub(crate) conn: Option<ConnId>,
    /// When the control connection went away (meaningful while `conn` is `None`).
    pub(crate) detached_at: Instant,
    pub(crate) room: Option<RoomIdx>,
    pub(crate) muted: bool,
    pub(crate) deafened: bool,
    pub(crate) speaking: bool,
    /// The shard that reported the speaking start (only it may end it: after a roam, two shards may disagree).
    pub(crate) speaking_shard: usize,
    pub(crate) whispers: Vec<Whisper>,
    pub(crate) loss: LossState,
    /// In the control plane's list of sessions with reports to decide on.
    pub(crate) hint_dirty: bool,
    /// The resume-grace deadline armed in the control plane's timers.
    pub(crate) grace_timer: Option<Instant>,
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
