//! # voice-jitter — a sans-IO adaptive jitter buffer
//!
//! Packets are pushed with their arrival time; once per playout slot (one frame period: 10, 20, 40 or 60 ms,
//! default 20) the caller asks for a [`Playout`] decision: play a packet, decode the in-band FEC of the next packet
//! for a missing frame, conceal, or output silence — plus a time-stretch request that moves the buffer depth toward
//! its target. The buffer decides; the audio side (voice-codec) carries the decision out.
//!
//! What it does **not** do: no clock reads (`now` is always an argument), no threads, no sockets, no audio
//! processing, no decoding. Push and decision never allocate after [`JitterBuffer::new`].
//!
//! ```text
//!   network ──push(now, Packet)──▶ ┌──────────────┐ ──poll_playout(now)──▶ Playout { action, stretch }
//!                                  │ min-heap by  │                        Play / DecodeFec / Conceal / Silence
//!                                  │ extended seq │                        + Shrink / Expand samples
//!                                  └──────────────┘
//! ```
//!
//! Policies ([`Policy`]): the seed plan's fixed watermark, and the adaptive default (NetEQ-like delay statistics
//! with a short-term peak, app-set [`Config::min_delay`] / [`Config::max_delay`], waiting for a late frame when that
//! is cheaper than losing it, giving up sooner when FEC can recover it). Robust to reordering, duplicates, late
//! packets, sequence wraparound, sender restarts, talkspurts after DTX and clock drift.
//!
//! ```
//! use std::time::Duration;
//! use voice_jitter::{Action, Config, JitterBuffer, Packet};
//! use voice_proto::{Seq, Timestamp};
//!
//! let mut jb = JitterBuffer::new(Config::default()).expect("the default config is valid");
//! let frame = Duration::from_millis(20);
//! let mut now = Duration::ZERO;
//! let mut played = 0;
//! for i in 0..50u32 {
//!     // Frames arrive every 20 ms; frame 10 is lost in the network.
//!     if i != 10 {
//!         let packet = Packet {
//!             seq: Seq(1_000 + u64::from(i)),
//!             timestamp: Timestamp(960 * i),
//!             end_of_talkspurt: false,
//!             payload: [i as u8; 4],
//!         };
//!         jb.push(now, packet).expect("fresh packet");
//!     }
//!     let decision = jb.poll_playout(now);
//!     if matches!(decision.action, Action::Play { .. }) {
//!         played += 1;
//!     }
//!     now += frame;
//! }
//! assert!(played >= 45);
//! // Frame 10 is concealed at its slot (nothing after it has arrived yet) and/or recovered from frame 11's FEC.
//! let stats = jb.stats();
//! assert!((1..=2).contains(&(stats.fec_recovered + stats.concealed_frames)));
//! ```
#![forbid(unsafe_code)]

mod buffer;
mod config;
mod decision;
mod error;
mod estimator;
mod stats;

#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod sim;

pub use buffer::{JitterBuffer, Packet};
#[doc(hidden)]
pub use config::Tuning;
pub use config::{Config, Policy};
pub use decision::{Action, Playout, Stretch};
pub use error::{ConfigError, PushError};
pub use stats::Stats;
