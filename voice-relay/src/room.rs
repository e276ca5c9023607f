//! Rooms: members, channel configuration, media key, bounded chat history.

use std::collections::VecDeque;
use std::time::Instant;

use voice_proto::control::{ChannelConfig, RoomInfo};
use voice_proto::{KEY_LEN, KeyId, PublicId};

use crate::ids::SessionIdx;

/// A room that exists from the relay's start (the driver reads them from its configuration file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    /// Room name, 1–64 bytes.
    pub name: String,
    /// Voice settings, including `max_users` (0 = unlimited, capped at 512 by the protocol) and `allow_voice`.
    /// Default ([`RoomConfig::new`]) [`ChannelConfig::default`].
    pub config: ChannelConfig,
    /// Password needed to join, if any. Default `None`.
    pub password: Option<String>,
}

impl RoomConfig {
    /// A room with default voice settings and no password.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), config: ChannelConfig::default(), password: None }
    }

    /// The same room with these voice settings.
    #[must_use]
    pub fn with_config(mut self, config: ChannelConfig) -> Self {
        self.config = config;
        self
    }

    /// The same room, joinable only with `password`.
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }
}

/// A chat message kept for the history sent on join.
#[derive(Debug)]
pub(crate) struct ChatEntry {
    pub(crate) from: PublicId,
    pub(crate) from_name: Box<str>,
    pub(crate) sent_at_ms: u64,
    pub(crate) text: Box<str>,
}

#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) name: String,
    pub(crate) config: ChannelConfig,
    pub(crate) password: Option<String>,
    /// Created on join; removed after lingering empty.
    pub(crate) adhoc: bool,
    /// Sessions, in join order.
    pub(crate) members: Vec<SessionIdx>,
    pub(crate) key_id: KeyId,
    pub(crate) key: [u8; KEY_LEN],
    pub(crate) history: VecDeque<ChatEntry>,
    /// Sum of the text lengths in `history`.
    pub(crate) history_bytes: usize,
    /// When the last member left (ad-hoc rooms are removed after the linger time).
    pub(crate) empty_since: Option<Instant>,
    /// The removal deadline armed in the control plane's timers (ad-hoc rooms while empty).
    pub(crate) linger_timer: Option<Instant>,
}

/// Most members in one room: the protocol's cap on a RoomState member list.
pub(crate) const MAX_ROOM_MEMBERS: usize = voice_proto::control::MAX_MEMBERS;

impl Room {
    pub(crate) fn new(cfg: RoomConfig, adhoc: bool, key: [u8; KEY_LEN], now: Instant) -> Self {
        Self {
            name: cfg.name,
            config: cfg.config,
            password: cfg.password,
            adhoc,
            members: Vec::new(),
            key_id: KeyId(1),
            key,
            history: VecDeque::new(),
            history_bytes: 0,
            empty_since: Some(now),
            linger_timer: None,
        }
    }

    /// Members the room admits.
    pub(crate) fn capacity(&self) -> usize {
        match self.config.max_users {
            0 => MAX_ROOM_MEMBERS,
            n => usize::from(n).min(MAX_ROOM_MEMBERS),
        }
    }

    pub(crate) fn info(&self) -> RoomInfo {
        RoomInfo {
            name: self.name.clone(),
            // At most MAX_ROOM_MEMBERS (512) members, which fits a u16.
            members: u16::try_from(self.members.len()).unwrap_or(u16::MAX),
            max_users: self.config.max_users,
            has_password: self.password.is_some(),
            allow_voice: self.config.allow_voice,
        }
    }

    /// Installs a new key with the next key id.
    pub(crate) fn rotate(&mut self, key: [u8; KEY_LEN]) {
        self.key_id = KeyId(self.key_id.0.wrapping_add(1));
        self.key = key;
    }
}

/// Equality of two byte strings whose running time does not depend on where they differ (it does depend on the
/// length of `given`, which the client chose).
pub(crate) fn ct_eq(expected: &[u8], given: &[u8]) -> bool {
    let mut diff = u8::from(expected.len() != given.len());
    for (i, g) in given.iter().enumerate() {
        diff |= g ^ expected.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn ct_eq_compares_lengths_and_bytes() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"", b"\0"));
    }
}
