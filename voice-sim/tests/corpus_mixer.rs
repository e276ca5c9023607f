//! Replays every file of the `mixer` fuzz corpus through the fuzz body, and a deterministic sweep of
//! pseudo-random inputs, so stable Rust checks what the fuzzer runs.

use std::path::Path;

#[test]
fn corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mixer");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        voice_sim::fuzzing::mixer(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus in {}", dir.display());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A failure names the seed and the input to replay. Mostly garbage payloads: the decoders conceal them.
    const SEED: u64 = 0x3d1_0e55;
    let mut rng = voice_sim::Rng::new(SEED);
    for i in 0..1_000 {
        let len = (rng.next_u64() % 768) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if std::panic::catch_unwind(|| voice_sim::fuzzing::mixer(&data)).is_err() {
            panic!("seed {SEED:#x}, input #{i}: {data:?}");
        }
    }
}
