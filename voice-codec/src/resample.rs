//! Sample-rate conversion (rubato's synchronous FFT resampler) for streams pushed in chunks of any size, and channel
//! layout conversion.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::CodecError;

/// Converts an interleaved stream from one rate to another, accepting chunks of any length. Rubato works on fixed
/// input chunks (10 ms at the input rate here); the remainder waits in a preallocated buffer for the next call. After
/// construction nothing allocates.
pub(crate) struct StreamResampler {
    inner: Option<Box<Fft<f32>>>,
    channels: usize,
    chunk_frames: usize,
    pending: Vec<f32>,
    out: Vec<f32>,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("channels", &self.channels)
            .field("chunk_frames", &self.chunk_frames)
            .field("passthrough", &self.inner.is_none())
            .finish()
    }
}

impl StreamResampler {
    /// A resampler from `in_rate_hz` to `out_rate_hz` for `channels` interleaved channels. Equal rates pass through.
    pub(crate) fn new(in_rate_hz: u32, out_rate_hz: u32, channels: usize) -> Result<Self, CodecError> {
        if in_rate_hz == out_rate_hz {
            return Ok(Self { inner: None, channels, chunk_frames: 0, pending: Vec::new(), out: Vec::new() });
        }
        let chunk_frames = (in_rate_hz as usize).div_ceil(100);
        let fft = Fft::<f32>::new(in_rate_hz as usize, out_rate_hz as usize, chunk_frames, channels, FixedSync::Input)?;
        let out_max = fft.output_frames_max();
        Ok(Self {
            inner: Some(Box::new(fft)),
            channels,
            chunk_frames,
            pending: Vec::with_capacity(chunk_frames * channels),
            out: vec![0.0; out_max * channels],
        })
    }

    /// Frames of delay the resampler adds (at the output rate).
    pub(crate) fn output_delay(&self) -> usize {
        self.inner.as_ref().map_or(0, |r| r.output_delay())
    }

    /// Resamples `input` (interleaved, whole frames) and hands every produced block to `sink`.
    pub(crate) fn process(&mut self, mut input: &[f32], mut sink: impl FnMut(&[f32])) -> Result<(), CodecError> {
        let Some(fft) = self.inner.as_mut() else {
            sink(input);
            return Ok(());
        };
        let ch = self.channels;
        let need = self.chunk_frames * ch;
        while !input.is_empty() {
            let take = (need - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == need {
                let inp = InterleavedSlice::new(&self.pending[..], ch, self.chunk_frames)
                    .map_err(|e| CodecError::Resampler(e.to_string()))?;
                let frames_out = self.out.len() / ch;
                let mut outp = InterleavedSlice::new_mut(&mut self.out[..], ch, frames_out)
                    .map_err(|e| CodecError::Resampler(e.to_string()))?;
                let (_, written) =
                    fft.process_into_buffer(&inp, &mut outp, None).map_err(|e| CodecError::Resampler(e.to_string()))?;
                self.pending.clear();
                sink(&self.out[..written * ch]);
            }
        }
        Ok(())
    }
}

/// Converts interleaved frames from `in_ch` to `out_ch` channels, appending to `out`: down to mono averages, up from
/// mono duplicates, otherwise channel `c` takes input channel `c % in_ch`.
pub(crate) fn remix_into(input: &[f32], in_ch: usize, out_ch: usize, out: &mut Vec<f32>) {
    if in_ch == out_ch {
        out.extend_from_slice(input);
        return;
    }
    for frame in input.chunks_exact(in_ch) {
        if out_ch == 1 {
            out.push(frame.iter().sum::<f32>() / in_ch as f32);
        } else {
            for c in 0..out_ch {
                out.push(frame[c % in_ch]);
            }
        }
    }
}
