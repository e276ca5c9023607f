//! Injected randomness: session tokens, session secrets and media keys come from a [`RandomSource`] given to the
//! relay at construction, so the core stays deterministic under test.

use crate::error::RngError;

/// Where the relay draws its random bytes from.
///
/// Production uses [`SystemRng`] (the operating system's CSPRNG through `ring`); tests and simulations use
/// [`SeededRng`], which is reproducible and **not** secure.
pub trait RandomSource {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RngError>;
}

/// The operating system's cryptographically secure generator (`ring::rand::SystemRandom`).
#[derive(Debug)]
pub struct SystemRng(ring::rand::SystemRandom);

impl SystemRng {
    /// A handle on the system generator.
    #[must_use]
    pub fn new() -> Self {
        Self(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRng {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomSource for SystemRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RngError> {
        ring::rand::SecureRandom::fill(&self.0, dest).map_err(|_| RngError::Unavailable)
    }
}

/// A seeded, reproducible generator (SplitMix64) for tests, simulations and fuzzing.
///
/// **Not cryptographically secure**: anyone who sees a few outputs can predict the rest. Never use it in a relay
/// exposed to real clients.
#[derive(Clone, Debug)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// A generator whose whole output is determined by `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl RandomSource for SeededRng {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RngError> {
        for chunk in dest.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_and_fills_odd_lengths() {
        let (mut a, mut b) = (SeededRng::new(7), SeededRng::new(7));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x).unwrap();
        b.fill(&mut y).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, [0; 13]);
    }

    #[test]
    fn system_rng_fills() {
        let mut k = [0u8; 32];
        SystemRng::new().fill(&mut k).unwrap();
        assert_ne!(k, [0; 32]);
    }
}
