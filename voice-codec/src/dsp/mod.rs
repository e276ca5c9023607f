//! Capture-side signal processing stages: gain, noise suppression, echo cancellation (feature `aec`), voice
//! activity gate, energy onset detection.

#[cfg(feature = "aec")]
mod echo;
mod noise;
mod onset;
mod vad;

#[cfg(feature = "aec")]
pub(crate) use echo::EchoCanceller;

pub(crate) use noise::NoiseSuppressor;
pub(crate) use onset::OnsetDetector;
pub(crate) use vad::VoiceGate;

/// Multiplies every sample by `gain`.
pub(crate) fn apply_gain(samples: &mut [f32], gain: f32) {
    for s in samples {
        *s *= gain;
    }
}
