//! Replays every file of the `jitter` fuzz corpus through the fuzz body, so stable Rust checks what the fuzzer
//! found and seeded.

use std::path::Path;

#[test]
fn corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/jitter");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        voice_sim::fuzzing::jitter(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus in {}", dir.display());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A deterministic sweep of pseudo-random inputs; a failure names the seed and the input to replay.
    const SEED: u64 = 0x5eed;
    let mut rng = voice_sim::Rng::new(SEED);
    for i in 0..2_000 {
        let len = (rng.next_u64() % 512) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if std::panic::catch_unwind(|| voice_sim::fuzzing::jitter(&data)).is_err() {
            panic!("seed {SEED:#x}, input #{i}: {data:?}");
        }
    }
}
