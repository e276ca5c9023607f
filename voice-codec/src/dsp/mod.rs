//! Capture-side signal processing stages: gain, noise suppression, voice activity gate.

mod noise;
mod vad;

pub(crate) use noise::NoiseSuppressor;
pub(crate) use vad::VoiceGate;

/// Multiplies every sample by `gain`.
pub(crate) fn apply_gain(samples: &mut [f32], gain: f32) {
    for s in samples {
        *s *= gain;
    }
}
