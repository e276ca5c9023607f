//! Replays every file of the `session` fuzz corpus through the fuzz body, and a deterministic sweep of
//! pseudo-random inputs (byte 0 odd in half of them: logged in and in a room), so stable Rust checks what the fuzzer
//! runs.

use voice_sim::fuzzing::{replay_corpus, session, sweep};

#[test]
fn corpus_replays_without_panic() {
    assert!(replay_corpus("session", session) > 0, "an empty corpus");
}

#[test]
fn arbitrary_bytes_never_panic() {
    sweep(0x5e55_1011, 1000, 767, session);
}
