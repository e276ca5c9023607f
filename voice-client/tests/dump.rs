//! The audio dumper of the threaded `Client`: `set_dump(Some(dir))` starts WAV files of the microphone, the
//! post-DSP frames and each remote speaker's decoder output on the media thread; `set_dump(None)` finalizes them,
//! and `Event::Dump` says when each is done. Real loopback sockets, voice-relay's tokio driver, the file audio
//! backend. Every wait is for an event, bounded.
#![cfg(feature = "tokio")]

mod loopback;

use std::path::Path;
use std::time::Duration;

use loopback::{TestRelay, run_for, temp_dir, wait_for};
use voice_client::{AudioFormat, Event, read_wav};

/// `path` as a finalized WAV file: its format and length.
fn finalized(path: &Path) -> (AudioFormat, usize) {
    let (format, samples) =
        read_wav(path).unwrap_or_else(|e| panic!("{} is not a finalized WAV file: {e}", path.display()));
    (format, samples.len())
}

#[test]
fn dump_writes_valid_wav_files_and_stops() {
    let relay = TestRelay::start();
    let dir = temp_dir("dump");
    let (alice, bob) = relay.tone_pair(&dir, 8);
    run_for(&bob, Duration::from_millis(500));

    let (alice_dump, bob_dump) = (dir.join("alice-dump"), dir.join("bob-dump"));
    let started = |c: &voice_client::Client, d: &Path| {
        wait_for(c, "the dump started", |e| matches!(e, Event::Dump { dir: Some(x) } if x == d));
    };
    alice.set_dump(Some(alice_dump.clone())).unwrap();
    bob.set_dump(Some(bob_dump.clone())).unwrap();
    started(&alice, &alice_dump);
    started(&bob, &bob_dump);
    // A dump into a path that is a file is refused with an event, and the client keeps running.
    alice.set_dump(Some(dir.join("alice-mic.wav"))).unwrap();
    wait_for(&alice, "the refusal of a dump into a file path", |e| matches!(e, Event::RequestRefused(_)));
    alice.set_dump(Some(alice_dump.clone())).unwrap();
    started(&alice, &alice_dump);
    run_for(&bob, Duration::from_millis(1500));
    alice.set_dump(None).unwrap();
    bob.set_dump(None).unwrap();
    for c in [&alice, &bob] {
        wait_for(c, "the dump stopped", |e| matches!(e, Event::Dump { dir: None }));
    }

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
