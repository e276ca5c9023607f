//! Time-stretch requests: how a played slot moves the depth toward the target (gently inside a talkspurt, fast
//! only to drain a backlog), the preemptive expand that gives a late frame time to arrive, and the stretch of the
//! silence before a talkspurt that starts it exactly at the target.

use voice_proto::Timestamp;

use crate::config::Policy;
use crate::decision::Stretch;

use super::JitterBuffer;

/// How the slot before a talkspurt's first frame is spent.
pub(super) enum Start {
    /// Start playing the first frame in this slot.
    Now,
    /// Play this many samples of silence (at most a frame), so that the next slot comes closer to the target delay.
    Wait { samples: u32 },
}

impl<P> JitterBuffer<P> {
    fn to_samples(&self, us: i64) -> u32 {
        u32::try_from(us.max(0).saturating_mul(i64::from(Timestamp::RATE_HZ)) / 1_000_000).unwrap_or(u32::MAX)
    }

    fn frac_us(&self, fraction: f64) -> i64 {
        (self.frame_us as f64 * fraction.clamp(0.0, 1.0)) as i64
    }

    /// A shrink request of `us` (counted), or none if it rounds to nothing.
    fn shrink(&mut self, us: i64) -> Stretch {
        let samples = self.to_samples(us);
        if samples == 0 {
            return Stretch::None;
        }
        self.stats.shrink_ops += 1;
        self.stats.shrink_samples += u64::from(samples);
        Stretch::Shrink { samples }
    }

    /// An expand request of `us` (counted), or none if it rounds to nothing.
    fn expand(&mut self, us: i64) -> Stretch {
        let samples = self.to_samples(us);
        if samples == 0 {
            return Stretch::None;
        }
        self.stats.expand_ops += 1;
        self.stats.expand_samples += u64::from(samples);
        Stretch::Expand { samples }
    }

    /// The chance that frame `ahead` frames after the one playing at delay `delay_us`, not arrived yet, arrives
    /// after its own slot if the slots until then are lengthened by `extra_us`: (1 − p)·S(d + extra) /
    /// ((1 − p)·S(d − ahead·frame) + p), with S the delay survival function and p the loss rate (it may be lost).
    fn late_risk(&self, delay_us: i64, ahead: u32, extra_us: i64) -> f64 {
        let p = self.loss_rate.clamp(0.0, 1.0);
        let age_us = delay_us.saturating_sub(self.frame_us.saturating_mul(i64::from(ahead)));
        let waiting = (1.0 - p) * self.estimator.survival(age_us) + p;
        if waiting <= 0.0 {
            return 0.0;
        }
        (1.0 - p) * self.estimator.survival(delay_us.saturating_add(extra_us)) / waiting
    }

    /// The chance that a missing frame whose slot is now, at delay `delay_us`, arrives within the next slot:
    /// (1 − p)·(S(d) − S(d + frame)) / ((1 − p)·S(d) + p).
    pub(super) fn arrival_chance(&self, delay_us: i64) -> f64 {
        let p = self.loss_rate.clamp(0.0, 1.0);
        let missing = self.estimator.survival(delay_us);
        let waiting = (1.0 - p) * missing + p;
        if waiting <= 0.0 {
            return 0.0;
        }
        let later = self.estimator.survival(delay_us.saturating_add(self.frame_us));
        (1.0 - p) * (missing - later).max(0.0) / waiting
    }

    /// Stretch request for a slot that plays a frame at delay `delay_us` against target `target_us`; `missing` is
    /// how many frames after this one the first frame not buffered is (1: the next), `last` whether this frame
    /// ends the talkspurt.
    pub(super) fn play_stretch(&mut self, delay_us: i64, target_us: i64, missing: u32, last: bool) -> Stretch {
        if !matches!(self.config.policy, Policy::Adaptive) || last {
            return Stretch::None;
        }
        let t = self.tuning;
        let error = delay_us.saturating_sub(target_us);
        // Below the target there is no dead band: the target already is the least safe depth.
        let mut expand_us = if error < 0 { error.saturating_neg().min(self.frac_us(t.max_expand)) } else { 0 };
        // Shrinking starts beyond the dead band and, once started, goes on down to the target (hysteresis: no
        // endless small corrections, no depth parked at the edge of the band).
        let band = (t.deadband_ms * 1_000.0) as i64;
        if error <= 0 {
            self.shrinking = false;
        } else if error > band {
            self.shrinking = true;
        }
        if self.shrinking {
            // Inside a talkspurt the depth comes down gently (the audio side hides small edits in quiet or periodic
            // sound); only a backlog far above the target (after a delay spike) is drained fast. Large reductions
            // otherwise wait for the next talkspurt, which starts at the target.
            let fast = error > (t.fast_shrink_ms * 1_000.0) as i64;
            let shrink_us = error.min(self.frac_us(if fast { t.max_shrink } else { t.gentle_shrink }));
            // Shrink only if the first frame not here yet stays very likely in time.
            if self.late_risk(delay_us, missing, -shrink_us) < t.pre_expand_risk / 2.0 {
                return self.shrink(shrink_us);
            }
        }
        if missing <= t.pre_expand_ahead as u32 {
            // A frame due soon is not here. Expand this slot if it is likely only late and would otherwise miss
            // its slot: stretching the audio we have beats concealing that frame's slot.
            let pre_us = self.frac_us(t.max_pre_expand);
            if pre_us > expand_us
                && delay_us < crate::buffer::micros(self.config.max_delay)
                && self.late_risk(delay_us, missing, 0) >= t.pre_expand_risk
            {
                expand_us = pre_us;
            }
        }
        self.expand(expand_us)
    }

    /// Before a talkspurt: whether to start on the first buffered frame, which is at delay `delay_us`, now — or to
    /// play a slot of silence first, as long as it takes for the next slot to start exactly at `target_us` (any
    /// length is inaudible in silence; at most a frame, then the question comes again).
    pub(super) fn start_or_wait(&mut self, delay_us: i64, target_us: i64) -> Start {
        let frame = self.frame_samples;
        match self.config.policy {
            // The watermark: the first frame waits until it is `delay` older than the fastest packet would be.
            Policy::Fixed { .. } => {
                if delay_us >= target_us {
                    Start::Now
                } else {
                    Start::Wait { samples: frame }
                }
            }
            Policy::Adaptive if self.tuning.align_start < 0.5 => {
                if delay_us >= target_us.saturating_sub(self.frame_us / 2) {
                    Start::Now
                } else {
                    Start::Wait { samples: frame }
                }
            }
            Policy::Adaptive => {
                // The stream's first talkspurt knows nothing of the link's jitter yet (one packet, no spread): it
                // waits at least a frame (or `initial_delay_ms` if less), so the second packet has that long to come.
                let first_us = self.frame_us.min((self.tuning.initial_delay_ms.max(0.0) * 1_000.0) as i64);
                let start_us = if self.started { target_us } else { target_us.max(first_us) };
                let wait = self.to_samples(start_us.saturating_sub(delay_us));
                // Less than a quarter millisecond early: start now (the first slots expand up to the target).
                if wait < Timestamp::RATE_HZ / 4_000 {
                    return Start::Now;
                }
                Start::Wait { samples: wait.min(frame) }
            }
        }
    }
}
