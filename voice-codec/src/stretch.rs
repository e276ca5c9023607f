//! Time-stretch of one playout slot by pitch-period overlap-add (a small WSOLA).
//!
//! Shrinking removes one lag `p` of signal at position `s` by cross-fading `x[s..s+p]` into `x[s+p..s+2p]`;
//! expanding inserts `p` samples after `x[s+p]` that cross-fade from `x[s+p..]` back into `x[s..]`. Both ends of the
//! edit join the original signal sample-exactly, so there is no click. The edit goes where the slot has the least
//! energy; in silence (below about −50 dBFS) any amount can be applied, in voiced sound the lag is the best pitch
//! period no longer than the request; for loud, non-periodic sound nothing is applied. The caller is told how much
//! was applied.

/// Below this RMS a region counts as silence (about −50 dBFS).
const SILENCE_RMS: f32 = 0.003;
/// Below this RMS a region counts as a pause between words (about −40 dBFS): where a shrink may go.
const PAUSE_RMS: f32 = 0.01;
/// Shortest pitch period searched: 96 samples, 500 Hz.
const MIN_LAG: usize = 96;
/// Longest pitch period searched: 720 samples, ~67 Hz.
const MAX_LAG: usize = 720;
/// Normalized correlation a lag needs to count as periodic.
const MIN_CORRELATION: f32 = 0.6;
/// Energy search step, samples.
const STEP: usize = 48;

/// Scratch buffers for the stretch; sized once, so stretching allocates nothing.
#[derive(Debug)]
pub(crate) struct Stretcher {
    mono: Vec<f32>,
    insert: Vec<f32>,
    corr: Vec<f32>,
}

impl Stretcher {
    pub(crate) fn new(max_frames: usize, channels: usize) -> Self {
        Self { mono: vec![0.0; max_frames], insert: vec![0.0; MAX_LAG * channels], corr: vec![0.0; MAX_LAG + 1] }
    }

    /// Finds where (`s`) and by how much (`p`) to edit `frames` frames for a request of `want` samples.
    fn plan(&mut self, buf: &[f32], ch: usize, frames: usize, want: usize, pause_only: bool) -> Option<(usize, usize)> {
        let max_lag = want.min(frames / 2).min(MAX_LAG);
        if max_lag == 0 || frames > self.mono.len() {
            return None;
        }
        let mono = &mut self.mono[..frames];
        for (m, f) in mono.iter_mut().zip(buf.chunks_exact(ch)) {
            *m = f.iter().sum::<f32>() / ch as f32;
        }
        // Lowest-energy window of 2 * max_lag.
        let win = 2 * max_lag;
        let mut best_s = 0;
        let mut best_e = f32::INFINITY;
        let mut s = 0;
        while s + win <= frames {
            let e: f32 = mono[s..s + win].iter().map(|x| x * x).sum();
            if e < best_e {
                best_e = e;
                best_s = s;
            }
            s += STEP;
        }
        let rms = (best_e / win as f32).sqrt();
        if rms < SILENCE_RMS {
            return Some((best_s, max_lag));
        }
        if pause_only && rms >= PAUSE_RMS {
            return None;
        }
        if max_lag < MIN_LAG {
            return None;
        }
        let s = best_s;
        let corr = &mut self.corr[..=max_lag];
        let mut best = (f32::NEG_INFINITY, 0);
        for lag in MIN_LAG..=max_lag {
            corr[lag] = correlation(&mono[s..s + lag], &mono[s + lag..s + 2 * lag]);
            if corr[lag] > best.0 {
                best = (corr[lag], lag);
            }
        }
        if best.0 < MIN_CORRELATION {
            return None;
        }
        // Prefer the longest lag that is a correlation peak (a pitch multiple) nearly as good as the best, to apply
        // as much as asked.
        for lag in (best.1 + 1..max_lag).rev() {
            let peak = corr[lag] >= corr[lag - 1] && corr[lag] >= corr[lag + 1];
            if peak && corr[lag] >= 0.9 * best.0 {
                return Some((s, lag));
            }
        }
        Some((s, best.1))
    }

