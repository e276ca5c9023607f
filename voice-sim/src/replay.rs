//! The replay loop: [`replay`] plays a trace through a [`JitterBuffer`] and measures what a listener would get:
//! concealed slots, frames that arrived but were not played, the delay, and how much the audio was stretched.
//!
//! Replay model (documented in the report too):
//! - playout slots start at the first arrival; before each slot every packet with arrival ≤ slot time is pushed
//!   (with its own arrival time as `now`);
//! - a slot lasts one frame (a silence slot its own length) plus the decision's stretch (the audio side is assumed
//!   to apply the full stretch it was asked for, so the next slot starts that much earlier or later) — silence
//!   slots included;
//! - every packet carries Opus in-band FEC for its predecessor;
//! - a played frame's delay is its slot time − its send time − the trace's minimum one-way delay.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use voice_proto::{Seq, Timestamp};

use voice_jitter::{Action, Config, JitterBuffer, Packet, Stretch};

use crate::TracePacket;

/// One played frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlayedFrame {
    /// Trace sequence number.
    pub seq: u64,
    /// Slot time, ms.
    pub slot_ms: f64,
    /// Added delay, ms (slot − send − minimum one-way delay).
    pub delay_ms: f64,
}

/// What a replay measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Packets sent.
    pub sent: u64,
    /// Packets lost in the network.
    pub network_lost: u64,
    /// Packets that arrived but were never played.
    pub late_lost: u64,
    /// Frames played from their own packet.
    pub played: u64,
    /// Frames recovered through FEC.
    pub fec_recovered: u64,
    /// Slots concealed while active.
    pub concealed: u64,
    /// Runs of concealed slots.
    pub conceal_events: u64,
    /// Packets lost in the network whose successor was lost too (or never sent): no in-band FEC can recover them,
    /// so these are the frames that have to be concealed.
    pub unrecoverable: u64,
    /// Missing frames skipped without a slot (playout was behind its target): an audible jump, like a cut.
    pub skipped: u64,
    /// The buffer's target delay averaged over the active slots, ms (relative to the fastest packet of the last
    /// ~2 s, so comparable to the delays below).
    pub mean_target_ms: f64,
    /// Delay statistics over played frames, ms.
    pub mean_delay_ms: f64,
    /// Median delay, ms.
    pub p50_delay_ms: f64,
    /// 95th percentile delay, ms.
    pub p95_delay_ms: f64,
    /// 99th percentile delay, ms.
    pub p99_delay_ms: f64,
    /// Slots with a shrink request.
    pub shrink_ops: u64,
    /// Slots with an expand request.
    pub expand_ops: u64,
    /// Of `shrink_ops` and `expand_ops`, those on silence slots (inaudible: a pause made shorter or longer).
    pub silence_stretch_ops: u64,
    /// Audio removed by shrink requests on audible slots (play, FEC, conceal), ms.
    pub shrink_ms: f64,
    /// Audio added by expand requests on audible slots, ms.
    pub expand_ms: f64,
    /// Invariant violations seen by the harness (a frame played twice or out of order): must be 0.
    pub violations: u64,
    /// Every played frame in slot order.
    pub frames: Vec<PlayedFrame>,
    /// The buffer's own statistics at the end.
    pub stats: voice_jitter::Stats,
}

impl Report {
    /// Late loss as a percentage of packets sent.
    pub fn late_loss_pct(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { 100.0 * self.late_lost as f64 / self.sent as f64 }
    }

    /// Concealed slots as a percentage of packets sent.
    pub fn concealed_pct(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { 100.0 * self.concealed as f64 / self.sent as f64 }
    }

    /// Concealed slots plus frames lost late (arrived, not played), as a percentage of packets sent: on a lossless
    /// link, every frame the listener did not hear as sent.
    pub fn conceal_or_late_pct(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { 100.0 * (self.concealed + self.late_lost) as f64 / self.sent as f64 }
    }

