//! Delay statistics of the adaptive policy (NetEQ-like): each packet's delay relative to the fastest packet of the
//! last ~2 s, a decaying histogram of those delays with an incrementally tracked high quantile, and a short-term
//! peak that jumps up with a spike and decays back.
//!
//! Everything lives in fixed arrays: updating and reading never allocates.

use crate::config::Tuning;

/// Width of one histogram bin, µs.
const BIN_US: i64 = 2_000;
/// Number of histogram bins; the last one also holds every larger delay (> 1 s).
const BINS: usize = 512;
/// Width of one bucket of the sliding minimum: 2^18 µs ≈ 262 ms (8 buckets span ~2.1 s; a shift, not a division).
const MIN_BUCKET_SHIFT: u32 = 18;
/// Number of buckets of the sliding minimum.
const MIN_BUCKETS: usize = 8;
/// The histogram weights grow by `1 / forget` per packet; they are rescaled past this value.
const RESCALE_AT: f64 = 1e100;

#[derive(Clone, Debug)]
pub(crate) struct DelayEstimator {
    /// Per bucket of arrival time: (bucket index, smallest `arrival - media time` seen in it).
    min_buckets: [(i64, i64); MIN_BUCKETS],
    /// Cached minimum over the valid buckets.
    min_offset_us: i64,
    /// Decaying histogram of relative delays (weights scaled by `weight`).
    hist: [f64; BINS],
    /// Weight of the next sample; grows geometrically instead of decaying every bin.
    weight: f64,
    /// Sum of `hist`.
    total: f64,
    /// Fenwick tree over `hist` (1-based): prefix sums, hence the tail above any delay, in `log2(BINS)` steps.
    tree: [f64; BINS + 1],
    /// The target quantile.
    target: QuantileTracker,
    /// The target quantile of a lossless link.
    high: QuantileTracker,
    /// A higher quantile: how long a missing frame is worth waiting for.
    wait: QuantileTracker,
    /// The quantile the successor of a lost frame must beat for its in-band FEC to be there in time.
    fec: QuantileTracker,
    /// Short-term peak of relative delay, µs.
    peak_us: f64,
    /// Highest bin that ever held a sample (the tail sums stop there).
    top_bin: usize,
    /// Packets seen so far, up to `warmup`.
    seen: u32,
    /// While fewer than `warmup` packets were seen, the histogram's tail is not known yet: the largest relative
    /// delay seen so far stands in for it.
    warmup: u32,
    /// Largest relative delay seen so far while warming up, µs.
    max_us: i64,
    /// `Tuning::initial_delay_ms`, µs.
    initial_us: i64,
    /// `1 / forget`: the factor by which each new sample outweighs the previous one.
    growth: f64,
    peak_decay: f64,
}

impl DelayEstimator {
    pub(crate) fn new(tuning: &Tuning) -> Self {
        Self {
            min_buckets: [(i64::MIN, 0); MIN_BUCKETS],
            min_offset_us: 0,
            hist: [0.0; BINS],
            weight: 1.0,
            total: 0.0,
            tree: [0.0; BINS + 1],
            target: QuantileTracker::new(tuning.quantile),
            high: QuantileTracker::new(tuning.lossless_quantile),
            wait: QuantileTracker::new(tuning.wait_quantile),
            fec: QuantileTracker::new(tuning.fec_quantile),
            peak_us: 0.0,
            top_bin: 0,
            seen: 0,
            warmup: tuning.warmup_packets.clamp(0.0, 1e6) as u32,
            max_us: 0,
            initial_us: (tuning.initial_delay_ms.clamp(0.0, 10_000.0) * 1_000.0) as i64,
            growth: 1.0 / tuning.forget.clamp(0.9, 1.0),
            peak_decay: tuning.peak_decay.clamp(0.0, 1.0),
        }
    }

    /// Forgets the arrival-offset reference (after the sender's timestamps restarted); the histogram of network
    /// delays stays, since the network did not change.
    pub(crate) fn reset_offsets(&mut self) {
        self.min_buckets = [(i64::MIN, 0); MIN_BUCKETS];
    }

    /// `arrival - media time` of the fastest packet of the last ~2 s, µs. Zero before the first packet.
    pub(crate) fn min_offset_us(&self) -> i64 {
        self.min_offset_us
    }

