//! What one talker sounds like through the mix against the SFU path: speech from a WAV file is encoded as a client
//! does (Opus, 32 kb/s, 20 ms, FEC), then (a) decoded as a listener on the SFU path would, and (b) mixed by the
//! mixer (decoded, re-encoded at the same settings) and decoded; and, as the floor of any mix, (c) the SFU path's
//! audio simply encoded again and decoded. Writes the three as WAV files to score them, e.g. with
//! `cargo xtask quality --score SPEECH.wav sfu.wav mixed.wav tandem.wav`.
//!
//! `cargo run --release -p voice-mixer --example tandem -- SPEECH.wav OUT_DIR` (48 kHz mono speech)
#![allow(clippy::disallowed_methods, reason = "a program: the mixer's clock starts now")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_codec::{CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, Decoder};
use voice_mixer::{Mixer, MixerConfig};
use voice_proto::{PublicId, Seq, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(out_dir)) = (args.next(), args.next()) else {
        return Err("usage: tandem SPEECH.wav OUT_DIR".into());
    };
    let mut reader = hound::WavReader::open(&input).map_err(|e| format!("{input}: {e}"))?;
    let spec = reader.spec();
    if spec.sample_rate != 48_000 || spec.channels != 1 {
        return Err(format!("{input}: 48 kHz mono expected, found {} Hz × {}", spec.sample_rate, spec.channels).into());
    }
    let speech: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 / scale)).collect::<Result<_, _>>()?
        }
    };
    // The talker's client.
    let mut encoder = CapturePipeline::new(CaptureConfig::default())?;
    let mut packets = Vec::new();
    for chunk in speech.chunks(960) {
        encoder.push(chunk)?;
        while let Some(frame) = encoder.poll_frame()? {
            if let CaptureFrame::Packet { payload, .. } = frame {
                packets.push(Bytes::copy_from_slice(payload));
            }
        }
    }
    // (a) The SFU path: the listener decodes the talker's packets.
    let mut pcm = vec![0.0f32; 5_760];
    let mut sfu = Vec::new();
    let mut decoder = Decoder::new(ChannelLayout::Mono)?;
    for p in &packets {
        let n = decoder.decode(p, &mut pcm)?;
        sfu.extend_from_slice(&pcm[..n]);
    }
    // (c) The floor of any decode-and-re-encode: the SFU path's audio encoded again and decoded, frame by frame.
    let mut again = CapturePipeline::new(CaptureConfig::default())?;
    let mut decoder = Decoder::new(ChannelLayout::Mono)?;
    let mut tandem = Vec::new();
    for chunk in sfu.chunks(960) {
        again.push(chunk)?;
        while let Some(frame) = again.poll_frame()? {
            if let CaptureFrame::Packet { payload, .. } = frame {
                let n = decoder.decode(payload, &mut pcm)?;
                tandem.extend_from_slice(&pcm[..n]);
            }
        }
    }
    // (b) The mix: the talker and one listener; the listener decodes the mix. Packets arrive every 20 ms, the mixer
    // mixes every 20 ms; ten more periods drain it.
    let (talker, listener) = (PublicId(1), PublicId(2));
    let t0 = Instant::now();
    let mut mixer = Mixer::new(MixerConfig::default(), t0)?;
    mixer.add_listener(listener)?;
    let mut decoder = Decoder::new(ChannelLayout::Mono)?;
    let mut mixed = Vec::new();
    for i in 0..packets.len() + 10 {
        let now = t0 + Duration::from_millis(20 * i as u64);
        if let Some(p) = packets.get(i) {
            let (seq, ts) = (Seq(i as u64), Timestamp((i * 960) as u32));
            mixer.handle_audio(now, talker, seq, ts, false, p.clone())?;
        }
        mixer.handle_timeout(now)?;
        let mut got = false;
        while let Some(out) = mixer.poll_output() {
            let n = decoder.decode(out.payload, &mut pcm)?;
            mixed.extend_from_slice(&pcm[..n]);
            got = true;
        }
        if !got {
            // Nothing mixed in this period (the mixer's start-up, a pause): the listener plays silence.
            mixed.extend(std::iter::repeat_n(0.0, 960));
        }
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    for (name, audio) in [("sfu.wav", &sfu), ("mixed.wav", &mixed), ("tandem.wav", &tandem)] {
        let path = std::path::Path::new(&out_dir).join(name);
        let mut w = hound::WavWriter::create(&path, spec)?;
        for &s in audio {
            w.write_sample(s)?;
        }
        w.finalize()?;
        println!("{}: {:.2} s", path.display(), audio.len() as f64 / 48_000.0);
    }
    println!("{:?}", mixer.stats());
    Ok(())
}
