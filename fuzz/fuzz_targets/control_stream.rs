//! Fuzz target `control_stream`: the body is `voice_proto::fuzzing::control_stream`, which the corpus-replay test also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto::fuzzing::control_stream(data));