    /// Records one packet that arrived at `arrival_us` carrying media time `media_us`.
    pub(crate) fn update(&mut self, arrival_us: i64, media_us: i64) {
        let offset = arrival_us.saturating_sub(media_us);
        let bucket = arrival_us >> MIN_BUCKET_SHIFT;
        let slot = (bucket & (MIN_BUCKETS as i64 - 1)) as usize;
        let entry = &mut self.min_buckets[slot];
        if entry.0 == bucket {
            // Same bucket as the last packets: the window did not slide, only this offset is new.
            entry.1 = entry.1.min(offset);
            self.min_offset_us = self.min_offset_us.min(offset);
        } else {
            *entry = (bucket, offset);
            let oldest = bucket.saturating_sub(MIN_BUCKETS as i64 - 1);
            let mut min = offset;
            for &(b, m) in &self.min_buckets {
                if b >= oldest && b <= bucket {
                    min = min.min(m);
                }
            }
            self.min_offset_us = min;
        }
        let min = self.min_offset_us;

        let rel_us = offset.saturating_sub(min).max(0);
        if self.seen < self.warmup {
            self.seen += 1;
            self.max_us = self.max_us.max(rel_us);
        }
        self.peak_us = (self.peak_us * self.peak_decay).max(rel_us as f64);
        self.add(rel_us);
    }

    fn add(&mut self, rel_us: i64) {
        let bin = usize::try_from(rel_us / BIN_US).unwrap_or(BINS - 1).min(BINS - 1);
        let w = self.weight;
        self.top_bin = self.top_bin.max(bin);
        self.hist[bin] += w;
        self.total += w;
        let mut i = bin + 1;
        while i <= BINS {
            self.tree[i] += w;
            i += i & i.wrapping_neg();
        }
        self.target.add(&self.hist, self.total, bin, w);
        self.wait.add(&self.hist, self.total, bin, w);
        self.high.add(&self.hist, self.total, bin, w);
        self.fec.add(&self.hist, self.total, bin, w);
        self.weight *= self.growth;
        if self.weight > RESCALE_AT {
            self.rescale();
        }
    }

    /// Divides every weight by the current sample weight (same distribution, smaller numbers), and recomputes the
    /// running sums exactly.
    fn rescale(&mut self) {
        let s = self.weight;
        let mut total = 0.0;
        for h in &mut self.hist {
            *h /= s;
            total += *h;
        }
        self.total = total;
        // Rebuild the Fenwick tree from the rescaled bins (linear-time construction).
        self.tree = [0.0; BINS + 1];
        for i in 1..=BINS {
            self.tree[i] += self.hist[i - 1];
            let parent = i + (i & i.wrapping_neg());
            if parent <= BINS {
                self.tree[parent] += self.tree[i];
            }
        }
        self.target.recompute(&self.hist);
        self.wait.recompute(&self.hist);
        self.high.recompute(&self.hist);
        self.fec.recompute(&self.hist);
        self.weight = 1.0;
    }

    /// The target quantile of relative delay (upper edge of its bin), µs.
    pub(crate) fn quantile_us(&self) -> i64 {
        self.target.upper_us(self.total)
    }

    /// The wait quantile of relative delay (lower edge of its bin: a link without jitter waits for nothing), µs.
    pub(crate) fn wait_quantile_us(&self) -> i64 {
        (self.wait.upper_us(self.total) - BIN_US).max(0)
    }

    /// The lossless-link target quantile of relative delay (upper edge of its bin), µs.
    pub(crate) fn high_quantile_us(&self) -> i64 {
        self.high.upper_us(self.total)
    }

    /// The FEC quantile of relative delay (upper edge of its bin), µs.
    pub(crate) fn fec_quantile_us(&self) -> i64 {
        self.fec.upper_us(self.total)
    }

    /// While warming up (the first `Tuning::warmup_packets`), the largest relative delay seen so far, raised
    /// toward `Tuning::initial_delay_ms` in proportion to it (up to three times it): a link that has shown jitter
    /// starts with room for its unseen tail, a link that has shown none (loopback, a LAN) starts at once. 0 after.
    pub(crate) fn warmup_floor_us(&self) -> i64 {
        if self.seen < self.warmup { self.max_us.max(self.initial_us.min(self.max_us.saturating_mul(3))) } else { 0 }
    }

    /// The short-term peak, µs.
    pub(crate) fn peak_us(&self) -> i64 {
        self.peak_us as i64
    }

