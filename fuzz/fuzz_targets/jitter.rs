//! Fuzz target `jitter`: arbitrary pushes and playout ticks; the body is `voice_jitter::fuzzing::ops`, which the
//! corpus-replay test (`voice-jitter/tests/corpus.rs`) also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_jitter::fuzzing::ops(data));
