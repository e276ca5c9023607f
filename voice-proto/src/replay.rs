//! The receiver's replay window: a 256-packet bitmap per sender that only authenticated packets advance.

use crate::crypto::MediaKey;
use crate::datagram::AudioHeader;
use crate::error::{OpenError, ReplayError};
use crate::types::{PublicId, Seq};

/// Packets the window remembers behind the newest one accepted.
pub const REPLAY_WINDOW: u64 = 256;
const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Sliding replay window over one sender's sequence numbers (the IPsec / SRTP scheme, RFC 4303 §3.4.3).
///
/// A sequence number is refused if it was accepted before or is more than [`REPLAY_WINDOW`] - 1 behind the newest
/// accepted one. [`ReplayWindow::open`] checks, decrypts, and only then records the packet, so a forged packet can
/// neither advance the window nor mark a number as seen.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    /// Newest accepted sequence number.
    top: Option<u64>,
    /// Bit `i` set = `top - i` was accepted.
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// An empty window.
    #[must_use]
    pub const fn new() -> Self {
        Self { top: None, bits: [0; WORDS] }
    }

    /// Newest accepted sequence number.
    #[must_use]
    pub fn newest(&self) -> Option<Seq> {
        self.top.map(Seq)
    }

    /// Would `seq` be accepted? Changes nothing.
    #[inline]
    pub fn check(&self, seq: Seq) -> Result<(), ReplayError> {
        let Some(top) = self.top else { return Ok(()) };
        if seq.0 > top {
            return Ok(());
        }
        let back = top - seq.0;
        if back >= REPLAY_WINDOW {
            return Err(ReplayError::TooOld);
        }
        if self.bit(back) { Err(ReplayError::Duplicate) } else { Ok(()) }
    }

    #[inline]
    fn bit(&self, back: u64) -> bool {
        let (w, b) = ((back / 64) as usize, back % 64);
        self.bits[w] >> b & 1 == 1
    }

    fn shift(&mut self, by: u64) {
        if by >= REPLAY_WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        for i in (0..WORDS).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.bits[s]);
            let lo = src.and_then(|s| s.checked_sub(1)).map_or(0, |s| self.bits[s]);
            self.bits[i] = if bits == 0 { hi } else { hi << bits | lo >> (64 - bits) };
        }
    }

    /// Records `seq` as accepted. Call only for a packet that authenticated; prefer [`ReplayWindow::open`].
    #[inline]
    pub fn commit(&mut self, seq: Seq) {
        match self.top {
            None => {
                self.top = Some(seq.0);
                self.bits = [0; WORDS];
                self.bits[0] = 1;
            }
            Some(top) if seq.0 > top => {
                self.shift(seq.0 - top);
                self.top = Some(seq.0);
                self.bits[0] |= 1;
            }
            Some(top) => {
                let back = top - seq.0;
                if back < REPLAY_WINDOW {
                    let (w, b) = ((back / 64) as usize, back % 64);
                    self.bits[w] |= 1 << b;
                }
            }
        }
    }

    /// Checks `header.seq` against the window, opens `payload` in place with `key`, and only if it authenticates
    /// records the sequence number. Returns the plaintext (a prefix of `payload`).
    pub fn open<'p>(
        &mut self,
        key: &MediaKey,
        sender: PublicId,
        header: &AudioHeader,
        payload: &'p mut [u8],
    ) -> Result<&'p mut [u8], OpenError> {
        self.check(header.seq)?;
        let plain = key.open_in_place(sender, header, payload)?;
        self.commit(header.seq);
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_new_refuses_duplicates_and_old() {
        let mut w = ReplayWindow::new();
        for s in [10u64, 12, 11, 300] {
            assert_eq!(w.check(Seq(s)), Ok(()));
            w.commit(Seq(s));
            assert_eq!(w.check(Seq(s)), Err(ReplayError::Duplicate));
        }
        // 300 - 255 = 45 is the oldest in reach.
        assert_eq!(w.check(Seq(44)), Err(ReplayError::TooOld));
        assert_eq!(w.check(Seq(45)), Ok(()));
        assert_eq!(w.check(Seq(299)), Ok(()));
    }

    #[test]
    fn shift_keeps_bits_across_words() {
        let mut w = ReplayWindow::new();
        for s in 0..200u64 {
            if s % 3 == 0 {
                w.commit(Seq(s));
            }
        }
        w.commit(Seq(270));
        for s in 15..200u64 {
            let expect = if s % 3 == 0 { Err(ReplayError::Duplicate) } else { Ok(()) };
            assert_eq!(w.check(Seq(s)), expect, "seq {s}");
        }
    }
}
