//! `--audio SPEECH.wav --out HEARD.wav`: the trace replayed with real audio. The speech (any rate, mono or the
//! first channel; looped or cut to the trace's length) is encoded with Opus in 20 ms frames — 32 kb/s, in-band FEC
//! sized to the trace's loss — one packet per trace packet; the packets that arrived are pushed into the jitter
//! buffer at their arrival times, and every playout decision is carried out by voice-codec's playback pipeline
//! (decode, FEC, PLC, time-stretch as applied, not as asked). Slots follow each other by their real length. The
//! result is what a listener on that path would hear; `--reference-out` also writes what libopus alone delivers
//! with the same packets lost (FEC where the successor arrived, else PLC). Score both with `voice-quality --score`.

use std::path::Path;

use voice_codec::{CaptureConfig, CaptureFrame, CapturePipeline, OpusSettings, PlaybackConfig, PlaybackPipeline};
use voice_jitter::{Config, JitterBuffer, Packet};
use voice_proto::{Seq, Timestamp};
use voice_sim::TracePacket;

const FRAME: usize = 960;

/// What the audio replay produced.
pub(crate) struct Rendered {
    /// What the listener heard, 48 kHz mono.
    pub(crate) heard: Vec<f32>,
    /// What libopus alone delivers with the same packets lost.
    pub(crate) reference: Vec<f32>,
    /// Slots concealed by the buffer.
    pub(crate) concealed: u64,
    /// Slots decoded from FEC.
    pub(crate) fec: u64,
    /// Stretch applied per 5 s of playout: (samples added, samples removed).
    pub(crate) stretch_by_5s: Vec<(i64, i64)>,
}

/// Reads a WAV as 48 kHz mono (first channel), resampling linearly if needed.
pub(crate) fn read_speech(path: &Path) -> Result<Vec<f32>, String> {
    let mut r = hound::WavReader::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let spec = r.spec();
    let ch = usize::from(spec.channels.max(1));
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            r.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>()
        }
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mono: Vec<f32> = samples.chunks(ch).map(|c| c[0]).collect();
    if spec.sample_rate == 48_000 {
        return Ok(mono);
    }
    let ratio = f64::from(spec.sample_rate) / 48_000.0;
    let n = (mono.len() as f64 / ratio) as usize;
    Ok((0..n)
        .map(|i| {
            let t = i as f64 * ratio;
            let k = t as usize;
            let f = (t - k as f64) as f32;
            let a = mono.get(k).copied().unwrap_or(0.0);
            let b = mono.get(k + 1).copied().unwrap_or(a);
            a + (b - a) * f
        })
        .collect())
}

/// Writes 48 kHz mono float WAV.
pub(crate) fn write_wav(path: &Path, x: &[f32]) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| format!("{}: {e}", path.display()))?;
    for &v in x {
        w.write_sample(v).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    w.finalize().map_err(|e| format!("{}: {e}", path.display()))
}

