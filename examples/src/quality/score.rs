//! Scoring: what was heard (or what the offline reference decoded) against what was said, with PESQ-WB (ITU-T
//! P.862.2) from the `pesq` package on PyPI, run by `python3` with `PYTHONPATH` pointing where `cargo xtask quality`
//! installed it (`target/tools/pesq`).
//!
//! The speech is cut into segments of about 8 s (P.862 is specified for 8–20 s) at pauses; each segment of the
//! reference speech is found in the degraded signal by cross-correlation (a coarse search on 1 kHz envelopes, then
//! ±40 ms on the signal), both are resampled to 16 kHz, written as 16-bit WAVs, and scored; a condition's score is
//! the mean over its segments. PESQ aligns the remaining delay changes inside a segment itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The 48 kHz → 16 kHz low-pass (windowed sinc, cut-off 7.6 kHz).
fn lowpass_taps() -> Vec<f32> {
    const TAPS: usize = 97;
    let mid = (TAPS / 2) as f32;
    let fc = 7_600.0 / 48_000.0;
    let mut h: Vec<f32> = (0..TAPS)
        .map(|i| {
            let x = i as f32 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f32::consts::PI * fc * x).sin() / (std::f32::consts::PI * x)
            };
            let w = 0.42 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / (TAPS - 1) as f32).cos()
                + 0.08 * (4.0 * std::f32::consts::PI * i as f32 / (TAPS - 1) as f32).cos();
            sinc * w
        })
        .collect();
    let sum: f32 = h.iter().sum();
    h.iter_mut().for_each(|x| *x /= sum);
    h
}

/// 48 kHz → 16 kHz.
#[must_use]
pub fn to_16k(x: &[f32]) -> Vec<f32> {
    let h = lowpass_taps();
    let half = h.len() / 2;
    (0..x.len() / 3)
        .map(|o| {
            let c = o * 3;
            h.iter()
                .enumerate()
                .filter_map(|(k, hk)| (c + k).checked_sub(half).and_then(|i| x.get(i)).map(|v| hk * v))
                .sum()
        })
        .collect()
}

