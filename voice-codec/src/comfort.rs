//! Receiver-side comfort noise: while a speaker is silent (talkspurt ended, stream stalled), play low-level noise
//! that matches the background the speaker last sent, instead of digital silence.
//!
//! The model is learned from decoded audio only: every 5 ms block's energy feeds a noise-floor tracker (minimum
//! statistics: the quietest block of the last 1.2 s); blocks within 3 dB of the floor and 15 dB below the recent
//! peak count as background and update a smoothed level and a smoothed, normalized autocorrelation. Generation is
//! white noise through the all-pole filter that Levinson-Durbin
//! derives from that autocorrelation (the background's spectral envelope), scaled to the background level (capped
//! at −40 dBFS) and faded in. Nothing is generated before a background block was seen, so a speaker that never sent
//! audio stays digitally silent. Nothing allocates.

/// LPC order of the spectral model.
const ORDER: usize = 10;
/// Analysis block, samples per channel (5 ms).
const BLOCK: usize = 240;
/// The noise floor is the quietest block of the last `FLOOR_SPANS` spans of `FLOOR_SPAN` blocks (minimum
/// statistics over 1.2 s): it falls at once and rises within 1.2 s when the background gets louder, or when the
/// quiet blocks it held (a decoder's first output, a pause in a quieter room) are that old.
const FLOOR_SPAN: u32 = 30;
/// Spans the floor looks back over (8 × 150 ms).
const FLOOR_SPANS: usize = 8;
/// A block within this energy ratio of the floor (3 dB) counts as background ...
const BACKGROUND_RATIO: f32 = 2.0;
/// ... if it is also this far below the loudest recent block (15 dB), so a speaker without pauses has no background.
const BELOW_PEAK: f32 = 0.03;
/// The peak tracker decays by this factor per block (about −9 dB/s).
const PEAK_DECAY: f32 = 0.99;
/// Smoothing weight of a new background block in the model.
const SMOOTH: f32 = 0.15;
/// Comfort noise is never louder than this mean square (RMS 0.01, −40 dBFS).
const MAX_ENERGY: f32 = 1e-4;
/// Below this mean square (−90 dBFS) the background is digital silence: no comfort noise.
const MIN_ENERGY: f32 = 1e-9;
/// Fade-in of the comfort noise, samples (30 ms).
const FADE_IN: f32 = 1_440.0;

/// Background model and noise generator for one speaker.
#[derive(Debug)]
pub(crate) struct ComfortNoise {
    floor: f32,
    /// Quietest block energy of each span (a ring; `span` is the one being filled, `span_blocks` its blocks).
    spans: [f32; FLOOR_SPANS],
    span: usize,
    span_blocks: u32,
    peak: f32,
    level: f32,
    acf: [f32; ORDER + 1],
    have_model: bool,
    lpc: [f32; ORDER],
    scale: f32,
    hist: [f32; ORDER],
    rng: u32,
    gain: f32,
}

impl ComfortNoise {
    pub(crate) fn new() -> Self {
        Self {
            floor: f32::INFINITY,
            spans: [f32::INFINITY; FLOOR_SPANS],
            span: 0,
            span_blocks: 0,
            peak: 0.0,
            level: 0.0,
            acf: [0.0; ORDER + 1],
            have_model: false,
            lpc: [0.0; ORDER],
            scale: 0.0,
            hist: [0.0; ORDER],
            rng: 0x2545_f491,
            gain: 0.0,
        }
    }

    /// Whether a background was learned (comfort noise would be audible).
    pub(crate) fn active(&self) -> bool {
        self.have_model && self.level > MIN_ENERGY
    }

    /// Learns from `frames` frames of decoded audio (interleaved, `ch` channels). Also ends a running fade-in, so the
    /// next silence fades the noise in again.
    pub(crate) fn observe(&mut self, audio: &[f32], ch: usize, frames: usize) {
        self.gain = 0.0;
        let mut mono = [0.0f32; BLOCK];
        for block in audio[..frames * ch].chunks_exact(BLOCK * ch) {
            for (m, f) in mono.iter_mut().zip(block.chunks_exact(ch)) {
                *m = f.iter().sum::<f32>() / ch as f32;
            }
            let energy = mono.iter().map(|x| x * x).sum::<f32>() / BLOCK as f32;
            if !energy.is_finite() {
                continue;
            }
            self.track_floor(energy);
            self.peak = (self.peak * PEAK_DECAY).max(energy);
            if energy > self.floor * BACKGROUND_RATIO || energy > self.peak * BELOW_PEAK {
                continue;
            }
            let mut acf = [0.0f32; ORDER + 1];
            for (lag, a) in acf.iter_mut().enumerate() {
                *a = mono[lag..].iter().zip(&mono).map(|(x, y)| x * y).sum();
            }
            if acf[0] > 0.0 {
                let norm = acf[0];
                for a in &mut acf {
                    *a /= norm;
                }
            } else {
                acf = [0.0; ORDER + 1];
                acf[0] = 1.0;
            }
            if self.have_model {
                self.level += SMOOTH * (energy - self.level);
                for (s, a) in self.acf.iter_mut().zip(acf) {
                    *s += SMOOTH * (a - *s);
                }
            } else {
                self.level = energy;
                self.acf = acf;
                self.have_model = true;
            }
        }
    }

