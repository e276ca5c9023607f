//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same bodies the fuzz targets run, on
//! stable Rust, as an ordinary test. The corpus lives in the repository, not in the published crate: outside the
//! repository (no `../fuzz`) there is nothing to replay.

use std::path::Path;

#[path = "support/roundtrip.rs"]
mod roundtrip;

fn replay(target: &str, body: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    if !fuzz.is_dir() {
        println!("no {} (not in the repository): nothing to replay", fuzz.display());
        return;
    }
    let dir = fuzz.join("corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        body(&data);
        n += 1;
    }
    assert!(n > 0, "corpus {target} is empty");
}

#[test]
fn datagram_corpus() {
    replay("datagram", roundtrip::datagram);
}

#[test]
fn audio_open_corpus() {
    replay("audio_open", roundtrip::audio_open);
}

#[test]
fn control_stream_corpus() {
    replay("control_stream", roundtrip::control_stream);
}
