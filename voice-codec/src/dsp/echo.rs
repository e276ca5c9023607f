//! Acoustic echo cancellation with the aec3 crate (a Rust port of WebRTC's AEC3), driven through its low-level
//! `EchoCanceller3` API in 10 ms blocks at 48 kHz (the graph API is not used: it brings queues and scheduling this
//! crate does not want). The far-end reference is what the speakers play, pushed by the caller.
//!
//! Measured during development: 200–330 µs per 10 ms and 39–60 dB echo return loss enhancement, but near-end
//! speech is suppressed hard during double talk, and the crate marks its API as work in progress. Hence a feature.
//!
//! Real-time caveat: aec3 0.4 allocates inside its processing (measured: 52 allocations, ~36 KB per 10 ms block, all
//! freed again; see `tests/aec.rs`), so with echo cancellation enabled the capture path is not allocation-free.

use aec3::api::config::EchoCanceller3Config;
use aec3::api::control::EchoControl;
use aec3::audio_processing::aec3::echo_canceller3::EchoCanceller3;
use aec3::audio_processing::audio_buffer::AudioBuffer;
use aec3::audio_processing::stream_config::StreamConfig;

const RATE: usize = 48_000;
const BLOCK: usize = 480;
/// Reference samples kept before the oldest are dropped (1 s).
const REFERENCE_CAPACITY: usize = 48_000;

/// The echo canceller stage for up to two capture channels.
pub(crate) struct EchoCanceller {
    aec: Box<EchoCanceller3>,
    render: AudioBuffer,
    capture: AudioBuffer,
    render_config: StreamConfig,
    capture_config: StreamConfig,
    channels: usize,
    reference: Vec<f32>,
    block: [[f32; BLOCK]; 2],
    render_block: [f32; BLOCK],
}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller")
            .field("channels", &self.channels)
            .field("reference_pending", &self.reference.len())
            .finish_non_exhaustive()
    }
}

impl EchoCanceller {
    /// A canceller for `channels` (1 or 2) capture channels and a mono reference.
    pub(crate) fn new(channels: usize) -> Self {
        let channels = channels.clamp(1, 2);
        Self {
            aec: Box::new(EchoCanceller3::new(EchoCanceller3Config::default(), RATE as i32, 1, channels)),
            render: AudioBuffer::from_sample_rates(RATE, 1, RATE, 1, RATE),
            capture: AudioBuffer::from_sample_rates(RATE, channels, RATE, channels, RATE),
            render_config: StreamConfig::new(RATE, 1, false),
            capture_config: StreamConfig::new(RATE, channels, false),
            channels,
            reference: Vec::with_capacity(REFERENCE_CAPACITY),
            block: [[0.0; BLOCK]; 2],
            render_block: [0.0; BLOCK],
        }
    }

    /// Appends far-end audio (48 kHz, interleaved `ref_channels`), downmixed to mono. The oldest audio is dropped if
    /// more than a second is pending.
    pub(crate) fn push_reference(&mut self, audio: &[f32], ref_channels: usize) {
        let ref_channels = ref_channels.max(1);
        let frames = audio.len() / ref_channels;
        let free = REFERENCE_CAPACITY - self.reference.len();
        if frames > free {
            let drop = (frames - free).min(self.reference.len());
            self.reference.drain(..drop);
        }
        for f in audio.chunks_exact(ref_channels).take(REFERENCE_CAPACITY) {
            self.reference.push(f.iter().sum::<f32>() / ref_channels as f32);
        }
    }

    /// Cancels echo in an interleaved 48 kHz frame in place (whole 10 ms blocks; a partial tail is left as is).
    pub(crate) fn process(&mut self, frame: &mut [f32]) {
        let ch = self.channels;
        for chunk in frame.chunks_exact_mut(BLOCK * ch) {
            // Far end first: one block of reference, or silence if the playback side has not provided it.
            let n = self.reference.len().min(BLOCK);
            self.render_block[..n].copy_from_slice(&self.reference[..n]);
            self.render_block[n..].fill(0.0);
            self.reference.drain(..n);
            self.render.copy_from(&[&self.render_block[..]], &self.render_config);
            self.render.split_into_frequency_bands();
            self.aec.analyze_render(&mut self.render);

            for c in 0..ch {
                for (dst, src) in self.block[c].iter_mut().zip(chunk.iter().skip(c).step_by(ch)) {
                    *dst = *src;
                }
            }
            {
                let [b0, b1] = &self.block;
                let input: [&[f32]; 2] = [&b0[..], &b1[..]];
                self.capture.copy_from(&input[..ch], &self.capture_config);
            }
            self.aec.analyze_capture(&mut self.capture);
            self.capture.split_into_frequency_bands();
            self.aec.process_capture(&mut self.capture, false);
            self.capture.merge_frequency_bands();
            {
                let [b0, b1] = &mut self.block;
                let mut output: [&mut [f32]; 2] = [&mut b0[..], &mut b1[..]];
                self.capture.copy_to_stream(&self.capture_config, &mut output[..ch]);
            }
            for c in 0..ch {
                for (dst, src) in chunk.iter_mut().skip(c).step_by(ch).zip(self.block[c].iter()) {
                    *dst = *src;
                }
            }
        }
    }
}
