//! Network simulation: a seeded PRNG ([`Rng`]), network traces and the replay loop — used by the `replay` example,
//! the tests, and other crates' simulators (voice-client's network conditioner draws from [`Rng`]).
//!
//! A trace is one row per sent 20 ms packet: send time and arrival time (or lost). [`generate`] makes seeded traces
//! of the same models as the shared trace files (Gilbert–Elliott loss, gamma jitter, Pareto tail, delay spikes,
//! AR(1) correlated jitter, reordering through jitter, clock drift); [`replay`] plays a trace through a
//! [`JitterBuffer`] and measures what a listener would get.
//!
//! Replay model (documented in the report too):
//! - playout slots start at the first arrival; before each slot every packet with arrival ≤ slot time is pushed
//!   (with its own arrival time as `now`);
//! - a slot lasts one frame plus the decision's stretch (the audio side is assumed to apply the full stretch it
//!   was asked for, so the next slot starts that much earlier or later);
//! - every packet carries Opus in-band FEC for its predecessor;
//! - a played frame's delay is its slot time − its send time − the trace's minimum one-way delay.

use std::fmt::Write as _;
use std::time::Duration;

use voice_proto::{Seq, Timestamp};

use crate::{Action, Config, JitterBuffer, Packet, Stretch};

/// One sent packet of a trace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TracePacket {
    /// Sequence number (0-based in the trace).
    pub seq: u64,
    /// Send time, ms.
    pub send_ms: f64,
    /// Arrival time, ms; `None` if lost in the network.
    pub arrival_ms: Option<f64>,
}

/// Parses a `seq,send_ms,arrival_ms` CSV (header line optional; arrival `-1` = lost).
///
/// # Errors
/// A message naming the first bad line.
pub fn parse_csv(text: &str) -> Result<Vec<TracePacket>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("seq") {
            continue;
        }
        let mut f = line.split(',');
        let mut next = || f.next().map(str::trim).ok_or_else(|| format!("line {}: missing field", n + 1));
        let seq = next()?.parse::<u64>().map_err(|e| format!("line {}: seq: {e}", n + 1))?;
        let send_ms = next()?.parse::<f64>().map_err(|e| format!("line {}: send_ms: {e}", n + 1))?;
        let arrival = next()?.parse::<f64>().map_err(|e| format!("line {}: arrival_ms: {e}", n + 1))?;
        out.push(TracePacket { seq, send_ms, arrival_ms: (arrival >= 0.0).then_some(arrival) });
    }
    Ok(out)
}

/// A tiny seeded PRNG (SplitMix64): deterministic across platforms, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Gamma(shape, scale) (Marsaglia–Tsang; shape ≥ 1).
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        let d = shape.max(1.0) - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * scale;
            }
        }
    }

    /// Pareto with minimum `xm` and tail index `alpha`.
    pub fn pareto(&mut self, xm: f64, alpha: f64) -> f64 {
        xm / self.uniform().powf(1.0 / alpha)
    }
}

/// The network models of the shared traces, plus a clean link with one 300 ms spike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Constant 40 ms one-way delay, no loss.
    Clean,
    /// Clean link with a single 300 ms delay spike 60 s in.
    CleanSpike,
    /// Gamma jitter (σ 30 ms, reordering) with 5% Gilbert–Elliott bursty loss.
    Gamma30Ge5,
    /// Heavy-tailed (Pareto) jitter with 2% loss.
    Pareto30L2,
    /// Small jitter plus 100–400 ms delay spikes (about one per 25 s), 2% loss.
    Spike5L2,
    /// AR(1) correlated jitter (σ 30 ms), 1% loss.
    Ar130L1,
}

impl Model {
    /// Every model, in report order.
    pub const ALL: [Model; 6] =
        [Model::Clean, Model::CleanSpike, Model::Gamma30Ge5, Model::Pareto30L2, Model::Spike5L2, Model::Ar130L1];

    /// The model's name (as in the shared trace file names).
    pub fn name(self) -> &'static str {
        match self {
            Model::Clean => "clean",
            Model::CleanSpike => "clean-spike",
            Model::Gamma30Ge5 => "gamma30-ge5",
            Model::Pareto30L2 => "pareto30-l2",
            Model::Spike5L2 => "spike5-l2",
            Model::Ar130L1 => "ar1-30-l1",
        }
    }

    /// The model called `name`.
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TraceSpec {
    /// The network model.
    pub model: Model,
    /// PRNG seed.
    pub seed: u64,
    /// Packets sent (20 ms apart).
    pub packets: usize,
    /// Receiver clock rate error in parts per million (1000 = receiver 0.1% fast).
    pub drift_ppm: f64,
}

impl TraceSpec {
    /// `packets` packets of `model` with `seed`, no drift.
    pub fn new(model: Model, seed: u64, packets: usize) -> Self {
        Self { model, seed, packets, drift_ppm: 0.0 }
    }
}

