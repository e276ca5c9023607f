//! Fuzz target `datagram`: the body is `voice_proto::fuzzing::datagram`, which the corpus-replay test also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_proto::fuzzing::datagram(data));
