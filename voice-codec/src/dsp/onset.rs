//! Energy onset detector and background classifier: 48 kHz mono is high-passed (DC and rumble out), cut into 5 ms
//! blocks, and each block's energy is compared with a tracked noise floor (falls at once, rises about 3 dB/s).
//!
//! An onset is a block at least [`ONSET_RATIO`] (about +5 dB) above the floor: much faster than a learned voice
//! detector, but it also fires on any other sound, so the gate only uses it to open provisionally. A frame whose
//! blocks all stay within a few dB of the floor is background (used for DTX).

/// Block length, samples at 48 kHz (5 ms).
const BLOCK: usize = 240;
/// Energy ratio over the floor that counts as an onset (about +5 dB).
const ONSET_RATIO: f32 = 3.0;
/// Energy ratio over the floor up to which a block is background (about +4 dB).
const BACKGROUND_RATIO: f32 = 2.5;
/// Background is never louder than this mean square (−30 dBFS).
const BACKGROUND_MAX: f32 = 1e-3;
/// Below this mean square (−60 dBFS) a block is background whatever the floor (e.g. noise suppression's residue).
const BACKGROUND_QUIET: f32 = 1e-6;
/// Below this mean square (−70 dBFS) nothing is an onset.
const MIN_ENERGY: f32 = 1e-7;
/// Floor rise per block while the signal is above it (about 3 dB/s).
const FLOOR_RISE: f32 = 1.004;
/// DC blocker pole (about 100 Hz at 48 kHz).
const HP_POLE: f32 = 0.987;

/// Onset detector and noise-floor tracker. Processing allocates nothing.
#[derive(Debug)]
pub(crate) struct OnsetDetector {
    floor: f32,
    x1: f32,
    y1: f32,
    acc: f32,
    filled: usize,
    frame_onset: bool,
    frame_background: bool,
}

impl OnsetDetector {
    pub(crate) fn new() -> Self {
        Self { floor: f32::INFINITY, x1: 0.0, y1: 0.0, acc: 0.0, filled: 0, frame_onset: false, frame_background: true }
    }

    /// Feeds one 48 kHz mono frame; returns whether an onset started in it. Afterwards
    /// [`background`](Self::background) tells whether the whole frame was background.
    pub(crate) fn process(&mut self, mono: &[f32]) -> bool {
        self.frame_onset = false;
        self.frame_background = true;
        for &x in mono {
            let x = if x.is_finite() { x } else { 0.0 };
            let y = x - self.x1 + HP_POLE * self.y1;
            self.x1 = x;
            self.y1 = y;
            self.acc += y * y;
            self.filled += 1;
            if self.filled == BLOCK {
                let energy = self.acc / BLOCK as f32;
                self.acc = 0.0;
                self.filled = 0;
                self.block(energy);
            }
        }
        self.frame_onset
    }

    fn block(&mut self, energy: f32) {
        if !energy.is_finite() {
            return;
        }
        if energy > self.floor * ONSET_RATIO && energy > MIN_ENERGY {
            self.frame_onset = true;
        }
        if (energy > self.floor * BACKGROUND_RATIO && energy > BACKGROUND_QUIET) || energy > BACKGROUND_MAX {
            self.frame_background = false;
        }
        self.floor = if energy < self.floor { energy } else { self.floor * FLOOR_RISE };
    }

    /// Whether every block of the last frame stayed within a few dB of the noise floor or below −60 dBFS (and in any
    /// case below −30 dBFS).
    pub(crate) fn background(&self) -> bool {
        self.frame_background
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stationary_noise_is_background_and_a_step_is_an_onset() {
        let mut d = OnsetDetector::new();
        let mut x = 1u32;
        let mut noise = |amp: f32| {
            (0..960)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    amp * ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
                })
                .collect::<Vec<f32>>()
        };
        let mut onsets = 0;
        for _ in 0..100 {
            onsets += usize::from(d.process(&noise(0.01)));
        }
        assert!(onsets <= 1, "{onsets}");
        assert!(d.background());
        assert!(d.process(&noise(0.03)));
        assert!(!d.background());
    }
}
