//! Network traces: one row per sent 20 ms packet, its send time and arrival time (or lost). [`parse_csv`] reads the
//! shared trace files; [`generate`] makes seeded traces of the same models (Gilbert–Elliott loss, gamma jitter,
//! Pareto tail, delay spikes, AR(1) correlated jitter, reordering through jitter, clock drift) and of the listening
//! test's conditions (Gaussian jitter without loss, random loss without jitter: [`Model::LISTENING`]).

use crate::Rng;

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

/// The network models of the shared traces, a clean link with one 300 ms spike, and the conditions of the
/// listening test (30 ms latency with Gaussian jitter and no loss; random loss without jitter).
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
    /// Listening test: 30 ms latency plus Gaussian jitter σ 10 ms per packet (independent, clamped at 0, so
    /// packets reorder), no loss.
    Jitter10,
    /// As [`Model::Jitter10`] with σ 20 ms.
    Jitter20,
    /// As [`Model::Jitter10`] with σ 40 ms.
    Jitter40,
    /// Listening test: 30 ms latency, no jitter, 2% independent random loss.
    Loss2,
    /// As [`Model::Loss2`] with 5% loss.
    Loss5,
    /// As [`Model::Loss2`] with 10% loss.
    Loss10,
    /// The two listening-test impairments together: σ 20 ms Gaussian jitter and 5% random loss.
    Jitter20Loss5,
}

impl Model {
    /// The models of the shared traces and the clean link with a spike, in report order.
    pub const ALL: [Model; 6] =
        [Model::Clean, Model::CleanSpike, Model::Gamma30Ge5, Model::Pareto30L2, Model::Spike5L2, Model::Ar130L1];

    /// The listening-test conditions, in report order.
    pub const LISTENING: [Model; 7] = [
        Model::Jitter10,
        Model::Jitter20,
        Model::Jitter40,
        Model::Loss2,
        Model::Loss5,
        Model::Loss10,
        Model::Jitter20Loss5,
    ];

    /// The model's name (as in the shared trace file names).
    pub fn name(self) -> &'static str {
        match self {
            Model::Clean => "clean",
            Model::CleanSpike => "clean-spike",
            Model::Gamma30Ge5 => "gamma30-ge5",
            Model::Pareto30L2 => "pareto30-l2",
            Model::Spike5L2 => "spike5-l2",
            Model::Ar130L1 => "ar1-30-l1",
            Model::Jitter10 => "jitter10",
            Model::Jitter20 => "jitter20",
            Model::Jitter40 => "jitter40",
            Model::Loss2 => "loss2",
            Model::Loss5 => "loss5",
            Model::Loss10 => "loss10",
            Model::Jitter20Loss5 => "jitter20-loss5",
        }
    }

    /// The model called `name` (any of [`Model::ALL`] and [`Model::LISTENING`]).
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().chain(Model::LISTENING).find(|m| m.name() == name)
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
    let listening = Model::LISTENING.contains(&spec.model);
    let base_ms = if listening { 30.0 } else { 40.0 };
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
            Model::Jitter10 => ((10.0 * rng.normal()).max(0.0), false),
            Model::Jitter20 => ((20.0 * rng.normal()).max(0.0), false),
            Model::Jitter40 => ((40.0 * rng.normal()).max(0.0), false),
            Model::Loss2 => (0.0, rng.uniform() < 0.02),
            Model::Loss5 => (0.0, rng.uniform() < 0.05),
            Model::Loss10 => (0.0, rng.uniform() < 0.10),
            Model::Jitter20Loss5 => ((20.0 * rng.normal()).max(0.0), rng.uniform() < 0.05),
        };
        let arrival = (!lost).then_some((send_ms + base_ms + jitter_ms) * (1.0 + spec.drift_ppm * 1e-6));
        out.push(TracePacket { seq: i as u64, send_ms, arrival_ms: arrival });
    }
    out
}
