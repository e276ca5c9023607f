//! # voice-jitter — adaptive jitter buffer (work in progress)
//!
//! Sans-IO: packets are pushed with their arrival time and every frame period the caller asks for a playout
//! decision; the buffer decides, it never touches audio. No clock reads, no threads.
//!
//! Status: this crate is being built under its own issue; nothing but this notice exists yet.
#![forbid(unsafe_code)]
