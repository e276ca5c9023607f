//! Fuzz target `audio_open`: the body is `voice_proto::fuzzing::audio_open`, which the corpus-replay test also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto::fuzzing::audio_open(data));
