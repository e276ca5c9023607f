//! The jitter buffer: a bounded min-heap of packets keyed by extended sequence number, and the per-slot playout
//! decision.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use voice_proto::{Seq, Timestamp, TimestampUnwrapper};

use crate::config::{Config, Policy, Tuning};
use crate::decision::{Action, Playout, Stretch};
use crate::error::{ConfigError, PushError};
use crate::estimator::DelayEstimator;
use crate::stats::Stats;

mod playout;
mod stretch;

/// Extended key of the first anchor: far from both ends of `u64`, so keys never wrap.
const KEY_BASE: u64 = 1 << 62;
/// Consecutive given-up slots with an empty buffer after which the stream is taken as stopped (silence).
const STALL_SLOTS: u32 = 5;

/// One received packet, as pushed into the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<P> {
    /// Sequence number from the audio header.
    pub seq: Seq,
    /// Media timestamp from the audio header (48 kHz).
    pub timestamp: Timestamp,
    /// The header's `END_OF_TALKSPURT` flag: the sender stops after this packet (DTX), so the buffer plays silence
    /// after it instead of concealing, and re-anchors on the next packet.
    pub end_of_talkspurt: bool,
    /// The Opus payload (for example `bytes::Bytes`; cloned once when its FEC is used).
    pub payload: P,
}

/// A buffered packet. Ordered by `key` only, reversed, so `BinaryHeap` is a min-heap.
#[derive(Debug)]
struct Entry<P> {
    key: u64,
    media_us: i64,
    seq: Seq,
    timestamp: Timestamp,
    end_of_talkspurt: bool,
    payload: P,
}

impl<P> PartialEq for Entry<P> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl<P> Eq for Entry<P> {}
impl<P> PartialOrd for Entry<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<P> Ord for Entry<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing to play yet, or the talkspurt ended: silence until the next packet is due.
    Idle,
    /// Playing: every slot plays, recovers or conceals frame `next_seq`.
    Active,
}