    /// Removes up to `want` frames from the first `frames` frames of `buf` (interleaved, `ch` channels), only in a
    /// pause between words (a window below about −40 dBFS) when `pause_only`. Returns the number removed.
    pub(crate) fn shrink(&mut self, buf: &mut [f32], ch: usize, frames: usize, want: usize, pause_only: bool) -> usize {
        let Some((s, p)) = self.plan(buf, ch, frames, want, pause_only) else {
            return 0;
        };
        for i in 0..p {
            let w = fade(i, p);
            for c in 0..ch {
                let a = buf[(s + i) * ch + c];
                let b = buf[(s + p + i) * ch + c];
                buf[(s + i) * ch + c] = (1.0 - w) * a + w * b;
            }
        }
        buf.copy_within((s + 2 * p) * ch..frames * ch, (s + p) * ch);
        p
    }

    /// Adds up to `want` frames to the first `frames` frames of `buf`, which must have room for `frames + want`
    /// frames. Returns the number added.
    pub(crate) fn expand(&mut self, buf: &mut [f32], ch: usize, frames: usize, want: usize) -> usize {
        let room = (buf.len() / ch).saturating_sub(frames);
        let Some((s, p)) = self.plan(buf, ch, frames, want.min(room), false) else {
            return 0;
        };
        let insert = &mut self.insert[..p * ch];
        for i in 0..p {
            let w = fade(i, p);
            for c in 0..ch {
                let a = buf[(s + p + i) * ch + c];
                let b = buf[(s + i) * ch + c];
                insert[i * ch + c] = (1.0 - w) * a + w * b;
            }
        }
        buf.copy_within((s + p) * ch..frames * ch, (s + 2 * p) * ch);
        buf[(s + p) * ch..(s + 2 * p) * ch].copy_from_slice(insert);
        p
    }
}

/// Raised-cosine fade-in weight for sample `i` of `n`.
fn fade(i: usize, n: usize) -> f32 {
    let x = (i as f32 + 0.5) / n as f32;
    0.5 - 0.5 * (std::f32::consts::PI * x).cos()
}

fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= f32::EPSILON || bb <= f32::EPSILON { 0.0 } else { ab / (aa * bb).sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, period: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|i| amp * (2.0 * std::f32::consts::PI * i as f32 / period as f32).sin()).collect()
    }

    fn max_step(x: &[f32]) -> f32 {
        x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn shrink_periodic_removes_a_period_without_a_jump() {
        let mut st = Stretcher::new(2000, 1);
        let mut buf = tone(960, 160, 0.5);
        let before = max_step(&buf);
        let removed = st.shrink(&mut buf, 1, 960, 400, false);
        assert!((160..=400).contains(&removed), "removed {removed}");
        assert_eq!(removed % 160, 0);
        assert!(max_step(&buf[..960 - removed]) <= before * 1.05);
    }

    #[test]
    fn expand_periodic_adds_without_a_jump() {
        let mut st = Stretcher::new(2000, 1);
        let mut buf = tone(960, 160, 0.5);
        buf.resize(2000, 0.0);
        let before = max_step(&buf[..960]);
        let added = st.expand(&mut buf, 1, 960, 320);
        assert!((160..=320).contains(&added), "added {added}");
        assert!(max_step(&buf[..960 + added]) <= before * 1.05);
    }

    #[test]
    fn silence_takes_any_amount_and_noise_takes_none() {
        let mut st = Stretcher::new(2000, 1);
        let mut buf = vec![0.0; 960];
        assert_eq!(st.shrink(&mut buf, 1, 960, 37, false), 37);
        // Loud deterministic noise: not periodic, not silent.
        let mut x = 12345u32;
        let mut noise: Vec<f32> = (0..960)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        assert_eq!(st.shrink(&mut noise, 1, 960, 200, false), 0);
    }

    #[test]
    fn pause_only_shrink_leaves_words_alone_and_uses_pauses() {
        let mut st = Stretcher::new(2_000, 1);
        // A voiced slot (periodic, loud): shrinkable, but not in pause-only mode.
        let voiced: Vec<f32> = (0..960).map(|i| 0.3 * (2.0 * std::f32::consts::PI * i as f32 / 240.0).sin()).collect();
        let mut buf = voiced.clone();
        buf.resize(2_000, 0.0);
        assert_eq!(st.shrink(&mut buf, 1, 960, 240, true), 0, "no shrink inside a word");
        assert!(st.shrink(&mut buf, 1, 960, 240, false) > 0, "the same slot can be shrunk when it is urgent");
        // A word ending in a pause: the pause takes the shrink.
        let mut buf: Vec<f32> = voiced[..480].to_vec();
        buf.extend(std::iter::repeat_n(0.001, 480));
        buf.resize(2_000, 0.0);
        assert_eq!(st.shrink(&mut buf, 1, 960, 200, true), 200);
    }
}
