//! The mixer: sums every speaker's playback output, soft-clips, and converts to the device rate and channel count.

use crate::CodecError;
use crate::config::{ChannelLayout, SAMPLE_RATE_HZ, validate_device};
use crate::playback::PlaybackPipeline;
use crate::resample::{StreamResampler, remix_into};

/// Most 48 kHz samples per channel one [`Mixer::mix`] call may produce (120 ms).
pub const MAX_MIX_SAMPLES: usize = 5_760;
/// Below this magnitude the soft clipper is the identity.
const KNEE: f32 = 0.75;

/// Soft clipper: the identity up to ±0.75, then a smooth knee toward ±1 (never beyond; NaN becomes 0).
pub fn soft_clip(x: f32) -> f32 {
    let a = x.abs();
    if a <= KNEE || a.is_nan() {
        return if x.is_nan() { 0.0 } else { x };
    }
    // Rational knee u / (1 + u): slope 1 at the knee (no kink), strictly increasing, so even a 10× overload keeps
    // its waveform shape instead of flattening (tanh saturates to exactly 1.0 in f32 at about 4× overload).
    let range = 1.0 - KNEE;
    let u = (a - KNEE) / range;
    let y = KNEE + range * (u / (1.0 + u));
    y.min(1.0).copysign(x)
}

/// Sums speakers at 48 kHz in a channel layout, converts to the device format, and soft-clips. Nothing allocates
/// after construction.
pub struct Mixer {
    channels: usize,
    device_rate_hz: u32,
    device_channels: usize,
    acc: Vec<f32>,
    last_len: usize,
    resampler: StreamResampler,
    out: Vec<f32>,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("channels", &self.channels)
            .field("device_rate_hz", &self.device_rate_hz)
            .field("device_channels", &self.device_channels)
            .finish_non_exhaustive()
    }
}

impl Mixer {
    /// A mixer summing in `layout` at 48 kHz and producing `device_channels` at `device_rate_hz`.
    pub fn new(layout: ChannelLayout, device_rate_hz: u32, device_channels: u16) -> Result<Self, CodecError> {
        validate_device(device_rate_hz, device_channels)?;
        let ch = layout.count();
        let dev_ch = usize::from(device_channels);
        let resampler = StreamResampler::new(SAMPLE_RATE_HZ, device_rate_hz, ch)?;
        let max_out = (MAX_MIX_SAMPLES + 480) * device_rate_hz as usize / SAMPLE_RATE_HZ as usize + 1024;
        Ok(Self {
            channels: ch,
            device_rate_hz,
            device_channels: dev_ch,
            acc: vec![0.0; MAX_MIX_SAMPLES * ch],
            last_len: 0,
            resampler,
            out: Vec::with_capacity(max_out * dev_ch),
        })
    }

    /// The last mix at 48 kHz in the mixer's layout, before soft clipping and device conversion: the far-end
    /// reference for [`CapturePipeline::push_echo_reference`](crate::CapturePipeline::push_echo_reference).
    pub fn last_mix(&self) -> &[f32] {
        &self.acc[..self.last_len]
    }

    /// The last mix in the device's rate and channels, soft-clipped: what [`mix`](Self::mix) returned.
    pub fn last_output(&self) -> &[f32] {
        &self.out
    }

    /// Channel count of the 48 kHz mix.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Delay the device-rate conversion adds, in device frames.
    pub fn output_delay(&self) -> usize {
        self.resampler.output_delay()
    }

    /// Takes `samples` (per channel, 48 kHz) from every speaker's output (silence where a speaker has less), sums,
    /// soft-clips and converts. Returns the device-format audio produced (interleaved); the resampler works in 10 ms
    /// blocks, so the length varies around `samples × device rate / 48 kHz`.
    pub fn mix<'a>(
        &mut self,
        speakers: impl IntoIterator<Item = &'a mut PlaybackPipeline>,
        samples: usize,
    ) -> Result<&[f32], CodecError> {
        if samples > MAX_MIX_SAMPLES {
            return Err(CodecError::BufferTooSmall { len: MAX_MIX_SAMPLES, needed: samples });
        }
        let ch = self.channels;
        self.last_len = samples * ch;
        let acc = &mut self.acc[..samples * ch];
        acc.fill(0.0);
        for speaker in speakers {
            speaker.read_add(acc, ch, samples);
        }
        self.out.clear();
        let (out, dev_ch) = (&mut self.out, self.device_channels);
        self.resampler.process(acc, |block| remix_into(block, ch, dev_ch, out))?;
        // Clip last, at the device rate: the resampler's filter can overshoot a signal that was already near ±1.
        for s in self.out.iter_mut() {
            *s = soft_clip(*s);
        }
        Ok(&self.out)
    }
}
