//! Deterministic test signals (speech-like audio) and codec measurement harnesses (correlation, encoding a
//! signal, FEC recovery under loss) shared by the tests, benches and programs.

use voice_jitter::{Action, Playout, Stretch};
use voice_proto::{Seq, Timestamp};

use crate::Rng;

use voice_codec::{
    CaptureConfig, CaptureFrame, CapturePipeline, CodecError, OpusSettings, PlaybackConfig, PlaybackPipeline,
};

/// A sustained vowel-like 48 kHz mono signal without pauses: 10 harmonics of a pitch gliding between 100 and 160 Hz,
/// peak level about 0.4. What a talker sounds like to voice activation and DTX while a talkspurt lasts: every frame
/// is voiced, so tests that act "mid-talkspurt" do not depend on where a pause falls.
#[must_use]
pub fn voiced(samples: usize) -> Vec<f32> {
    let sr = 48_000.0f32;
    let mut phase = 0.0f32;
    (0..samples)
        .map(|i| {
            let t = i as f32 / sr;
            let f0 = 130.0 + 30.0 * (std::f32::consts::TAU * 0.5 * t).sin();
            phase = (phase + std::f32::consts::TAU * f0 / sr) % std::f32::consts::TAU;
            (1..=10).map(|k| (k as f32 * phase).sin() / k as f32).sum::<f32>() * 0.14
        })
        .collect()
}

/// A speech-like 48 kHz mono signal: voiced "syllables" whose pitch glides between about 100 and 250 Hz, with 12
/// harmonics shaped by two moving formant-like peaks, a syllable-rate envelope, a little breath noise, and pauses
/// (a quarter of the time is silence). Peak level about 0.5.
pub fn speech_like(samples: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let sr = 48_000.0f32;
    let mut out = vec![0.0f32; samples];
    let mut pos = 0usize;
    let mut phase = 0.0f32;
    while pos < samples {
        // A talkspurt of 2..5 syllables, then a pause of 150..400 ms.
        let syllables = 2 + (rng.next_u32() % 4) as usize;
        for _ in 0..syllables {
            let len = (0.12 + 0.15 * rng.next_f32()) * sr;
            let len = len as usize;
            let f_start = 100.0 + 150.0 * rng.next_f32();
            let f_end = 100.0 + 150.0 * rng.next_f32();
            let formant1 = 400.0 + 500.0 * rng.next_f32();
            let formant2 = 1_100.0 + 1_200.0 * rng.next_f32();
            for i in 0..len {
                if pos >= samples {
                    break;
                }
                let t = i as f32 / len as f32;
                let f0 = f_start + (f_end - f_start) * t;
                phase += 2.0 * std::f32::consts::PI * f0 / sr;
                if phase > 2.0 * std::f32::consts::PI {
                    phase -= 2.0 * std::f32::consts::PI;
                }
                let mut v = 0.0;
                for k in 1..=12 {
                    let fk = f0 * k as f32;
                    let w1 = (-((fk - formant1) / 250.0).powi(2)).exp();
                    let w2 = 0.6 * (-((fk - formant2) / 350.0).powi(2)).exp();
                    v += (0.08 + w1 + w2) / k as f32 * (phase * k as f32).sin();
                }
                let env = (std::f32::consts::PI * t).sin().powf(0.6);
                let noise = (rng.next_f32() - 0.5) * 0.02;
                out[pos] = 0.3 * env * v + noise * env;
                pos += 1;
            }
        }
        let pause = ((0.15 + 0.25 * rng.next_f32()) * sr) as usize;
        pos += pause;
    }
    out
}

/// Largest normalized cross-correlation of `a` against `b` delayed by 0 ..= `max_lag` samples, and that lag.
pub fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> (f32, usize) {
    let mut best = (f32::NEG_INFINITY, 0);
    for lag in 0..=max_lag {
        if lag >= b.len() {
            break;
        }
        let n = a.len().min(b.len() - lag);
        let c = correlation(&a[..n], &b[lag..lag + n]);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

/// Normalized correlation of two equally long signals (0 if either is silent).
pub fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { (ab / (aa * bb).sqrt()) as f32 }
}

/// Encodes `signal` (48 kHz mono) into 20 ms packets with `settings`; gated frames give `None`.
pub fn encode_all(signal: &[f32], settings: OpusSettings) -> Result<Vec<Option<Vec<u8>>>, CodecError> {
    let mut cap = CapturePipeline::new(CaptureConfig { opus: settings, ..CaptureConfig::default() })?;
    let mut packets = Vec::new();
    for chunk in signal.chunks(960) {
        cap.push(chunk)?;
        while let Some(frame) = cap.poll_frame()? {
            packets.push(match frame {
                CaptureFrame::Packet { payload, .. } => Some(payload.to_vec()),
                // No voice gate here, so no pre-roll either.
                CaptureFrame::Gated { .. } | CaptureFrame::Preroll { .. } => None,
            });
        }
    }
    Ok(packets)
}

/// Outcome of [`fec_recovery`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FecReport {
    /// Frames dropped (never two in a row, never the last).
    pub lost: usize,
    /// Lost frames that carried speech (reference frame RMS above −40 dBFS); only these are scored.
    pub lost_active: usize,
    /// Active lost frames recovered from FEC: the FEC output correlates ≥ 0.7 with the loss-free decode of that
    /// frame *and* is closer to it than PLC's output is.
    pub recovered: usize,
    /// Mean squared error against the original, FEC playout (active lost frames only).
    pub fec_mse: f64,
    /// The same with PLC in place of FEC.
    pub plc_mse: f64,
}