/// Mean absolute value over blocks of 48 samples (1 kHz envelope).
fn envelope(x: &[f32]) -> Vec<f32> {
    x.chunks(48).map(|c| c.iter().map(|v| v.abs()).sum::<f32>() / c.len() as f32).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

/// Where `reference[start..start + len]` lies in `degraded` (its start index there), searching `degraded` from
/// `from` to `to` (start positions). `None` if nothing matches.
#[must_use]
pub fn locate(reference: &[f32], start: usize, len: usize, degraded: &[f32], from: usize, to: usize) -> Option<usize> {
    let seg = reference.get(start..start + len)?;
    let env_seg = envelope(seg);
    let env_deg = envelope(degraded);
    let (mut best, mut best_c) = (None, f64::MIN);
    let (lo, hi) = (from / 48, (to / 48).min(env_deg.len().saturating_sub(env_seg.len())));
    let norm_s = dot(&env_seg, &env_seg).sqrt();
    for p in lo..=hi {
        let w = &env_deg[p..p + env_seg.len()];
        let c = dot(&env_seg, w) / (norm_s * dot(w, w).sqrt()).max(1e-12);
        if c > best_c {
            best_c = c;
            best = Some(p * 48);
        }
    }
    let coarse = best?;
    // Refine ±40 ms on the signal itself, on a 1 s excerpt of the segment's loudest part.
    let ex_len = 48_000.min(len);
    let ex_start = (0..len.saturating_sub(ex_len).max(1))
        .step_by(4_800)
        .max_by(|&a, &b| {
            let e = |s: usize| dot(&seg[s..s + ex_len], &seg[s..s + ex_len]);
            e(a).total_cmp(&e(b))
        })
        .unwrap_or(0);
    let ex = &seg[ex_start..ex_start + ex_len];
    let (mut fine, mut fine_c) = (coarse, f64::MIN);
    for p in coarse.saturating_sub(1_920)..=coarse + 1_920 {
        let Some(w) = degraded.get(p + ex_start..p + ex_start + ex_len) else { break };
        let c = dot(ex, w) / dot(w, w).sqrt().max(1e-12);
        if c > fine_c {
            fine_c = c;
            fine = p;
        }
    }
    Some(fine)
}

/// Segments of `speech` of about `target` samples, cut in the middle of pauses (runs of 100 ms below −50 dBFS).
#[must_use]
pub fn segments(speech: &[f32], begin: usize, target: usize) -> Vec<(usize, usize)> {
    let quiet: Vec<bool> =
        speech.chunks(480).map(|c| c.iter().map(|v| v * v).sum::<f32>() / (c.len() as f32) < 1e-5).collect();
    let mut cuts = vec![begin];
    let mut last = begin;
    let mut run = 0;
    for (i, &q) in quiet.iter().enumerate() {
        run = if q { run + 1 } else { 0 };
        let here = i * 480;
        if run >= 10 && here >= last + target {
            let cut = here - 5 * 480;
            cuts.push(cut);
            last = cut;
        }
    }
    if speech.len() > last + target / 2 {
        cuts.push(speech.len());
    } else if cuts.len() > 1 {
        let n = cuts.len();
        cuts[n - 1] = speech.len();
    } else {
        cuts.push(speech.len());
    }
    cuts.windows(2).map(|w| (w[0], w[1] - w[0])).collect()
}

/// One pair of 16 kHz WAVs to score.
#[derive(Clone, Debug)]
pub struct Pair {
    /// Reference (what was said).
    pub reference: PathBuf,
    /// Degraded (what was heard).
    pub degraded: PathBuf,
}

/// Writes the aligned 16 kHz segment pairs of `degraded` against `reference` into `dir` with names `tag-N-…`.
/// Returns the pairs and the alignment (start in `degraded`, samples at 48 kHz) of each segment.
pub fn write_pairs(
    dir: &Path,
    tag: &str,
    reference: &[f32],
    segs: &[(usize, usize)],
    degraded: &[f32],
    search_from: usize,
    search_to: usize,
) -> Result<(Vec<Pair>, Vec<Option<usize>>)> {
    let mut pairs = Vec::new();
    let mut starts = Vec::new();
    let mut from = search_from;
    for (i, &(start, len)) in segs.iter().enumerate() {
        let to = if i == 0 { search_to } else { from + 48_000 };
        let Some(at) = locate(reference, start, len, degraded, from.saturating_sub(24_000), to) else {
            starts.push(None);
            continue;
        };
        starts.push(Some(at));
        from = at + len;
        let r = to_16k(&reference[start..start + len]);
        let d: Vec<f32> = to_16k(&degraded[at..(at + len).min(degraded.len())]);
        let rp = dir.join(format!("{tag}-{i}-ref.wav"));
        let dp = dir.join(format!("{tag}-{i}-deg.wav"));
        write_wav16(&rp, &r)?;
        write_wav16(&dp, &d)?;
        pairs.push(Pair { reference: rp, degraded: dp });
    }
    Ok((pairs, starts))
}

/// Writes 16 kHz mono 16-bit PCM (what PESQ reads).
pub fn write_wav16(path: &Path, x: &[f32]) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("creating {}", path.display()))?;
    for &v in x {
        w.write_sample((v.clamp(-1.0, 1.0) * 32_767.0).round() as i16)?;
    }
    w.finalize().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

const SCORER: &str = r#"
import json, sys, wave
import numpy as np
from pesq import pesq
def read(p):
    with wave.open(p, 'rb') as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1:
            raise SystemExit(p + ': not 16 kHz mono')
        raw = w.readframes(w.getnframes())
        if w.getsampwidth() == 2:
            return np.frombuffer(raw, dtype='<i2').astype(np.float32) / 32768.0
        return np.frombuffer(raw, dtype='<f4').astype(np.float32)
out = []
for ref, deg in json.load(sys.stdin):
    try:
        out.append(float(pesq(16000, read(ref), read(deg), 'wb')))
    except Exception as e:
        out.append(None)
print(json.dumps(out))
"#;

/// Scores `pairs` with PESQ-WB; `None` for a pair PESQ refused (e.g. no speech found).
pub fn pesq(pairs: &[Pair], python_path: Option<&Path>) -> Result<Vec<Option<f64>>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<(String, String)> =
        pairs.iter().map(|p| (p.reference.display().to_string(), p.degraded.display().to_string())).collect();
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(SCORER);
    if let Some(p) = python_path {
        cmd.env("PYTHONPATH", p);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running python3 for PESQ")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(serde_json::to_string(&list)?.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the PESQ scorer failed (is the `pesq` package installed? `cargo xtask quality` installs it): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let scores: Vec<Option<f64>> = serde_json::from_slice(&out.stdout).context("reading the PESQ scorer's output")?;
    Ok(scores)
}

/// Whether python3 can import `pesq` with `python_path`.
#[must_use]
pub fn pesq_available(python_path: Option<&Path>) -> bool {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import pesq, numpy"]);
    if let Some(p) = python_path {
        cmd.env("PYTHONPATH", p);
    }
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success())
}