    /// Minimum statistics: the floor is the quietest block of the last `FLOOR_SPANS` spans.
    fn track_floor(&mut self, energy: f32) {
        self.spans[self.span] = self.spans[self.span].min(energy);
        self.span_blocks += 1;
        if self.span_blocks == FLOOR_SPAN {
            self.span = (self.span + 1) % FLOOR_SPANS;
            self.spans[self.span] = f32::INFINITY;
            self.span_blocks = 0;
        }
        self.floor = self.spans.iter().copied().fold(energy, f32::min);
    }

    /// Prepares the filter for a run of comfort noise (call when a silence starts).
    pub(crate) fn start(&mut self) {
        self.gain = 0.0;
        self.hist = [0.0; ORDER];
        // Levinson-Durbin on the smoothed autocorrelation, with a little white-noise correction for stability.
        let mut r = self.acf;
        r[0] *= 1.0001;
        let mut a = [0.0f32; ORDER];
        let mut err = r[0];
        for i in 0..ORDER {
            if err <= 1e-9 {
                break;
            }
            let mut k = r[i + 1];
            for j in 0..i {
                k -= a[j] * r[i - j];
            }
            k /= err;
            if !k.is_finite() || k.abs() >= 1.0 {
                break;
            }
            let prev = a;
            a[i] = k;
            for j in 0..i {
                a[j] = prev[j] - k * prev[i - 1 - j];
            }
            err *= 1.0 - k * k;
        }
        self.lpc = a;
        // Unit-variance excitation through 1/A(z) has about r[0] / err times the variance.
        let energy = self.level.min(MAX_ENERGY);
        self.scale = if err > 0.0 && r[0] > 0.0 { (energy * err / r[0]).sqrt() } else { 0.0 };
    }

    /// Adds `frames` frames of comfort noise to `out` (interleaved, `ch` channels), fading in.
    pub(crate) fn add_to(&mut self, out: &mut [f32], ch: usize, frames: usize) {
        if !self.active() {
            return;
        }
        for f in out[..frames * ch].chunks_exact_mut(ch) {
            let y = self.next_sample();
            self.gain = (self.gain + 1.0 / FADE_IN).min(1.0);
            let g = 0.5 - 0.5 * (std::f32::consts::PI * self.gain).cos();
            for s in f {
                *s += g * y;
            }
        }
    }

    /// Adds the noise's continuation to the start of `out`, fading out over `len` frames (the cross-fade into
    /// decoded audio after a silence). Ends the run.
    pub(crate) fn fade_out_into(&mut self, out: &mut [f32], ch: usize, len: usize) {
        if self.active() && self.gain > 0.0 {
            let start = 0.5 - 0.5 * (std::f32::consts::PI * self.gain).cos();
            let len = len.min(out.len() / ch.max(1));
            for (i, f) in out[..len * ch].chunks_exact_mut(ch).enumerate() {
                let y = self.next_sample();
                let w = 0.5 + 0.5 * (std::f32::consts::PI * (i as f32 + 0.5) / len as f32).cos();
                for s in f {
                    *s += start * w * y;
                }
            }
        }
        self.gain = 0.0;
    }

    fn next_sample(&mut self) -> f32 {
        // xorshift32: uniform in [-1, 1), times √3 for unit variance.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let w = (self.rng as f32 / u32::MAX as f32 * 2.0 - 1.0) * 1.732_050_8 * self.scale;
        let mut y = w;
        for (a, h) in self.lpc.iter().zip(&self.hist) {
            y += a * h;
        }
        if !y.is_finite() {
            y = 0.0;
            self.hist = [0.0; ORDER];
        }
        self.hist.copy_within(..ORDER - 1, 1);
        self.hist[0] = y;
        y
    }
}