    /// The report as one JSON object (no frame list).
    pub fn to_json(&self, policy: &str, trace: &str) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"policy\":\"{policy}\",\"trace\":\"{trace}\",\"sent\":{},\"network_lost\":{},\"late_lost\":{},\
             \"late_loss_pct\":{:.3},\"played\":{},\"fec_recovered\":{},\"concealed\":{},\"conceal_events\":{},\
             \"unrecoverable\":{},\"skipped\":{},\"mean_target_ms\":{:.1},\"concealed_pct\":{:.3},\"conceal_or_late_pct\":{:.3},\
             \"mean_delay_ms\":{:.1},\"p50_delay_ms\":{:.1},\"p95_delay_ms\":{:.1},\"p99_delay_ms\":{:.1},\
             \"shrink_ops\":{},\"expand_ops\":{},\"silence_stretch_ops\":{},\"shrink_ms\":{:.0},\"expand_ms\":{:.0},\
             \"violations\":{},\
             \"assumptions\":\"every packet carries in-band FEC for its predecessor; the audio side applies the full \
             stretch asked, so a slot lasts frame+stretch; late_lost counts FEC-recovered packets that arrived\"}}",
            self.sent,
            self.network_lost,
            self.late_lost,
            self.late_loss_pct(),
            self.played,
            self.fec_recovered,
            self.concealed,
            self.conceal_events,
            self.unrecoverable,
            self.skipped,
            self.mean_target_ms,
            self.concealed_pct(),
            self.conceal_or_late_pct(),
            self.mean_delay_ms,
            self.p50_delay_ms,
            self.p95_delay_ms,
            self.p99_delay_ms,
            self.shrink_ops,
            self.expand_ops,
            self.silence_stretch_ops,
            self.shrink_ms,
            self.expand_ms,
            self.violations,
        );
        s
    }
}

fn us(ms: f64) -> i64 {
    (ms * 1_000.0).round() as i64
}

/// The instant `us` µs after `t0` (`t0` itself for a negative offset, or one the clock cannot represent).
fn at(t0: Instant, us: i64) -> Instant {
    t0.checked_add(Duration::from_micros(u64::try_from(us).unwrap_or(0))).unwrap_or(t0)
}

