//! # voice-relay — the relay core and its servers (work in progress)
//!
//! A sans-IO `Relay` (sessions, rooms, whisper lists, zero-copy fan-out) and thin tokio drivers for UDP and the TCP
//! control channel. The relay forwards Opus ciphertext it never decrypts.
//!
//! Status: this crate is being built under its own issue; nothing but this notice exists yet.
#![forbid(unsafe_code)]
