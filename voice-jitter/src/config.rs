//! Construction-time settings: frame duration, capacity, delay bounds and the delay policy.

use std::time::Duration;

use crate::error::ConfigError;

/// How the buffer chooses its target delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// A fixed watermark buffer: start playing once the first frame is `delay` behind the fastest packet
    /// (relative to the fastest packet of the last ~2 s), recover (FEC) or conceal a missing frame at its slot,
    /// never wait for a late packet, never time-stretch; frames that fall more than a frame behind the watermark
    /// are dropped, so the delay stays at the watermark.
    Fixed {
        /// The watermark (for example 40 ms).
        delay: Duration,
    },
    /// The default: the target follows measured delay statistics (a decaying histogram of each packet's delay
    /// relative to the fastest packet of the last ~2 s, a high quantile of it that is higher on a lossless link,
    /// room for FEC on a lossy one, and a short-term peak estimate), bounded by [`Config::min_delay`] and
    /// [`Config::max_delay`]; the depth follows the target through time-stretch requests (a preemptive expand when
    /// a frame due soon is late, gentle shrinks, the start of a talkspurt aligned in the silence before it); a
    /// missing frame is decoded from its successor's FEC when that is buffered, and concealed only once given up.
    /// See the [crate docs](crate).
    #[default]
    Adaptive,
}

/// Settings of a [`JitterBuffer`](crate::JitterBuffer). Build one with [`Config::default`] and the `with_*`
/// methods.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Duration of one packet and of one playout slot: 10, 20, 40 or 60 ms. Default 20.
    pub frame_ms: u32,
    /// Most packets buffered at once. Default 128 (2.56 s of 20 ms frames).
    pub capacity: usize,
    /// The delay policy. Default [`Policy::Adaptive`].
    pub policy: Policy,
    /// Lower bound of the adaptive target delay. Default 0.
    pub min_delay: Duration,
    /// Upper bound of the adaptive target delay and of the time the buffer waits for a late packet; audio that
    /// would be played later than this is dropped. Default 1 s.
    pub max_delay: Duration,
    /// Internal tuning knobs of the adaptive policy (for experiments with the replay tool; not a stable API).
    #[doc(hidden)]
    pub tuning: Tuning,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            frame_ms: 20,
            capacity: 128,
            policy: Policy::Adaptive,
            min_delay: Duration::ZERO,
            max_delay: Duration::from_millis(1000),
            tuning: Tuning::default(),
        }
    }
}

impl Config {
    /// Sets the frame duration (10, 20, 40 or 60 ms).
    #[must_use]
    pub const fn with_frame_ms(mut self, frame_ms: u32) -> Self {
        self.frame_ms = frame_ms;
        self
    }

    /// Sets the capacity in packets.
    #[must_use]
    pub const fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the delay policy.
    #[must_use]
    pub const fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the bounds of the target delay.
    #[must_use]
    pub const fn with_delay_bounds(mut self, min_delay: Duration, max_delay: Duration) -> Self {
        self.min_delay = min_delay;
        self.max_delay = max_delay;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.frame_ms, 10 | 20 | 40 | 60) {
            return Err(ConfigError::FrameDuration(self.frame_ms));
        }
        if self.capacity < 2 || self.capacity > 1 << 16 {
            return Err(ConfigError::Capacity(self.capacity));
        }
        let fixed = match self.policy {
            Policy::Fixed { delay } => delay,
            Policy::Adaptive => Duration::ZERO,
        };
        let limit = Duration::from_secs(10);
        if self.min_delay > self.max_delay || self.max_delay > limit || fixed > limit {
            return Err(ConfigError::DelayBounds {
                min_ms: self.min_delay.as_millis(),
                max_ms: self.max_delay.as_millis(),
            });
        }
        Ok(())
    }
}

