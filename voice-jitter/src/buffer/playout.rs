//! The per-slot decision: what plays in the slot that starts at `now`.

use std::time::Instant;

use crate::config::Policy;
use crate::decision::{Action, Playout, Stretch};

use super::stretch::Start;
use super::{JitterBuffer, STALL_SLOTS, State, micros};

impl<P: Clone> JitterBuffer<P> {
    /// The decision for the playout slot that starts at `now`. Call it exactly once per slot, when the previous
    /// slot has played: a slot lasts its action's samples (a frame, or less for silence), shortened or lengthened
    /// by the stretch the audio side actually applied.
    ///
    /// Never fails and never allocates; clones a payload only for [`Action::DecodeFec`].
    #[must_use = "every slot's decision must be carried out"]
    pub fn poll_playout(&mut self, now: Instant) -> Playout<P> {
        let now_us = self.now_us(now);
        let target_us = self.target_us();
        self.stats.target_delay = super::duration_us(target_us);
        if self.state == State::Idle {
            if let Start::Wait { samples } = self.try_start(now_us, target_us) {
                let mut silence = self.silence();
                silence.action = Action::Silence { samples };
                return silence;
            }
        }
        self.decide_active(now_us, target_us)
    }

    /// In `Idle`: starts playout on the earliest buffered packet once it is due, or says how long the silence
    /// before it lasts (with nothing buffered, `Tuning::idle_slot`: the next packet is looked at soon after it
    /// arrives).
    fn try_start(&mut self, now_us: i64, target_us: i64) -> Start {
        let Some(first) = self.heap.peek() else {
            let idle = (f64::from(self.frame_samples) * self.tuning.idle_slot.clamp(0.0, 1.0)) as u32;
            return Start::Wait { samples: idle.clamp(1, self.frame_samples) };
        };
        let delay_us = now_us.saturating_sub(first.media_us).saturating_sub(self.estimator.min_offset_us());
        if let wait @ Start::Wait { .. } = self.start_or_wait(delay_us, target_us) {
            return wait;
        }
        let Some(first) = self.heap.peek() else {
            return Start::Wait { samples: self.frame_samples };
        };
        let gap = first.key.wrapping_sub(self.next_key);
        let media_us = first.media_us;
        if gap > 0 {
            self.stats.skipped_frames += gap;
            self.advance(gap, false);
        }
        self.next_media_us = media_us;
        self.state = State::Active;
        self.started = true;
        self.stalled_slots = 0;
        self.stats.reanchors += 1;
        Start::Now
    }

