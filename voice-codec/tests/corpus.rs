//! Replays every seed of the `codec_decode` fuzz corpus through the fuzz body, so the corpus is exercised by
//! `cargo test` even where cargo-fuzz is not installed. The corpus lives in the repository, not in the published
//! crate: outside the repository (no `../fuzz`) there is nothing to replay.

#[test]
fn replay_codec_decode_corpus() {
    let fuzz = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz");
    if !std::path::Path::new(fuzz).is_dir() {
        println!("no {fuzz} (not in the repository): nothing to replay");
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/codec_decode");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory exists") {
        let path = entry.expect("readable entry").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        println!("replaying {}", path.display());
        voice_sim::fuzzing::codec_decode(&data);
        count += 1;
    }
    assert!(count >= 3, "expected a seed corpus, found {count} files");
}
