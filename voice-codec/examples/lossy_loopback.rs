//! Two seconds of a generated voice-like tone through Opus and back over a lossy "network", once with the plain
//! [`Decoder`] and once with the [`PlaybackPipeline`] and [`Mixer`] a client plays through. Every tenth packet is
//! lost and recovered from the next packet's in-band FEC; two packets in a row are lost once and concealed.
//!
//! ```text
//! cargo run -p voice-codec --example lossy_loopback
//! ```

use voice_codec::{
    Action, CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, CodecError, Decoder, Mixer, PlaybackConfig,
    PlaybackPipeline, Playout, Seq, Stretch, Timestamp,
};

/// The "microphone": 44.1 kHz stereo, delivered in 10 ms chunks.
const DEVICE_RATE_HZ: u32 = 44_100;
const CHUNK_FRAMES: usize = 441;

fn main() -> Result<(), CodecError> {
    // Capture: resample 44.1 kHz stereo to 48 kHz mono, encode 20 ms Opus frames (32 kbit/s, FEC on: the defaults).
    let mut capture = CapturePipeline::new(CaptureConfig {
        device_rate_hz: DEVICE_RATE_HZ,
        device_channels: 2,
        ..CaptureConfig::default()
    })?;
    let mut packets: Vec<Vec<u8>> = Vec::new();
    for chunk in 0..200 {
        capture.push(&voice_like(chunk * CHUNK_FRAMES, CHUNK_FRAMES))?;
        while let Some(frame) = capture.poll_frame()? {
            if let CaptureFrame::Packet { payload, .. } = frame {
                packets.push(payload.to_vec());
            }
        }
    }
    let bytes: usize = packets.iter().map(Vec::len).sum();
    println!("encoded {} packets, {} bytes ({:.1} kbit/s)", packets.len(), bytes, bytes as f64 * 8.0 / 1_000.0 / 2.0);

    let lost = |i: usize| i % 10 == 5 || i == 42 || i == 43;

    // The plain decoder: decode what arrived, FEC or conceal what did not.
    let mut decoder = Decoder::new(ChannelLayout::Mono)?;
    let mut pcm = [0.0f32; 960];
    let (mut energy, mut samples) = (0.0f64, 0usize);
    for i in 0..packets.len() {
        let n = match packets.get(i + 1) {
            _ if !lost(i) => decoder.decode(&packets[i], &mut pcm)?,
            Some(next) if !lost(i + 1) => decoder.decode_fec(next, &mut pcm)?,
            _ => decoder.conceal(&mut pcm)?,
        };
        energy += pcm[..n].iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
        samples += n;
    }
    println!("Decoder: {samples} samples at 48 kHz, RMS {:.3}", (energy / samples as f64).sqrt());

    // The playback pipeline does the same from jitter-buffer decisions (here written by hand), with seam fades
    // and comfort noise, and the mixer converts to the speaker's 44.1 kHz stereo.
    let mut speaker = PlaybackPipeline::new(PlaybackConfig::default())?;
    let mut mixer = Mixer::new(ChannelLayout::Mono, DEVICE_RATE_HZ, 2)?;
    let mut device_samples = 0;
    for i in 0..packets.len() {
        let action = match packets.get(i + 1) {
            _ if !lost(i) => Action::Play {
                seq: Seq(i as u64),
                timestamp: Timestamp(i as u32 * 960),
                payload: packets[i].as_slice(),
            },
            Some(next) if !lost(i + 1) => Action::DecodeFec { missing: Seq(i as u64), next_payload: next.as_slice() },
            _ => Action::Conceal { samples: 960 },
        };
        speaker.play(&Playout { action, stretch: Stretch::None })?;
        device_samples += mixer.mix([&mut speaker], 960)?.len();
    }
    let stats = speaker.stats();
    println!(
        "PlaybackPipeline: {} decoded, {} from FEC, {} concealed; mixer produced {} stereo frames at 44.1 kHz",
        stats.decoded,
        stats.fec,
        stats.concealed,
        device_samples / 2
    );
    Ok(())
}

/// `frames` stereo frames of a voice-like test signal starting at frame `start`: a 140 Hz buzz with harmonics,
/// its loudness moving like syllables.
fn voice_like(start: usize, frames: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(frames * 2);
    for n in start..start + frames {
        let t = n as f32 / DEVICE_RATE_HZ as f32;
        let syllables = 0.55 + 0.45 * (std::f32::consts::TAU * 4.0 * t).sin();
        let buzz: f32 = (1..=6).map(|h| (std::f32::consts::TAU * 140.0 * h as f32 * t).sin() / h as f32).sum();
        let s = 0.15 * syllables * buzz;
        out.extend_from_slice(&[s, s]);
    }
    out
}
