//! Fuzz target `audio_open`: the body is `voice_sim::fuzzing::audio_open`, which voice-proto's corpus and property
//! tests also run on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_sim::fuzzing::audio_open(data));
