//! Newtypes for the integers that travel on the wire.
//!
//! Every wire integer has its own type so a session token cannot be passed where a public id is expected, and so
//! that the arithmetic that is valid for each (sequence distance, timestamp wraparound) lives in one place.

use std::fmt;

/// Secret-ish per-session handle chosen by the relay at login, carried in every client → relay datagram.
///
/// It travels in the clear, so it only *names* a session; it never proves anything (see `PROTOCOL.md`, security
/// model). The relay never reveals one client's token to another client.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SessionToken(pub u32);

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are printed only partly so logs do not leak them whole.
        write!(f, "SessionToken({:04x}…)", self.0 >> 16)
    }
}

/// Public identity of a member, shown to other clients instead of its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PublicId(pub u32);

/// Per-sender audio sequence number: starts anywhere below 2^62 and grows by one per audio packet.
///
/// The wire field is 64 bits wide, so the value *is* the extended sequence number: at 100 packets/s it would take
/// billions of years to wrap. Receivers that want to be robust against a hostile or buggy sender that does wrap use
/// [`Seq::distance`], which is serial-number arithmetic on 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Seq(pub u64);

impl Seq {
    /// The sequence number that follows this one.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }

    /// Signed distance `self - earlier`, correct across a wrap of the 64-bit space.
    #[must_use]
    pub const fn distance(self, earlier: Seq) -> i64 {
        self.0.wrapping_sub(earlier.0) as i64
    }
}

/// RTP-style media timestamp: 48 kHz samples, 32 bits, wraps every ~24.8 hours.
///
/// Compare timestamps only through [`Timestamp::distance`] or a [`TimestampUnwrapper`], never with `<`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Timestamp(pub u32);

impl Timestamp {
    /// Clock rate of every timestamp on the wire, whatever the codec's internal rate.
    pub const RATE_HZ: u32 = 48_000;

    /// This timestamp advanced by `samples` (wrapping).
    #[must_use]
    pub const fn add_samples(self, samples: u32) -> Self {
        Self(self.0.wrapping_add(samples))
    }

    /// Signed distance `self - earlier` in samples, correct across wraparound (serial arithmetic, RFC 1982).
    #[must_use]
    pub const fn distance(self, earlier: Timestamp) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }
}

/// Turns 32-bit wrapping [`Timestamp`]s into monotone 64-bit values, so that wraparound never reorders.
///
/// Each new value is placed within ±2^31 samples of the last one seen. The first value maps to `2^32 + ts`, which
/// leaves room for timestamps slightly older than the first one without going below zero.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimestampUnwrapper {
    last: Option<(Timestamp, u64)>,
}

impl TimestampUnwrapper {
    /// A fresh unwrapper that has seen nothing.
    #[must_use]
    pub const fn new() -> Self {
        Self { last: None }
    }

    /// The extended value of `ts`; the unwrapper moves forward when `ts` is newer than anything seen.
    pub fn unwrap(&mut self, ts: Timestamp) -> u64 {
        match self.last {
            None => {
                let ext = (1u64 << 32) + u64::from(ts.0);
                self.last = Some((ts, ext));
                ext
            }
            Some((last_ts, last_ext)) => {
                let d = i64::from(ts.distance(last_ts));
                let ext = last_ext.saturating_add_signed(d);
                if d > 0 {
                    self.last = Some((ts, ext));
                }
                ext
            }
        }
    }
}

/// Which media key sealed a payload; lets receivers keep the old key for a moment during rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KeyId(pub u8);

/// Whisper target of a client → relay audio packet: 0 = the whole room, 1..=65535 = a whisper list set up over the
/// control channel with `SetWhisper`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct WhisperTarget(pub u16);

impl WhisperTarget {
    /// Talk to the whole room.
    pub const ROOM: Self = Self(0);

    /// `true` for the room, `false` for a whisper list.
    #[must_use]
    pub const fn is_room(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_distance_wraps() {
        assert_eq!(Seq(5).distance(Seq(3)), 2);
        assert_eq!(Seq(1).distance(Seq(u64::MAX)), 2);
        assert_eq!(Seq(u64::MAX).distance(Seq(1)), -2);
        assert_eq!(Seq(u64::MAX).next(), Seq(0));
    }

    #[test]
    fn timestamp_unwrap_never_reorders_across_wrap() {
        let mut u = TimestampUnwrapper::new();
        let mut ts = Timestamp(u32::MAX - 960 * 3);
        let mut prev = u.unwrap(ts);
        for _ in 0..10 {
            ts = ts.add_samples(960);
            let ext = u.unwrap(ts);
            assert_eq!(ext, prev + 960);
            prev = ext;
        }
        // An older (reordered) timestamp from before the wrap maps below the newest one.
        let old = u.unwrap(Timestamp(u32::MAX - 960));
        assert!(old < prev);
        assert_eq!(prev - old, 960 * 8);
    }
}
