//! Fuzz target `codec_decode`: arbitrary bytes as Opus packets and playout decisions through the decoder pipeline;
//! the body is `voice_sim::fuzzing::codec_decode`, which `voice-codec/tests/corpus.rs` also runs on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| voice_sim::fuzzing::codec_decode(data));