    fn decide_active(&mut self, now_us: i64, target_us: i64) -> Playout<P> {
        let adaptive = matches!(self.config.policy, Policy::Adaptive);
        let max_us = micros(self.config.max_delay);
        let t = self.tuning;
        // How long past its slot a missing frame is waited for: until playout reaches the high "wait" quantile of
        // the delay, and at least `wait_ms` past the target. While later frames are buffered (`capped`), never more
        // than that quantile past the target, so a link without jitter does not wait for a frame that is lost; with
        // nothing buffered (a delay spike) the full `wait_ms`.
        let wait_floor_us = self.estimator.wait_quantile_us();
        let limit_after = |wait_ms: f64, capped: bool| {
            if adaptive {
                let wait_us = (wait_ms * 1_000.0) as i64;
                let extra_us = if capped { wait_us.min(wait_floor_us) } else { wait_us };
                target_us.saturating_add(extra_us).max(wait_floor_us).min(max_us)
            } else {
                i64::MIN
            }
        };
        // Each pass either returns or moves the playout position forward past a frame that is dropped (beyond
        // `max_delay`) or skipped (missing, and playout is behind): bounded by the buffer's content.
        for _ in 0..=self.config.capacity + 1 {
            let delay_us = now_us.saturating_sub(self.next_media_us).saturating_sub(self.estimator.min_offset_us());
            self.stats.current_delay = super::duration_us(delay_us);
            let Some(first) = self.heap.peek() else {
                // Nothing buffered: a delay spike, a burst loss, or the sender stopped without saying so.
                if delay_us >= limit_after(t.wait_empty_ms, false) {
                    self.stalled_slots += 1;
                    if self.stalled_slots > STALL_SLOTS {
                        self.state = State::Idle;
                        return self.silence();
                    }
                    self.advance(1, false);
                    self.note_outcome(1, false, false);
                } else {
                    self.waited += 1;
                }
                return self.conceal();
            };
            let gap = first.key.wrapping_sub(self.next_key);
            if gap == 0 {
                let bound_us = if adaptive { max_us } else { target_us };
                if delay_us > bound_us + self.frame_us && self.heap.len() > 1 {
                    // Beyond the bound (the app's maximum; the fixed policy's watermark) with more audio behind:
                    // drop this frame rather than play it later still.
                    self.heap.pop();
                    self.stats.discarded += 1;
                    self.advance(1, false);
                    self.note_outcome(1, false, false);
                    continue;
                }
                return self.play(delay_us, target_us);
            }
            let wait = if gap == 1 && adaptive {
                // The successor is here: its FEC stands in for the missing frame now unless waiting is allowed —
                // concealing a slot to wait costs the listener more than the FEC frame does.
                t.wait_fec_ms > 0.0 && delay_us < limit_after(t.wait_fec_ms, true)
            } else if adaptive {
                // Neither this frame nor the next is here: this slot is concealed either way. Keep the frame's
                // place (it plays next slot, one frame later) only if it is likely to arrive by then; otherwise
                // the concealed slot stands for it and playout moves on.
                delay_us < limit_after(t.wait_gap_ms, true) && self.arrival_chance(delay_us) >= t.wait_gap_chance
            } else {
                delay_us < limit_after(t.wait_gap_ms, true)
            };
            if wait {
                // Worth waiting one more slot for the missing frame: conceal without moving on.
                self.waited += 1;
                return self.conceal();
            }
            // Giving the frame up. If playout is a whole frame or more behind its target, the slots already
            // concealed while waiting stand for it: skip it without a slot.
            let spare = delay_us.saturating_sub(target_us).saturating_sub((t.deadband_ms * 1_000.0) as i64);
            let mut skip = u64::try_from(spare / self.frame_us).unwrap_or(0);
            if adaptive && gap > 1 {
                // Each slot concealed while waiting for this frame stood for a missing frame.
                skip = skip.max(u64::from(self.waited));
            }
            skip = skip.min(gap);
            if gap == 1 && t.fec_after_wait >= 0.5 {
                skip = 0;
            }
            if skip > 0 {
                self.stats.skipped_frames += skip;
                self.advance(skip, false);
                self.note_outcome(skip, false, false);
                continue;
            }
            self.stalled_slots = 0;
            if gap == 1 {
                let missing = self.next_seq;
                let next_payload = first.payload.clone();
                self.advance(1, false);
                self.note_outcome(1, false, true);
                self.stats.fec_recovered += 1;
                self.concealing = false;
                return Playout { action: Action::DecodeFec { missing, next_payload }, stretch: Stretch::None };
            }
            self.advance(1, false);
            self.note_outcome(1, false, false);
            return self.conceal();
        }
        self.conceal()
    }

    /// How many frames ahead of the one just played the first frame not buffered is (1: the next one; at most 64).
    fn first_missing(&self) -> u32 {
        let mut buffered = 0u64;
        for e in &self.heap {
            let ahead = e.key.wrapping_sub(self.next_key);
            if ahead < 64 {
                buffered |= 1 << ahead;
            }
        }
        (!buffered).trailing_zeros() + 1
    }

    fn play(&mut self, delay_us: i64, target_us: i64) -> Playout<P> {
        // The caller checked that the heap's minimum is the frame due now.
        let Some(entry) = self.heap.pop() else {
            return self.conceal();
        };
        self.next_media_us = entry.media_us;
        self.advance(1, true);
        self.note_outcome(1, true, false);
        let stretch = self.play_stretch(delay_us, target_us, self.first_missing(), entry.end_of_talkspurt);
        self.stats.played += 1;
        self.concealing = false;
        self.stalled_slots = 0;
        if entry.end_of_talkspurt {
            self.state = State::Idle;
        }
        Playout { action: Action::Play { seq: entry.seq, timestamp: entry.timestamp, payload: entry.payload }, stretch }
    }
}
