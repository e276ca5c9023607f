//! The file backend streams what is played into its output file through a ring and a writer thread (memory stays
//! bounded however long the run) and loses nothing at stop, or when its streams are dropped without a stop: what
//! is still queued for the speaker then is written too. No waiting on the clock: the tests stop the streams at once.

use std::path::PathBuf;

use voice_client::{AudioBackend, AudioStreams, FileAudio, SampleProducer, read_wav, sample_ring};

/// File-backend streams writing to `<temp>/<tag>/out.wav`, with `played` queued for the speaker. Returns the
/// directory, the file, and the streams.
fn play(tag: &str, played: &[f32]) -> (PathBuf, PathBuf, Box<dyn AudioStreams>) {
    let dir = std::env::temp_dir().join(format!("voice-client-file-audio-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("out.wav");
    let mut backend = FileAudio::new(None, Some(path.clone())).expect("backend");
    let (mic, _mic_rx) = sample_ring(48_000);
    let (mut speaker_tx, speaker): (SampleProducer, _) = sample_ring(48_000);
    let streams = backend.start(mic, speaker).expect("starts");
    // The output file exists from the start (it is written while the run goes on).
    assert!(path.exists(), "output file created at start");
    assert_eq!(speaker_tx.push(played), played.len());
    drop(speaker_tx);
    (dir, path, streams)
}

#[test]
fn file_backend_writes_every_played_sample_in_order() {
    // 0.3 s of a ramp that never repeats: part of it played by the paced thread, the rest written at stop.
    let ramp: Vec<f32> = (0..14_400).map(|i| (i + 1) as f32 / 20_000.0).collect();
    let (dir, path, streams) = play("order", &ramp);
    streams.stop().expect("stops and finalizes");
    let (format, written) = read_wav(&path).expect("a valid WAV file");
    assert_eq!((format.rate_hz, format.channels), (48_000, 1));
    let first = written.iter().position(|&s| s != 0.0).expect("the ramp was written");
    assert_eq!(&written[first..first + ramp.len()], &ramp[..], "every sample, in order");
    assert!(written[first + ramp.len()..].iter().all(|&s| s == 0.0), "then silence");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Streams dropped without `stop` still end their threads and leave a finalized file.
#[test]
fn dropped_streams_still_finalize_the_file() {
    let (dir, path, streams) = play("drop", &[0.25; 4_800]);
    drop(streams);
    let (_, written) = read_wav(&path).expect("a finalized WAV file");
    assert_eq!(written.iter().filter(|&&s| s == 0.25).count(), 4_800, "what was played is in the file");
    let _ = std::fs::remove_dir_all(&dir);
}
