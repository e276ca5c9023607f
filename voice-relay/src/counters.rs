//! Operational counters: plain integers, kept by the control plane and by each shard on its own thread, added up
//! for reading (e.g. for Prometheus).

/// Why a datagram was dropped (`PROTOCOL.md` §7). "Drop" means: discarded, counted here, nothing sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Longer than 1200 bytes.
    Oversize,
    /// Bad version, unknown kind, length that does not match its kind, or a 1-byte datagram.
    Malformed,
    /// A kind only the relay sends (AUDIO_DOWN, HELLO_ACK, PONG).
    WrongDirection,
    /// The token names no live session.
    UnknownToken,
    /// The token is live but the source address is not the one bound to it (spoofed, or roamed without a HELLO).
    Unbound,
    /// A HELLO whose MAC does not verify.
    BadMac,
    /// A HELLO whose counter is not above the last accepted one (replayed or reordered).
    StaleHello,
    /// A 0-byte keepalive from an address bound to no session.
    StrayKeepalive,
    /// AUDIO_UP from a session that is in no room.
    NotInRoom,
    /// AUDIO_UP from a session that muted itself.
    Muted,
    /// AUDIO_UP in a chat-only room.
    VoiceNotAllowed,
    /// AUDIO_UP over the session's packets/s or bytes/s limit.
    RateLimited,
    /// AUDIO_UP to a whisper target the sender never set up.
    UnknownWhisperTarget,
    /// AUDIO_UP, PING or RECEIVER_REPORT from the bound address whose uplink tag does not verify under the named
    /// session's key (`PROTOCOL.md` §2.8): forged with a sniffed token. Nothing was charged to the session.
    BadTag,
    /// AUDIO_UP whose sequence number the relay already forwarded for that session (a copied genuine packet), or
    /// one too old for its window (`PROTOCOL.md` §2.3). Nothing was charged to the session.
    Replayed,
}

impl DropReason {
    /// Every reason, in the order of [`Counters::drops`].
    pub const ALL: [Self; 15] = [
        Self::Oversize,
        Self::Malformed,
        Self::WrongDirection,
        Self::UnknownToken,
        Self::Unbound,
        Self::BadMac,
        Self::StaleHello,
        Self::StrayKeepalive,
        Self::NotInRoom,
        Self::Muted,
        Self::VoiceNotAllowed,
        Self::RateLimited,
        Self::UnknownWhisperTarget,
        Self::BadTag,
        Self::Replayed,
    ];

    /// A stable snake_case name, e.g. for a metrics label.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::Malformed => "malformed",
            Self::WrongDirection => "wrong_direction",
            Self::UnknownToken => "unknown_token",
            Self::Unbound => "unbound",
            Self::BadMac => "bad_mac",
            Self::StaleHello => "stale_hello",
            Self::StrayKeepalive => "stray_keepalive",
            Self::NotInRoom => "not_in_room",
            Self::Muted => "muted",
            Self::VoiceNotAllowed => "voice_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::UnknownWhisperTarget => "unknown_whisper_target",
            Self::BadTag => "bad_tag",
            Self::Replayed => "replayed",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one relay. Monotone except the gauges `sessions`, `rooms` and `bound_sessions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Live sessions (gauge).
    pub sessions: u64,
    /// Sessions with a bound UDP address (gauge).
    pub bound_sessions: u64,
    /// Rooms, configured and ad-hoc (gauge).
    pub rooms: u64,
    /// Sessions created by login since start.
    pub logins: u64,
    /// Refused logins since start.
    pub login_failures: u64,
    /// Logins refused at once because the driver's verification pool was full ([`crate::AuthError::Busy`]).
    pub logins_busy: u64,
    /// Logins refused at once because the account or the address is backing off after wrong credentials
    /// ([`crate::AuthError::Throttled`]).
    pub logins_throttled: u64,
    /// Control connections closed because they did not log in within `login_timeout`.
    pub login_timeouts: u64,
    /// Requests refused because a user name, room name or chat text holds control characters.
    pub control_chars_refused: u64,
    /// Sessions that ended since start.
    pub sessions_ended: u64,
    /// Datagrams received.
    pub packets_in: u64,
    /// Bytes of datagrams received.
    pub bytes_in: u64,
    /// Datagrams queued for sending (audio fan-out, HELLO_ACK, PONG).
    pub packets_out: u64,
    /// Bytes of datagrams queued for sending.
    pub bytes_out: u64,
    /// Audio datagrams accepted for forwarding (each counted once, however many recipients).
    pub audio_accepted: u64,
    /// Audio copies queued (one per recipient; they share one buffer).
    pub audio_forwarded: u64,
    /// HELLOs accepted (binds and rebinds).
    pub hellos_accepted: u64,
    /// Bindings lost to the idle timeout.
    pub bindings_expired: u64,
    /// Media key rotations.
    pub key_rotations: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Counters {
    /// Datagrams dropped for `reason`.
    #[must_use]
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// All datagrams dropped, whatever the reason.
    #[must_use]
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// `(reason, count)` for every reason.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.dropped(r)))
    }

    /// Adds `other`'s monotone counters to these (the gauges `sessions`, `bound_sessions` and `rooms` are the
    /// control plane's alone and stay as they are).
    pub(crate) fn absorb(&mut self, other: &Self) {
        let Self {
            sessions: _,
            bound_sessions: _,
            rooms: _,
            logins,
            login_failures,
            logins_busy,
            logins_throttled,
            login_timeouts,
            control_chars_refused,
            sessions_ended,
            packets_in,
            bytes_in,
            packets_out,
            bytes_out,
            audio_accepted,
            audio_forwarded,
            hellos_accepted,
            bindings_expired,
            key_rotations,
            drops,
        } = other;
        self.logins += logins;
        self.login_failures += login_failures;
        self.logins_busy += logins_busy;
        self.logins_throttled += logins_throttled;
        self.login_timeouts += login_timeouts;
        self.control_chars_refused += control_chars_refused;
        self.sessions_ended += sessions_ended;
        self.packets_in += packets_in;
        self.bytes_in += bytes_in;
        self.packets_out += packets_out;
        self.bytes_out += bytes_out;
        self.audio_accepted += audio_accepted;
        self.audio_forwarded += audio_forwarded;
        self.hellos_accepted += hellos_accepted;
        self.bindings_expired += bindings_expired;
        self.key_rotations += key_rotations;
        for (mine, theirs) in self.drops.iter_mut().zip(drops) {
            *mine += theirs;
        }
    }

    #[inline]
    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }
}