/// An adaptive jitter buffer for one audio stream. See the [crate docs](crate) for the run loop.
///
/// Methods: [`push`](Self::push) for each received packet, [`poll_playout`](Self::poll_playout) once per playout
/// slot, and getters ([`stats`](Self::stats), [`depth`](Self::depth), [`target_delay`](Self::target_delay)).
/// Time is always an argument: `now` is an [`Instant`] of the caller's monotonic clock, never decreasing from call
/// to call. The buffer never reads a clock itself: it measures every `now` from the origin given to
/// [`new`](Self::new), in whole microseconds.
#[derive(Debug)]
pub struct JitterBuffer<P> {
    config: Config,
    /// The instant every `now` is measured from; an earlier `now` counts as the origin itself.
    origin: Instant,
    tuning: Tuning,
    frame_us: i64,
    frame_samples: u32,
    heap: BinaryHeap<Entry<P>>,
    unwrapper: TimestampUnwrapper,
    estimator: DelayEstimator,
    state: State,
    /// Whether `next_seq`/`next_key` name a real position (false until the first packet).
    anchored: bool,
    /// Whether anything was played since the last anchor (before that, earlier packets move the anchor back).
    started: bool,
    next_seq: Seq,
    next_key: u64,
    /// Media time (µs, extended) of the frame the next slot plays.
    next_media_us: i64,
    /// Bit `i` set: frame `next_seq - 1 - i` was played (for telling duplicates from late packets).
    played_mask: u128,
    /// The last slot was a concealment.
    concealing: bool,
    /// Consecutive slots given up with an empty buffer.
    stalled_slots: u32,
    /// Slots concealed while waiting for the frame due now (reset whenever playout moves on).
    waited: u32,
    /// Smoothed fraction of frames lost in the network: given up and never arrived (a frame given up whose packet
    /// then arrives late is taken back out).
    loss_rate: f64,
    /// Smoothed fraction of frames that were, or could have been, recovered by FEC: given up while their
    /// successor was buffered, or concealed while their successor then played.
    fec_rate: f64,
    /// Weight the two rates have gathered (`1 − (1 − rate_alpha)^frames`), for their bias correction.
    rate_weight: f64,
    /// The target makes room for FEC (`fec_rate` went above `Tuning::fec_on_rate`, and not below 3/4 of it since).
    fec_mode: bool,
    /// The depth went beyond the dead band above the target and is being shrunk back down to the target.
    shrinking: bool,
    /// The last frame given up was concealed without FEC (if the next one plays, FEC could have recovered it).
    gave_up_without_fec: bool,
    stats: Stats,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn duration_us(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl<P> JitterBuffer<P> {
    /// A buffer with room for `config.capacity` packets, allocated now and never again.
    ///
    /// `origin` is the instant the buffer measures time from: any instant of the clock the caller then passes as
    /// `now`, at or before the first of them (for example the time the buffer or the session is created). A `now`
    /// earlier than `origin` counts as `origin` itself.
    ///
    /// # Errors
    /// [`ConfigError`] when the frame duration, capacity or delay bounds are unusable.
    pub fn new(config: Config, origin: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let frame_us = i64::from(config.frame_ms) * 1_000;
        Ok(Self {
            origin,
            tuning: config.tuning,
            frame_us,
            frame_samples: config.frame_ms * (Timestamp::RATE_HZ / 1_000),
            heap: BinaryHeap::with_capacity(config.capacity),
            unwrapper: TimestampUnwrapper::new(),
            estimator: DelayEstimator::new(&config.tuning),
            state: State::Idle,
            anchored: false,
            started: false,
            next_seq: Seq(0),
            next_key: KEY_BASE,
            next_media_us: 0,
            played_mask: 0,
            concealing: false,
            stalled_slots: 0,
            waited: 0,
            loss_rate: 0.0,
            fec_rate: 0.0,
            rate_weight: 0.0,
            fec_mode: false,
            gave_up_without_fec: false,
            shrinking: false,
            stats: Stats::default(),
            config,
        })
    }

    /// The configuration this buffer was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Packets buffered now.
    pub fn depth(&self) -> usize {
        self.heap.len()
    }

    /// Counters and gauges; `depth` is current, the delays are those of the last decision.
    pub fn stats(&self) -> Stats {
        Stats { depth: self.heap.len(), ..self.stats }
    }

    /// The delay the policy aims for now (relative to the fastest packet of the last ~2 s).
    pub fn target_delay(&self) -> Duration {
        duration_us(self.target_us())
    }

    /// `now` in whole microseconds since the origin (0 for an instant before it; saturating, never panicking).
    fn now_us(&self, now: Instant) -> i64 {
        micros(now.saturating_duration_since(self.origin))
    }

    fn target_us(&self) -> i64 {
        let min_us = micros(self.config.min_delay);
        let max_us = micros(self.config.max_delay);
        match self.config.policy {
            Policy::Fixed { delay } => micros(delay),
            Policy::Adaptive => {
                let t = &self.tuning;
                // A lossless link aims at the high quantile (every late frame is heard); with loss, concealment of
                // the lost frames dominates and the target moves toward the lower quantile.
                // The high quantile is trusted only while the tail is light (as with Gaussian jitter): after a
                // delay spike, or with a heavy tail, it is capped at `high_cap` times the lower quantile.
                let low = self.estimator.quantile_us() as f64;
                let high = (self.estimator.high_quantile_us() as f64).min(low * t.high_cap).max(low);
                let w = (self.loss_rate / t.loss_ref.max(1e-9)).clamp(0.0, 1.0);
                let q = high - w * (high - low);
                let peak = self.estimator.peak_us() as f64 * t.peak_weight;
                let warm = self.estimator.warmup_floor_us() as f64;
                let mut target = q.max(peak).max(warm) + t.margin_ms * 1_000.0;
                if self.fec_mode {
                    // Room for the successor of a lost frame to be there at the lost frame's slot.
                    let fec = self.estimator.fec_quantile_us() + self.frame_us;
                    target = target.max(fec as f64 + t.margin_ms * 1_000.0);
                }
                (target as i64).clamp(min_us, max_us)
            }
        }
    }

    fn media_us(&mut self, timestamp: Timestamp) -> i64 {
        let ext = self.unwrapper.unwrap(timestamp);
        // Extended timestamps start at 2^32 and move by at most 2^31 per packet; saturate rather than overflow.
        i64::try_from(ext).unwrap_or(i64::MAX).saturating_mul(125) / 6
    }

    /// Throws away everything buffered and takes `seq` as the new start of the stream (first packet, sender
    /// restart, a jump too large to be a gap).
    fn reanchor(&mut self, seq: Seq) {
        self.stats.discarded += self.heap.len() as u64;
        self.heap.clear();
        self.unwrapper = TimestampUnwrapper::new();
        self.estimator.reset_offsets();
        self.anchored = true;
        self.started = false;
        self.state = State::Idle;
        self.next_seq = seq;
        self.next_key = KEY_BASE;
        self.played_mask = 0;
        self.concealing = false;
        self.stalled_slots = 0;
        self.gave_up_without_fec = false;
    }

    /// Records what became of `frames` frames just passed: the first `played` from its own packet or not, whether
    /// it was (or could have been) recovered by FEC. Feeds the loss and FEC-chance rates.
    fn note_outcome(&mut self, frames: u64, played: bool, fec_chance: bool) {
        let alpha = self.tuning.rate_alpha.clamp(0.0, 1.0);
        let fec_chance = fec_chance || (played && self.gave_up_without_fec);
        for i in 0..frames.min(64) {
            let miss = if i == 0 && played { 0.0 } else { 1.0 };
            let chance = if i == 0 && fec_chance { 1.0 } else { 0.0 };
            self.loss_rate += alpha * (miss - self.loss_rate);
            self.fec_rate += alpha * (chance - self.fec_rate);
            self.rate_weight += alpha * (1.0 - self.rate_weight);
        }
        self.gave_up_without_fec = !played && !fec_chance;
        // The averages start at zero; early in a stream they are divided by the weight they have gathered (as a
        // bias-corrected moving average), so the first losses of a lossy link make room for FEC within a second
        // instead of after the average has filled up (5 s at 2 % loss).
        let fec_rate = self.fec_rate / self.rate_weight.max(alpha).max(1e-9);
        let on = self.tuning.fec_on_rate;
        if fec_rate > on {
            self.fec_mode = true;
        } else if fec_rate < on * 0.75 {
            self.fec_mode = false;
        }
    }

    /// Largest sequence distance taken as a gap in one stream; beyond it the sender is taken as restarted.
    fn jump_limit(&self) -> i64 {
        (self.config.capacity.max(64) as i64) * 4
    }

    /// Offers one received packet that arrived at `now`.
    ///
    /// Never allocates: the packet goes into the heap allocated by [`new`](Self::new).
    ///
    /// # Errors
    /// [`PushError`] when the packet is not buffered (duplicate, late, buffer full); the buffer is unaffected
    /// apart from its counters and delay statistics.
    pub fn push(&mut self, now: Instant, packet: Packet<P>) -> Result<(), PushError> {
        self.stats.packets_received += 1;
        let now_us = self.now_us(now);
        if !self.anchored {
            self.reanchor(packet.seq);
        }
        let mut distance = packet.seq.distance(self.next_seq);
        if distance.unsigned_abs() > self.jump_limit() as u64 {
            self.stats.restarts += 1;
            self.reanchor(packet.seq);
            distance = 0;
        }
        if distance < 0 && !self.started {
            // An earlier packet before playout began: move the start back to it.
            self.next_seq = packet.seq;
            self.next_key = self.next_key.wrapping_sub(distance.unsigned_abs());
            distance = 0;
        }
        if distance < 0 {
            let back = distance.unsigned_abs() - 1;
            if back < 128 && self.played_mask & (1u128 << back) != 0 {
                self.stats.duplicates += 1;
                return Err(PushError::Duplicate);
            }
            // Still a delay sample: a late packet is exactly what the statistics must see.
            let media_us = self.media_us(packet.timestamp);
            self.estimator.update(now_us, media_us);
            self.stats.late += 1;
            // Its frame was given up as lost; it was only late.
            self.loss_rate = (self.loss_rate - self.tuning.rate_alpha.clamp(0.0, 1.0)).max(0.0);
            return Err(PushError::Late);
        }
        let key = self.next_key.wrapping_add(distance.unsigned_abs());
        if self.heap.iter().any(|e| e.key == key) {
            self.stats.duplicates += 1;
            return Err(PushError::Duplicate);
        }
        let media_us = self.media_us(packet.timestamp);
        self.estimator.update(now_us, media_us);
        if self.heap.len() >= self.config.capacity {
            self.stats.overflow += 1;
            return Err(PushError::Full);
        }
        self.heap.push(Entry {
            key,
            media_us,
            seq: packet.seq,
            timestamp: packet.timestamp,
            end_of_talkspurt: packet.end_of_talkspurt,
            payload: packet.payload,
        });
        Ok(())
    }

    /// Moves the playout position forward by `frames` slots; `played` tells whether the first of them was played.
    fn advance(&mut self, frames: u64, played: bool) {
        self.next_seq = Seq(self.next_seq.0.wrapping_add(frames));
        self.next_key = self.next_key.wrapping_add(frames);
        self.next_media_us = self.next_media_us.saturating_add(self.frame_us.saturating_mul(frames as i64));
        self.waited = 0;
        self.played_mask = if frames >= 128 { 0 } else { self.played_mask << frames };
        if played && (1..=128).contains(&frames) {
            self.played_mask |= 1u128 << (frames - 1);
        }
    }

    fn conceal(&mut self) -> Playout<P> {
        self.stats.concealed_frames += 1;
        if !self.concealing {
            self.stats.conceal_events += 1;
        }
        self.concealing = true;
        Playout { action: Action::Conceal { samples: self.frame_samples }, stretch: Stretch::None }
    }

    fn silence(&mut self) -> Playout<P> {
        self.stats.silence_frames += 1;
        self.concealing = false;
        Playout { action: Action::Silence { samples: self.frame_samples }, stretch: Stretch::None }
    }
}
