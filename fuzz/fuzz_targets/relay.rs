//! Fuzz target `relay`: arbitrary datagrams, control frames and time steps into the sans-IO relay core; the body is
//! `voice_sim::fuzzing::relay_inputs`, which `voice-sim/tests/corpus_relay.rs` also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_sim::fuzzing::relay_inputs(data));