/// Generates a seeded trace.
pub fn generate(spec: &TraceSpec) -> Vec<TracePacket> {
    let mut rng = Rng::new(spec.seed);
    let base_ms = 40.0;
    let mut ge_bad = false;
    let mut ar = 0.0f64;
    let mut spike: Option<(f64, f64)> = None; // (start_ms, height_ms)
    let mut out = Vec::with_capacity(spec.packets);
    for i in 0..spec.packets {
        let send_ms = 1_000.0 + 20.0 * i as f64;
        let (jitter_ms, lost) = match spec.model {
            Model::Clean => (0.0, false),
            Model::CleanSpike => {
                let t = send_ms - 61_000.0;
                (if (0.0..300.0).contains(&t) { 300.0 - t } else { 0.0 }, false)
            }
            Model::Gamma30Ge5 => {
                // Gilbert–Elliott: 5% average loss in bursts of ~3 packets.
                ge_bad = if ge_bad { rng.uniform() > 1.0 / 3.0 } else { rng.uniform() < 0.0175 };
                (rng.gamma(1.5, 24.0), ge_bad)
            }
            Model::Pareto30L2 => {
                // A gamma body with a Pareto tail on one packet in five, capped at 1 s.
                let jitter = if rng.uniform() < 0.2 { rng.pareto(20.0, 1.7) } else { rng.gamma(2.0, 4.0) };
                (jitter.min(1_000.0), rng.uniform() < 0.02)
            }
            Model::Spike5L2 => {
                if spike.is_none() && rng.uniform() < 20.0 / 25_000.0 {
                    spike = Some((send_ms, 100.0 + 300.0 * rng.uniform()));
                }
                let mut extra = 0.0;
                if let Some((start, height)) = spike {
                    extra = height - (send_ms - start);
                    if extra <= 0.0 {
                        spike = None;
                        extra = 0.0;
                    }
                }
                (rng.gamma(2.0, 3.0) + extra, rng.uniform() < 0.02)
            }
            Model::Ar130L1 => {
                let rho: f64 = 0.98;
                ar = rho * ar + (1.0 - rho * rho).sqrt() * 30.0 * rng.normal();
                ((80.0 + ar).max(0.0), rng.uniform() < 0.01)
            }
        };
        let arrival = (!lost).then_some((send_ms + base_ms + jitter_ms) * (1.0 + spec.drift_ppm * 1e-6));
        out.push(TracePacket { seq: i as u64, send_ms, arrival_ms: arrival });
    }
    out
}

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
    /// Invariant violations seen by the harness (a frame played twice or out of order): must be 0.
    pub violations: u64,
    /// Every played frame in slot order.
    pub frames: Vec<PlayedFrame>,
    /// The buffer's own statistics at the end.
    pub stats: crate::Stats,
}

impl Report {
    /// Late loss as a percentage of packets sent.
    pub fn late_loss_pct(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { 100.0 * self.late_lost as f64 / self.sent as f64 }
    }

    /// The report as one JSON object (no frame list).
    pub fn to_json(&self, policy: &str, trace: &str) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"policy\":\"{policy}\",\"trace\":\"{trace}\",\"sent\":{},\"network_lost\":{},\"late_lost\":{},\
             \"late_loss_pct\":{:.3},\"played\":{},\"fec_recovered\":{},\"concealed\":{},\"conceal_events\":{},\
             \"mean_delay_ms\":{:.1},\"p50_delay_ms\":{:.1},\"p95_delay_ms\":{:.1},\"p99_delay_ms\":{:.1},\
             \"shrink_ops\":{},\"expand_ops\":{},\"violations\":{},\
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
            self.mean_delay_ms,
            self.p50_delay_ms,
            self.p95_delay_ms,
            self.p99_delay_ms,
            self.shrink_ops,
            self.expand_ops,
            self.violations,
        );
        s
    }
}

fn us(ms: f64) -> i64 {
    (ms * 1_000.0).round() as i64
}

fn at(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// Plays `trace` through a buffer built from `config`, with sequence numbers offset by `seq_offset` (wrapping:
/// use it to cross the 64-bit wrap).
///
/// # Errors
/// When `config` is invalid.
pub fn replay(trace: &[TracePacket], config: Config, seq_offset: u64) -> Result<Report, crate::ConfigError> {
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(config)?;
    let frame_us = i64::from(config.frame_ms) * 1_000;
    let mut arrivals: Vec<(i64, usize)> =
        trace.iter().enumerate().filter_map(|(i, p)| p.arrival_ms.map(|a| (us(a), i))).collect();
    arrivals.sort_by_key(|&(a, i)| (a, i));
    let min_owd_ms = trace.iter().filter_map(|p| p.arrival_ms.map(|a| a - p.send_ms)).fold(f64::INFINITY, f64::min);
    let mut report = Report { sent: trace.len() as u64, ..Report::default() };
    report.network_lost = trace.iter().filter(|p| p.arrival_ms.is_none()).count() as u64;
    let Some(&(first, _)) = arrivals.first() else {
        return Ok(report);
    };
    let last = arrivals.last().map_or(first, |a| a.0);
    let index: std::collections::HashMap<u64, usize> = trace.iter().enumerate().map(|(i, p)| (p.seq, i)).collect();
    let mut played = vec![false; trace.len()];
    let mut last_played: Option<u64> = None;
    let mut in_conceal = false;
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
            let _ = jb.push(at(a), packet);
            next += 1;
        }
        if next == arrivals.len() && jb.depth() == 0 {
            break;
        }
        let decision = jb.poll_playout(at(slot));
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
        slot += (frame_us + stretch_us).max(1_000);
    }
    report.stats = jb.stats();
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