/// Knobs of the adaptive policy. Defaults are the tuned values; the replay tool can override them to explore.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tuning {
    /// Quantile of the long-term delay histogram used as the target on a lossy link (loss rate `loss_ref` or more).
    pub quantile: f64,
    /// Quantile used as the target on a lossless link; in between, the target moves linearly with the loss rate.
    pub lossless_quantile: f64,
    /// The lossless quantile is used up to this multiple of the (lossy) `quantile`: beyond, the tail is heavy or
    /// holds a delay spike, and waiting for it costs more delay than it saves.
    pub high_cap: f64,
    /// Loss rate (fraction of frames lost in the network) from which the target is the `quantile`.
    pub loss_ref: f64,
    /// A higher quantile: a missing frame is waited for at least until playout reaches it.
    pub wait_quantile: f64,
    /// For this many packets after the first, the target is at least the largest delay seen, raised toward
    /// `initial_delay_ms` in proportion to it (at most three times it): the histogram's tail is not known yet, and a
    /// link that showed no jitter at all (loopback, a LAN) is not made to wait for one.
    pub warmup_packets: f64,
    /// The target while warming up on a link that has shown jitter (see `warmup_packets`), ms.
    pub initial_delay_ms: f64,
    /// Per-packet forgetting factor of the histogram.
    pub forget: f64,
    /// Per-packet decay factor of the short-term peak estimate.
    pub peak_decay: f64,
    /// Weight of the short-term peak in the target (0 = ignore, 1 = target at least the peak).
    pub peak_weight: f64,
    /// Margin added to the statistics, in ms.
    pub margin_ms: f64,
    /// How long past the target to wait for a missing frame whose successor is buffered (FEC can recover it), ms.
    pub wait_fec_ms: f64,
    /// How long past the target to wait for a missing frame when only later packets are buffered, ms.
    pub wait_gap_ms: f64,
    /// With later frames buffered but not the successor, keep waiting for a missing frame only while the chance
    /// that it arrives within the next slot is at least this.
    pub wait_gap_chance: f64,
    /// How long past the target to wait when nothing is buffered (a delay spike), ms.
    pub wait_empty_ms: f64,
    /// Largest shrink per slot, as a fraction of the frame.
    pub max_shrink: f64,
    /// Largest expand per slot, as a fraction of the frame.
    pub max_expand: f64,
    /// No shrink starts while the depth is within this many ms above the target (once started, it goes down to the
    /// target).
    pub deadband_ms: f64,
    /// When giving up a frame whose successor is buffered after waiting for it, recover it with FEC (1) rather
    /// than skip it (0) even though playout is behind.
    pub fec_after_wait: f64,
    /// Quantile of the delay the successor of a lost frame must beat for its FEC to be usable at the lost frame's
    /// slot: on a lossy link the target is at least this quantile plus one frame.
    pub fec_quantile: f64,
    /// Rate of FEC chances per frame (frames recovered by FEC, or concealed while the successor then played) above
    /// which the target makes room for FEC; it stops below 3/4 of it.
    pub fec_on_rate: f64,
    /// Preemptive expand: when the next frame has not arrived, the slot is expanded if the chance that it arrives
    /// after its own slot (given that it has not arrived yet) is at least this.
    pub pre_expand_risk: f64,
    /// Preemptive expand looks at the first missing frame up to this many frames ahead.
    pub pre_expand_ahead: f64,
    /// Largest preemptive expand per slot, as a fraction of the frame.
    pub max_pre_expand: f64,
    /// Largest shrink per slot while the depth is less than `fast_shrink_ms` above the target, as a fraction of
    /// the frame (`max_shrink` applies beyond).
    pub gentle_shrink: f64,
    /// Depth above the target beyond which shrinking is fast (`max_shrink`), ms.
    pub fast_shrink_ms: f64,
    /// Per-frame smoothing of the loss and FEC-chance rates.
    pub rate_alpha: f64,
    /// Align the start of a talkspurt on the target by stretching the silence before it (1) or not (0).
    pub align_start: f64,
    /// Length of a silence slot while nothing is buffered (before a stream, between talkspurts), as a fraction of
    /// the frame: the next talkspurt's first packet is then looked at within this much of its arrival, not up to a
    /// whole frame later (with a caller that polls when each slot has played, as a driver draining its audio does).
    pub idle_slot: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            quantile: 0.98,
            lossless_quantile: 0.9995,
            loss_ref: 0.01,
            high_cap: 1.5,
            wait_quantile: 0.99,
            warmup_packets: 100.0,
            initial_delay_ms: 60.0,
            forget: 0.9993,
            peak_decay: 0.95,
            peak_weight: 0.6,
            margin_ms: 2.0,
            wait_fec_ms: 0.0,
            wait_gap_ms: 40.0,
            wait_gap_chance: 0.5,
            wait_empty_ms: 500.0,
            max_shrink: 0.5,
            max_expand: 0.25,
            deadband_ms: 4.0,
            fec_after_wait: 1.0,
            fec_quantile: 0.95,
            fec_on_rate: 0.008,
            pre_expand_risk: 0.1,
            pre_expand_ahead: 3.0,
            max_pre_expand: 0.5,
            gentle_shrink: 0.1,
            fast_shrink_ms: 40.0,
            rate_alpha: 0.002,
            align_start: 1.0,
            idle_slot: 0.25,
        }
    }
}
