//! # voice-codec — Opus capture and playback pipelines (work in progress)
//!
//! CPU-only: no threads, no devices, no sockets. Capture: resample, DSP, VAD, Opus encode. Playback: carry out the
//! jitter buffer's decisions (decode, FEC, PLC, time-stretch), per-user volume, mix.
//!
//! Status: this crate is being built under its own issue; nothing but this notice exists yet.
#![forbid(unsafe_code)]
