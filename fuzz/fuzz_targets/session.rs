//! Fuzz target `session`: the client's sans-IO session fed arbitrary control bytes, datagrams, time and calls; the
//! body is `voice_sim::fuzzing::session`, which the corpus-replay test (`voice-sim/tests/corpus_session.rs`) also
//! runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_sim::fuzzing::session(data));
