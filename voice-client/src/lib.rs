//! # voice-client — the client core (work in progress)
//!
//! A sans-IO `Session` (login → join → hello → streaming, resume, roaming), a jitter buffer and decoder per remote
//! speaker, and audio I/O behind a trait (cpal, or WAV files).
//!
//! Status: this crate is being built under its own issue; nothing but this notice exists yet.
#![forbid(unsafe_code)]
