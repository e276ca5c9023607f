//! Replays every file of the `jitter` fuzz corpus through the fuzz body, and a deterministic sweep of
//! pseudo-random inputs, so stable Rust checks what the fuzzer found and seeded.

use voice_sim::fuzzing::{jitter, replay_corpus, sweep};

#[test]
fn corpus_replays_without_panic() {
    assert!(replay_corpus("jitter", jitter) > 0, "an empty corpus");
}

#[test]
fn arbitrary_bytes_never_panic() {
    sweep(0x5eed, 2000, 511, jitter);
}
