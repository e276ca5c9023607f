//! Fuzz target `jitter`: arbitrary pushes and playout ticks; the body is `voice_sim::fuzzing::jitter`, which the
//! corpus-replay test (`voice-sim/tests/corpus_jitter.rs`) also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_sim::fuzzing::jitter(data));
