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
//! ## Run loop
//! - [`JitterBuffer::push`] each received packet with its arrival time (duplicates, late packets and overflow are
//!   refused with a [`PushError`] and counted; none is fatal);
//! - once per playout slot, [`JitterBuffer::poll_playout`] → exactly one [`Playout`]. A slot lasts one frame
//!   plus the stretch the audio side applied, so call it when the audio side needs the next frame;
//! - read [`JitterBuffer::stats`] whenever (NetEQ / W3C-style counters and gauges).
//!
//! ## How it decides
//! Every packet's delay is measured relative to the fastest packet of the last ~2 s (`arrival − media time`,
//! minus its sliding minimum). The adaptive target is a high quantile (97.5%) of a decaying histogram of those
//! delays (forgetting factor 0.9993 per packet, a memory of ~30 s), combined with a short-term estimate — a peak
//! of the recent delays that jumps up with the first late packet of a spike and decays by 5% per packet — as
//! `max(quantile, 0.6 × peak)`, plus a 2 ms margin, bounded by [`Config::min_delay`] and [`Config::max_delay`].
//! The playout delay follows the target through [`Stretch`] requests (shrink up to half a frame per slot when
//! above, expand up to a quarter when below), never by dropping frames that are there.
//!
//! When the frame due is missing, the buffer weighs waiting (conceal this slot, keep the frame's place: costs
//! delay, saves the frame if it is only late) against giving up (costs the frame):
//! - nothing buffered (a delay spike, a burst loss): wait up to 500 ms past the target — a spike's packets then
//!   play late instead of being lost, and the delay shrinks back within about a second;
//! - later frames buffered: wait until playout reaches the 99% delay quantile (at least 40 ms past the target on
//!   a jittery link, nothing on a clean one);
//! - giving up with the successor buffered decodes its in-band FEC ([`Action::DecodeFec`]); otherwise PLC. If
//!   playout is already a frame or more behind its target, a missing frame is skipped without a slot (the slots
//!   concealed while waiting stood for it).
//!
//! Robust to reordering, duplicates (played once), late packets (counted, never played out of order), sequence
//! wraparound (extended keys from [`voice_proto::Seq::distance`]), sender restarts and large jumps (flush and
//! re-anchor), talkspurts after DTX (`end_of_talkspurt` → silence, then a fresh start on the next packet without
//! concealment) and clock drift (±0.1% is absorbed by stretching).
//!
//! [`Policy::Fixed`] is the seed plan's watermark buffer, kept as the baseline.
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
pub mod sim;

pub use buffer::{JitterBuffer, Packet};
#[doc(hidden)]
pub use config::Tuning;
pub use config::{Config, Policy};
pub use decision::{Action, Playout, Stretch};
pub use error::{ConfigError, PushError};
pub use stats::Stats;
