//! Replays every file of the `mixer` fuzz corpus through the fuzz body, and a deterministic sweep of
//! pseudo-random inputs (mostly garbage payloads: the decoders conceal them), so stable Rust checks what the fuzzer
//! runs.

use voice_sim::fuzzing::{mixer, replay_corpus, sweep};

#[test]
fn corpus_replays_without_panic() {
    assert!(replay_corpus("mixer", mixer) > 0, "an empty corpus");
}

#[test]
fn arbitrary_bytes_never_panic() {
    sweep(0x3d1_0e55, 1000, 767, mixer);
}
