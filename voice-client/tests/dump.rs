//! The audio dumper of the threaded `Client`: `set_dump(Some(dir))` starts WAV files of the microphone, the
//! post-DSP frames and each remote speaker's decoder output on the media thread; `set_dump(None)` finalizes them.
//! Real loopback sockets, voice-relay's tokio driver, the file audio backend. Every wait is bounded.
#![allow(
    clippy::disallowed_methods,
    reason = "the file backend runs in real time; the test waits for its output with a deadline"
)]
#![cfg(feature = "tokio")]

mod loopback;

use std::path::Path;
use std::time::{Duration, Instant};

use loopback::{BOUND, TestRelay, run_for, temp_dir};
use voice_client::{AudioFormat, Event, read_wav};

/// Waits (bounded) until `path` is a finalized WAV file with samples; returns its format and length.
fn finalized(path: &Path) -> (AudioFormat, usize) {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Ok((format, samples)) = read_wav(path) {
            if !samples.is_empty() {
                return (format, samples.len());
            }
        }
        assert!(Instant::now() < deadline, "{} is not a finalized WAV file within {BOUND:?}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dump_writes_valid_wav_files_and_stops() {
    let relay = TestRelay::start();
    let dir = temp_dir("dump");
    let (alice, bob) = relay.tone_pair(&dir, 8);
    run_for(&bob, Duration::from_millis(500));

    let (alice_dump, bob_dump) = (dir.join("alice-dump"), dir.join("bob-dump"));
    alice.set_dump(Some(alice_dump.clone())).unwrap();
    bob.set_dump(Some(bob_dump.clone())).unwrap();
    // A dump into a path that is a file is refused with an event, and the client keeps running.
    alice.set_dump(Some(dir.join("alice-mic.wav"))).unwrap();
    let mut refused = false;
    let deadline = Instant::now() + BOUND;
    while !refused && Instant::now() < deadline {
        refused = matches!(alice.next_event(Duration::from_millis(100)), Some(Event::RequestRefused(_)));
    }
    assert!(refused, "a dump into a file path is refused");
    alice.set_dump(Some(alice_dump.clone())).unwrap();
    run_for(&bob, Duration::from_millis(1500));
    alice.set_dump(None).unwrap();
    bob.set_dump(None).unwrap();

    let raw = finalized(&alice_dump.join("raw_mic.wav"));
    let dsp = finalized(&alice_dump.join("post_dsp.wav"));
    let speaker = std::fs::read_dir(&bob_dump)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("speaker-"))
        .expect("a speaker directory in bob's dump")
        .path();
    let decoded = finalized(&speaker.join("post_opus_decode.wav"));
    eprintln!("raw mic {raw:?}, post-DSP {dsp:?}, bob's decoder output {decoded:?}");
    // Stopped: the files no longer grow.
    let len = std::fs::metadata(alice_dump.join("raw_mic.wav")).unwrap().len();
    run_for(&bob, Duration::from_millis(300));
    assert_eq!(std::fs::metadata(alice_dump.join("raw_mic.wav")).unwrap().len(), len, "the dump stopped");
    alice.shutdown().unwrap();
    bob.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(raw.0, AudioFormat::MONO_48K);
    assert_eq!(dsp.0, AudioFormat::MONO_48K);
    assert_eq!(decoded.0, AudioFormat::MONO_48K);
    for (what, n) in [("raw mic", raw.1), ("post-DSP", dsp.1), ("decoded", decoded.1)] {
        assert!(n >= 4_800, "{what}: at least 100 ms dumped, got {n} samples");
    }
}