/// Replays `trace` with `speech` through a jitter buffer configured with `config`.
pub(crate) fn render(trace: &[TracePacket], config: Config, speech: &[f32]) -> Result<Rendered, String> {
    let err = |e: voice_codec::CodecError| e.to_string();
    if speech.is_empty() {
        return Err("the speech file is empty".into());
    }
    let lost = trace.iter().filter(|p| p.arrival_ms.is_none()).count();
    let loss_pct = (100.0 * lost as f64 / trace.len().max(1) as f64).ceil().min(100.0) as u8;
    let opus = OpusSettings { inband_fec: loss_pct > 0, expected_loss_pct: loss_pct, ..OpusSettings::default() };
    let mut capture = CapturePipeline::new(CaptureConfig { opus, ..CaptureConfig::default() }).map_err(err)?;
    let mut packets: Vec<Vec<u8>> = Vec::with_capacity(trace.len());
    let mut input = Vec::with_capacity(trace.len() * FRAME);
    for i in 0..trace.len() * FRAME {
        input.push(speech[i % speech.len()]);
    }
    for chunk in input.chunks(FRAME) {
        capture.push(chunk).map_err(err)?;
        while let Some(frame) = capture.poll_frame().map_err(err)? {
            if let CaptureFrame::Packet { payload, .. } = frame {
                packets.push(payload.to_vec());
            }
        }
    }
    // The reference: the same packets, a perfect receiver.
    let mut reference = Vec::with_capacity(input.len());
    let mut dec =
        PlaybackPipeline::new(PlaybackConfig { comfort_noise: false, ..PlaybackConfig::default() }).map_err(err)?;
    for (i, p) in trace.iter().enumerate() {
        let action = if p.arrival_ms.is_some() {
            voice_jitter::Action::Play { seq: Seq(p.seq), timestamp: Timestamp(0), payload: packets[i].as_slice() }
        } else if opus.inband_fec && trace.get(i + 1).is_some_and(|n| n.arrival_ms.is_some()) {
            voice_jitter::Action::DecodeFec { missing: Seq(p.seq), next_payload: packets[i + 1].as_slice() }
        } else {
            voice_jitter::Action::Conceal { samples: FRAME as u32 }
        };
        dec.play(&voice_jitter::Playout { action, stretch: voice_jitter::Stretch::None }).map_err(err)?;
        let mut out = vec![0.0; dec.buffered()];
        dec.read(&mut out);
        reference.extend_from_slice(&out);
    }
    // The listener: the buffer decides, the pipeline carries it out.
    // Trace times are offsets from one origin.
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = std::time::Instant::now();
    let mut jb: JitterBuffer<&[u8]> = JitterBuffer::new(config, t0).map_err(|e| e.to_string())?;
    let mut playback = PlaybackPipeline::new(PlaybackConfig::default()).map_err(err)?;
    let mut arrivals: Vec<(f64, usize)> =
        trace.iter().enumerate().filter_map(|(i, p)| p.arrival_ms.map(|a| (a, i))).collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let Some(&(first, _)) = arrivals.first() else { return Err("no packet of the trace arrived".into()) };
    let end = arrivals.last().map_or(first, |a| a.0) + 2_000.0;
    let (mut now_ms, mut next) = (first, 0usize);
    let mut heard = Vec::with_capacity(input.len() + 48_000);
    let (mut concealed, mut fec) = (0, 0);
    let mut stretch_by_5s: Vec<(i64, i64)> = Vec::new();
    let at = |ms: f64| t0.checked_add(std::time::Duration::from_micros((ms.max(0.0) * 1_000.0) as u64)).unwrap_or(t0);
    while now_ms < end {
        while let Some(&(a, i)) = arrivals.get(next) {
            if a > now_ms {
                break;
            }
            let p = &trace[i];
            let packet = Packet {
                seq: Seq(p.seq),
                timestamp: Timestamp((p.seq as u32).wrapping_mul(FRAME as u32)),
                end_of_talkspurt: false,
                payload: packets[i].as_slice(),
            };
            let _ = jb.push(at(a), packet);
            next += 1;
        }
        let playout = jb.poll_playout(at(now_ms));
        match playout.action {
            voice_jitter::Action::Conceal { .. } => concealed += 1,
            voice_jitter::Action::DecodeFec { .. } => fec += 1,
            _ => {}
        }
        let report = playback.play(&playout).map_err(err)?;
        let bucket = ((now_ms - first) / 5_000.0) as usize;
        if stretch_by_5s.len() <= bucket {
            stretch_by_5s.resize(bucket + 1, (0, 0));
        }
        if report.stretched > 0 {
            stretch_by_5s[bucket].0 += report.stretched;
        } else {
            stretch_by_5s[bucket].1 -= report.stretched;
        }
        let mut out = vec![0.0; playback.buffered()];
        playback.read(&mut out);
        heard.extend_from_slice(&out);
        now_ms += report.samples.max(1) as f64 / 48.0;
    }
    Ok(Rendered { heard, reference, concealed, fec, stretch_by_5s })
}