    /// Fraction of the (decayed) packets whose relative delay was above `rel_us`: the chance that a packet arrives
    /// later than that. Counts the bin holding `rel_us` in proportion to the part of it above `rel_us`. A Fenwick
    /// prefix sum: `log2(BINS)` steps, no allocation.
    pub(crate) fn survival(&self, rel_us: i64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        if rel_us < 0 {
            return 1.0;
        }
        let bin = usize::try_from(rel_us / BIN_US).unwrap_or(BINS);
        if bin > self.top_bin {
            return 0.0;
        }
        let mut below = 0.0;
        let mut i = bin + 1;
        while i > 0 {
            below += self.tree[i];
            i &= i - 1;
        }
        let part = 1.0 - (rel_us % BIN_US) as f64 / BIN_US as f64;
        let above = (self.total - below).max(0.0);
        ((above + part * self.hist[bin]) / self.total).clamp(0.0, 1.0)
    }
}

/// Tracks one quantile of the histogram incrementally: the bin holding it and the mass strictly above that bin.
#[derive(Clone, Copy, Debug)]
struct QuantileTracker {
    quantile: f64,
    bin: usize,
    above: f64,
}

impl QuantileTracker {
    fn new(quantile: f64) -> Self {
        Self { quantile: quantile.clamp(0.5, 0.9999), bin: 0, above: 0.0 }
    }

    /// After `w` was added to `hist[bin]` (and `total`), moves the tracked bin to the quantile again.
    fn add(&mut self, hist: &[f64; BINS], total: f64, bin: usize, w: f64) {
        if total == w {
            // First sample: the quantile is its bin.
            self.bin = bin;
            self.above = 0.0;
        } else if bin > self.bin {
            self.above += w;
        }
        let tail = (1.0 - self.quantile) * total;
        while self.above > tail && self.bin + 1 < BINS {
            self.bin += 1;
            self.above -= hist[self.bin];
        }
        while self.bin > 0 && self.above + hist[self.bin] <= tail {
            self.above += hist[self.bin];
            self.bin -= 1;
        }
    }

    fn recompute(&mut self, hist: &[f64; BINS]) {
        self.above = hist[self.bin + 1..].iter().sum();
    }

    fn upper_us(&self, total: f64) -> i64 {
        if total <= 0.0 { 0 } else { (self.bin as i64 + 1) * BIN_US }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_tracks_distribution() {
        let mut e = DelayEstimator::new(&Tuning { quantile: 0.9, forget: 1.0, ..Tuning::default() });
        // Delays 0..100 ms uniformly, media time advancing 20 ms per packet.
        for i in 0..1000i64 {
            let media = i * 20_000;
            let delay = (i * 37 % 100) * 1_000;
            e.update(media + delay + 40_000, media);
        }
        let q = e.quantile_us();
        assert!((86_000..=96_000).contains(&q), "q90 = {q}");
    }

    #[test]
    fn survival_is_the_tail_fraction() {
        let mut e = DelayEstimator::new(&Tuning { forget: 1.0, ..Tuning::default() });
        // Delays 0..100 ms uniformly.
        for i in 0..1000i64 {
            let media = i * 20_000;
            e.update(media + (i * 37 % 100) * 1_000 + 40_000, media);
        }
        assert!((e.survival(-1) - 1.0).abs() < 1e-9);
        assert!((e.survival(50_000) - 0.5).abs() < 0.02, "{}", e.survival(50_000));
        assert!(e.survival(90_000) < 0.11 && e.survival(90_000) > 0.08, "{}", e.survival(90_000));
        assert_eq!(e.survival(200_000), 0.0);
        assert_eq!(e.survival(i64::MAX), 0.0);
    }

    #[test]
    fn survival_survives_rescaling() {
        // Enough samples that the growing weights are rescaled at least once; the tail sums must stay exact.
        let mut e = DelayEstimator::new(&Tuning::default());
        for i in 0..400_000i64 {
            let media = i * 20_000;
            e.update(media + (i % 10) * 10_000, media);
        }
        assert!(e.weight < RESCALE_AT);
        let s = e.survival(45_000);
        assert!((s - 0.5).abs() < 0.01, "{s}");
        let brute: f64 = e.hist[23..].iter().sum::<f64>() / e.total + 0.5 * e.hist[22] / e.total;
        assert!((s - brute).abs() < 1e-9, "{s} vs {brute}");
    }

    #[test]
    fn forgetting_moves_quantile_down() {
        let mut e = DelayEstimator::new(&Tuning::default());
        for i in 0..500i64 {
            let media = i * 20_000;
            e.update(media + (i % 2) * 100_000, media);
        }
        let high = e.quantile_us();
        for i in 500..20_000i64 {
            let media = i * 20_000;
            e.update(media + (i % 2) * 1_000, media);
        }
        assert!(e.quantile_us() < high / 10, "{} vs {high}", e.quantile_us());
    }
}
