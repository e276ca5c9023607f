//! The harness's speech: Harvard sentences spoken by several espeak-ng voices (male and female variants, two
//! accents) with pauses between them, resampled to 48 kHz and levelled to about −26 dBFS — or, without espeak-ng,
//! the stack's generated speech-like signal in talkspurts of several seeds.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::bots::audio::RATE_HZ;

/// Harvard sentences (IEEE 1969), lists 1 and 2.
const SENTENCES: [&str; 20] = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "Large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
];

/// Voices: accent and variant (male 1/3, female 2/3/4).
const VOICES: [&str; 5] = ["en-us", "en-us+f3", "en-gb+m3", "en-gb+f2", "en-us+f4"];

/// Speech of about `seconds`: espeak-ng's (`source` = "auto" or "espeak") or generated. Returns the samples (48 kHz
/// mono) and a description of the source.
pub fn make(source: &str, seconds: f64, seed: u64, tmp: &Path) -> Result<(Vec<f32>, String)> {
    let have_espeak = espeak_installed();
    match source {
        "espeak" if !have_espeak => {
            bail!("--speech espeak: espeak-ng is not installed (Debian: apt-get install espeak-ng)")
        }
        "espeak" | "auto" if have_espeak => espeak(seconds, seed, tmp),
        "auto" | "generated" => {
            Ok((generated(seconds, seed), "generated speech-like talkspurts (espeak-ng not used)".into()))
        }
        other => bail!("--speech must be auto, espeak or generated, not `{other}`"),
    }
}

/// One sentence per talker, each in its own voice: espeak-ng's (Harvard sentences, levelled to about −26 dBFS)
/// when `espeak-ng` is installed, else generated speech-like talkspurts of `fallback_samples`. Returns the sentences
/// and a description of the source.
pub fn sentences(talkers: usize, seed: u64, fallback_samples: usize, tmp: &Path) -> Result<(Vec<Vec<f32>>, String)> {
    if !espeak_installed() {
        let out = (0..talkers as u64)
            .map(|k| {
                let mut x = voice_sim::audio::speech_like(fallback_samples, seed * 10 + k);
                level(&mut x, 0.05);
                x
            })
            .collect();
        return Ok((out, "generated speech-like talkspurts (espeak-ng not installed)".into()));
    }
    let path = tmp.join("espeak.wav");
    let mut out = Vec::new();
    for k in 0..talkers {
        let sentence = SENTENCES[(k + seed as usize) % SENTENCES.len()];
        out.push(speak(sentence, VOICES[k % VOICES.len()], &path)?);
    }
    Ok((out, format!("espeak-ng, one Harvard sentence per talker in {} voices", talkers.min(VOICES.len()))))
}

fn espeak_installed() -> bool {
    Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `sentence` spoken by `voice`, 48 kHz, levelled.
fn speak(sentence: &str, voice: &str, path: &Path) -> Result<Vec<f32>> {
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "155", "-w"])
        .arg(path)
        .arg(sentence)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running espeak-ng")?;
    if !status.success() {
        bail!("espeak-ng failed ({status}) for voice {voice}");
    }
    let mut reader = hound::WavReader::open(path).with_context(|| format!("reading {}", path.display()))?;
    let rate = reader.spec().sample_rate;
    let samples: Vec<f32> =
        reader.samples::<i16>().map(|s| s.map(|v| f32::from(v) / 32_768.0)).collect::<Result<_, _>>()?;
    let mut x = resample(&samples, rate, RATE_HZ as u32);
    level(&mut x, 0.05);
    Ok(x)
}

fn espeak(seconds: f64, seed: u64, tmp: &Path) -> Result<(Vec<f32>, String)> {
    let want = (seconds * RATE_HZ as f64) as usize;
    let mut rng = voice_sim::Rng::new(seed.wrapping_add(17));
    let mut out = Vec::with_capacity(want + RATE_HZ * 5);
    let path = tmp.join("espeak.wav");
    let mut k = 0usize;
    while out.len() < want {
        let sentence = SENTENCES[(k + seed as usize) % SENTENCES.len()];
        out.extend_from_slice(&speak(sentence, VOICES[k % VOICES.len()], &path)?);
        let pause = RATE_HZ * 4 / 10 + (rng.next_u32() as usize % (RATE_HZ * 4 / 10));
        out.extend(std::iter::repeat_n(0.0, pause));
        k += 1;
    }
    Ok((out, format!("espeak-ng, {k} Harvard sentences in {} voices", VOICES.len().min(k))))
}

fn generated(seconds: f64, seed: u64) -> Vec<f32> {
    let want = (seconds * RATE_HZ as f64) as usize;
    let mut out = Vec::with_capacity(want + RATE_HZ * 4);
    let mut k = 0u64;
    while out.len() < want {
        let mut x = voice_sim::audio::speech_like(RATE_HZ * 3, seed * 100 + k);
        level(&mut x, 0.05);
        out.extend_from_slice(&x);
        out.extend(std::iter::repeat_n(0.0, RATE_HZ / 2));
        k += 1;
    }
    out
}

/// Scales `x` so that its active part (10 ms blocks above −50 dBFS) has RMS `rms`.
fn level(x: &mut [f32], rms: f32) {
    let (mut e, mut n) = (0.0f64, 0usize);
    for c in x.chunks(480) {
        let b: f64 = c.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / c.len() as f64;
        if b > 1e-5 {
            e += b * c.len() as f64;
            n += c.len();
        }
    }
    if n == 0 {
        return;
    }
    let g = rms / ((e / n as f64).sqrt() as f32).max(1e-6);
    x.iter_mut().for_each(|v| *v = (*v * g).clamp(-1.0, 1.0));
}

/// Band-limited resampling (windowed sinc, 16 zero crossings each side, cut-off at the lower Nyquist).
fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to {
        return x.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let cutoff = ratio.min(1.0) * 0.95;
    let half = 16.0 / cutoff;
    let n_out = (x.len() as f64 * ratio) as usize;
    (0..n_out)
        .map(|o| {
            let t = o as f64 / ratio;
            let lo = (t - half).ceil().max(0.0) as usize;
            let hi = ((t + half).floor() as usize).min(x.len().saturating_sub(1));
            let mut acc = 0.0f64;
            for (i, &v) in x.iter().enumerate().take(hi + 1).skip(lo) {
                let d = i as f64 - t;
                let arg = std::f64::consts::PI * d * cutoff;
                let sinc = if d.abs() < 1e-9 { 1.0 } else { arg.sin() / arg };
                let w = 0.5 + 0.5 * (std::f64::consts::PI * d / half).cos();
                acc += f64::from(v) * sinc * w * cutoff;
            }
            acc as f32
        })
        .collect()
}
