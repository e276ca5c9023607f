//! # voice-jitter — adaptive jitter buffer (work in progress)
//!
//! Sans-IO: packets are pushed with their arrival time and every frame period the caller asks for a playout
//! decision; the buffer decides, it never touches audio. No clock reads, no threads.
//!
//! Status: the playout decision type ([`Playout`]) is defined; the buffer itself is being built under its own
//! issue.
#![forbid(unsafe_code)]

mod decision;

pub use decision::{Action, Playout, Stretch};