impl FecReport {
    /// Recovered share of the active lost frames, in percent.
    pub fn recovered_pct(&self) -> f64 {
        if self.lost_active == 0 { 100.0 } else { 100.0 * self.recovered as f64 / self.lost_active as f64 }
    }
}

fn playout(action: Action<&[u8]>) -> Playout<&[u8]> {
    Playout { action, stretch: Stretch::None }
}

/// Encodes `seconds` of [`speech_like`] audio with in-band FEC, drops `loss_pct` % of frames at random (single
/// losses only: a frame after a loss is never dropped, so every lost frame's successor arrives), and plays the stream
/// three ways: loss-free, with FEC for each lost frame, and with PLC for each lost frame. A lost frame counts as
/// recovered when its FEC output correlates ≥ 0.7 with the loss-free decode of that frame and is closer to it than
/// the PLC output.
pub fn fec_recovery(seconds: usize, loss_pct: u32, seed: u64, settings: OpusSettings) -> Result<FecReport, CodecError> {
    let signal = speech_like(seconds * 48_000, seed);
    let packets = encode_all(&signal, settings)?;
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut lost = vec![false; packets.len()];
    for i in 1..packets.len().saturating_sub(1) {
        if !lost[i - 1] && rng.next_u32() % 100 < loss_pct {
            lost[i] = true;
        }
    }
    let mut clean = PlaybackPipeline::new(PlaybackConfig::default())?;
    let mut fec = PlaybackPipeline::new(PlaybackConfig::default())?;
    let mut plc = PlaybackPipeline::new(PlaybackConfig::default())?;
    let mut report = FecReport::default();
    let (mut a, mut b, mut c) = (vec![0.0; 960], vec![0.0; 960], vec![0.0; 960]);
    // Decoder output lags the input by the encoder's lookahead: compare each slot with the original at that delay.
    let delay = 312;
    for (i, p) in packets.iter().enumerate() {
        let Some(p) = p else { continue };
        let play = Action::Play { seq: Seq(i as u64), timestamp: Timestamp(0), payload: p.as_slice() };
        clean.play(&playout(play.clone()))?;
        clean.read(&mut a);
        if lost[i] {
            let next = packets.get(i + 1).and_then(|n| n.as_deref());
            match next {
                Some(next) => {
                    fec.play(&playout(Action::DecodeFec { missing: Seq(i as u64), next_payload: next }))?;
                }
                None => {
                    fec.play(&playout(Action::Conceal { samples: 960 }))?;
                }
            }
            plc.play(&playout(Action::Conceal { samples: 960 }))?;
        } else {
            fec.play(&playout(play.clone()))?;
            plc.play(&playout(play))?;
        }
        fec.read(&mut b);
        plc.read(&mut c);
        if !lost[i] {
            continue;
        }
        report.lost += 1;
        let start = (i * 960).saturating_sub(delay);
        let orig = &signal[start..(start + 960).min(signal.len())];
        let rms = (a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / 960.0).sqrt();
        if rms < 0.01 || orig.len() < 960 {
            continue;
        }
        report.lost_active += 1;
        let err = |x: &[f32]| a.iter().zip(x).map(|(r, y)| f64::from(r - y).powi(2)).sum::<f64>();
        if correlation(&a, &b) >= 0.7 && err(&b) < err(&c) {
            report.recovered += 1;
        }
        report.fec_mse += orig.iter().zip(&b).map(|(o, x)| f64::from(o - x).powi(2)).sum::<f64>() / 960.0;
        report.plc_mse += orig.iter().zip(&c).map(|(o, x)| f64::from(o - x).powi(2)).sum::<f64>() / 960.0;
    }
    if report.lost_active > 0 {
        report.fec_mse /= report.lost_active as f64;
        report.plc_mse /= report.lost_active as f64;
    }
    Ok(report)
}
