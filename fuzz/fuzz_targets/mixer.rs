//! Fuzz target `mixer`: the server-mixing core fed arbitrary packets, listeners and time; the body is
//! `voice_sim::fuzzing::mixer`, which the corpus-replay test (`voice-sim/tests/corpus_mixer.rs`) also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_sim::fuzzing::mixer(data));
