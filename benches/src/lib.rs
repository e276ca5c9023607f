//! Criterion benches of the voice crates live in `benches/benches/`; this library is empty on purpose (Cargo needs
//! a target for the package). Run them with `cargo bench -p voice-benches`.
#![forbid(unsafe_code)]
