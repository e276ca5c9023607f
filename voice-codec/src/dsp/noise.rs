//! Noise suppression with nnnoiseless (a Rust port of RNNoise): 10 ms frames of 480 samples at 48 kHz, one state per
//! channel, samples scaled to the i16 range the model was trained on.

use nnnoiseless::DenoiseState;

const BLOCK: usize = DenoiseState::FRAME_SIZE;
const I16_SCALE: f32 = 32_768.0;

/// One RNNoise state per channel plus scratch buffers; processing allocates nothing.
pub(crate) struct NoiseSuppressor {
    states: Vec<Box<DenoiseState<'static>>>,
    input: [f32; BLOCK],
    output: [f32; BLOCK],
}

impl std::fmt::Debug for NoiseSuppressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSuppressor").field("channels", &self.states.len()).finish()
    }
}

impl NoiseSuppressor {
    pub(crate) fn new(channels: usize) -> Self {
        Self { states: (0..channels).map(|_| DenoiseState::new()).collect(), input: [0.0; BLOCK], output: [0.0; BLOCK] }
    }

    /// Denoises an interleaved frame in place. `frame.len()` is a multiple of `480 × channels` (all frame durations
    /// are whole 10 ms blocks); a trailing partial block, which the pipeline never produces, is left untouched.
    pub(crate) fn process(&mut self, frame: &mut [f32]) {
        let ch = self.states.len();
        for block in frame.chunks_exact_mut(BLOCK * ch) {
            for (c, state) in self.states.iter_mut().enumerate() {
                for (dst, src) in self.input.iter_mut().zip(block.iter().skip(c).step_by(ch)) {
                    *dst = src * I16_SCALE;
                }
                state.process_frame(&mut self.output, &self.input);
                for (dst, src) in block.iter_mut().skip(c).step_by(ch).zip(self.output.iter()) {
                    *dst = src / I16_SCALE;
                }
            }
        }
    }
}