/// Plays `trace` through a buffer built from `config`, with sequence numbers offset by `seq_offset` (wrapping:
/// use it to cross the 64-bit wrap).
///
/// # Errors
/// When `config` is invalid.
pub fn replay(trace: &[TracePacket], config: Config, seq_offset: u64) -> Result<Report, voice_jitter::ConfigError> {
    // Trace times are offsets from one origin, which is also the buffer's.
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(config, t0)?;
    let frame_us = i64::from(config.frame_ms) * 1_000;
    let mut arrivals: Vec<(i64, usize)> =
        trace.iter().enumerate().filter_map(|(i, p)| p.arrival_ms.map(|a| (us(a), i))).collect();
    arrivals.sort_by_key(|&(a, i)| (a, i));
    let min_owd_ms = trace.iter().filter_map(|p| p.arrival_ms.map(|a| a - p.send_ms)).fold(f64::INFINITY, f64::min);
    let mut report = Report { sent: trace.len() as u64, ..Report::default() };
    report.network_lost = trace.iter().filter(|p| p.arrival_ms.is_none()).count() as u64;
    report.unrecoverable = (0..trace.len())
        .filter(|&i| trace[i].arrival_ms.is_none() && trace.get(i + 1).is_none_or(|n| n.arrival_ms.is_none()))
        .count() as u64;
    let Some(&(first, _)) = arrivals.first() else {
        return Ok(report);
    };
    let last = arrivals.last().map_or(first, |a| a.0);
    let index: std::collections::HashMap<u64, usize> = trace.iter().enumerate().map(|(i, p)| (p.seq, i)).collect();
    let mut played = vec![false; trace.len()];
    let mut last_played: Option<u64> = None;
    let mut in_conceal = false;
    let mut target_sum_ms = 0.0;
    let mut active_slots = 0u64;
    let mut next = 0;
    let mut slot = first;
    while slot <= last + 5_000_000 {
        while next < arrivals.len() && arrivals[next].0 <= slot {
            let (a, i) = arrivals[next];
            let p = &trace[i];
            let packet = Packet {
                seq: Seq(p.seq.wrapping_add(seq_offset)),
                timestamp: Timestamp((p.seq as u32).wrapping_mul(960)),
                end_of_talkspurt: false,
                payload: p.seq,
            };
            let _ = jb.push(at(t0, a), packet);
            next += 1;
        }
        if next == arrivals.len() && jb.depth() == 0 {
            break;
        }
        let decision = jb.poll_playout(at(t0, slot));
        let silent = matches!(decision.action, Action::Silence { .. });
        if !silent {
            target_sum_ms += jb.stats().target_delay.as_secs_f64() * 1_000.0;
            active_slots += 1;
        }
        // A silence slot may be shorter than a frame (`Tuning::idle_slot`).
        let slot_us = match decision.action {
            Action::Silence { samples } => i64::from(samples) * 1_000 / 48,
            _ => frame_us,
        };
        match decision.action {
            Action::Play { payload, .. } => {
                in_conceal = false;
                if last_played.is_some_and(|l| l >= payload) {
                    report.violations += 1;
                }
                last_played = Some(payload);
                if let Some(&i) = index.get(&payload) {
                    if played[i] {
                        report.violations += 1;
                    }
                    played[i] = true;
                    let delay_ms = slot as f64 / 1_000.0 - trace[i].send_ms - min_owd_ms;
                    report.frames.push(PlayedFrame { seq: payload, slot_ms: slot as f64 / 1_000.0, delay_ms });
                }
            }
            Action::DecodeFec { missing, .. } => {
                in_conceal = false;
                report.fec_recovered += 1;
                let missing = missing.0.wrapping_sub(seq_offset);
                if last_played.is_some_and(|l| l >= missing) {
                    report.violations += 1;
                }
            }
            Action::Conceal { .. } => {
                report.concealed += 1;
                if !in_conceal {
                    report.conceal_events += 1;
                }
                in_conceal = true;
            }
            Action::Silence { .. } => in_conceal = false,
        }
        let stretch_us = match decision.stretch {
            Stretch::None => 0,
            Stretch::Shrink { samples } => {
                report.shrink_ops += 1;
                -i64::from(samples) * 1_000 / 48
            }
            Stretch::Expand { samples } => {
                report.expand_ops += 1;
                i64::from(samples) * 1_000 / 48
            }
        };
        if silent && stretch_us != 0 {
            report.silence_stretch_ops += 1;
        } else if stretch_us < 0 {
            report.shrink_ms -= stretch_us as f64 / 1_000.0;
        } else {
            report.expand_ms += stretch_us as f64 / 1_000.0;
        }
        slot += (slot_us + stretch_us).max(1_000);
    }
    report.stats = jb.stats();
    report.skipped = report.stats.skipped_frames;
    report.mean_target_ms = if active_slots == 0 { 0.0 } else { target_sum_ms / active_slots as f64 };
    report.played = report.frames.len() as u64;
    report.late_lost = trace.len() as u64 - report.network_lost - report.played;
    let mut delays: Vec<f64> = report.frames.iter().map(|f| f.delay_ms).collect();
    delays.sort_by(f64::total_cmp);
    if !delays.is_empty() {
        let q = |p: f64| delays[((delays.len() - 1) as f64 * p).round() as usize];
        report.mean_delay_ms = delays.iter().sum::<f64>() / delays.len() as f64;
        report.p50_delay_ms = q(0.50);
        report.p95_delay_ms = q(0.95);
        report.p99_delay_ms = q(0.99);
    }
    Ok(report)
}
