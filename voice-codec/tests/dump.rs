//! The audio dumper writes valid WAV files for each chosen stage.

use voice_codec::{CaptureConfig, CaptureFrame, CapturePipeline, DumpStage, Dumper, PlaybackConfig, PlaybackPipeline};
use voice_jitter::{Action, Playout, Stretch};
use voice_sim::audio::speech_like;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("voice-codec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn dumper_writes_valid_wav_files_for_each_stage() {
    let dir = temp_dir("dump");
    let mut cap = CapturePipeline::new(CaptureConfig {
        device_rate_hz: 44_100,
        device_channels: 2,
        noise_suppression: true,
        ..CaptureConfig::default()
    })
    .unwrap();
    let mut play = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    cap.set_dumper(Some(Dumper::new(&dir, &[DumpStage::RawMic, DumpStage::PostDsp])));
    play.set_dumper(Some(Dumper::new(&dir, &[DumpStage::PostOpusDecode])));

    let mono = speech_like(44_100, 3);
    let stereo: Vec<f32> = mono.iter().flat_map(|s| [*s, *s]).collect();
    let mut decoded = 0;
    for chunk in stereo.chunks(882) {
        cap.push(chunk).unwrap();
        while let Some(f) = cap.poll_frame().unwrap() {
            if let CaptureFrame::Packet { payload, .. } = f {
                let action = Action::Play { seq: voice_proto::Seq(0), timestamp: voice_proto::Timestamp(0), payload };
                decoded += play.play(&Playout { action, stretch: Stretch::None }).unwrap().samples;
                let mut sink = vec![0.0; 960];
                play.read(&mut sink);
            }
        }
    }
    let (sent, _) = cap.frame_counts();
    cap.set_dumper(None).unwrap().finish().unwrap();
    play.set_dumper(None).unwrap().finish().unwrap();

    let raw = hound::WavReader::open(dir.join("raw_mic.wav")).unwrap();
    assert_eq!((raw.spec().sample_rate, raw.spec().channels), (44_100, 2));
    assert_eq!(raw.len() as usize, stereo.len());
    let samples: Vec<f32> = raw.into_samples::<f32>().map(Result::unwrap).collect();
    assert_eq!(samples, stereo);

    let dsp = hound::WavReader::open(dir.join("post_dsp.wav")).unwrap();
    assert_eq!((dsp.spec().sample_rate, dsp.spec().channels), (48_000, 1));
    assert_eq!(dsp.len() as u64, sent * 960);

    let dec = hound::WavReader::open(dir.join("post_opus_decode.wav")).unwrap();
    assert_eq!((dec.spec().sample_rate, dec.spec().channels), (48_000, 1));
    assert_eq!(dec.len() as usize, decoded);
    assert!(decoded > 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
