//! Fuzz target `control_stream`: the body is `voice_sim::fuzzing::control_stream`, which voice-proto's corpus and
//! property tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_sim::fuzzing::control_stream(data));
