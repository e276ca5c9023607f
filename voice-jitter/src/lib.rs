//! # voice-jitter — a sans-IO adaptive jitter buffer
//!
//! Packets are pushed with their arrival time; once per playout slot (one frame period: 10, 20, 40 or 60 ms,
//! default 20; a silence slot may be shorter) the caller asks for a [`Playout`] decision: play a packet, decode the
//! in-band FEC of the next packet for a missing frame, conceal, or output silence — plus a time-stretch request
//! that moves the buffer depth toward its target. The buffer decides; the audio side (voice-codec) carries the
//! decision out. Best asked when the previous slot's audio is about to be needed (as a driver that mixes when
//! its device runs low does): a talkspurt then starts exactly at the target delay, within a quarter frame of its
//! first packet's arrival.
//!
//! What it does **not** do: no clock reads (`now` is always an argument, a [`std::time::Instant`] of the caller's
//! clock), no threads, no sockets, no audio processing, no decoding. Push and decision never allocate after
//! [`JitterBuffer::new`].
//!
//! ```text
//!   network ──push(now, Packet)──▶ ┌──────────────┐ ──poll_playout(now)──▶ Playout { action, stretch }
//!                                  │ min-heap by  │                        Play / DecodeFec / Conceal / Silence
//!                                  │ extended seq │                        + Shrink / Expand samples
//!                                  └──────────────┘
//! ```
//!
//! ## Run loop
//! - [`JitterBuffer::push`] each received packet with its arrival time, an `Instant` (duplicates, late packets and
//!   overflow are refused with a [`PushError`] and counted; none is fatal);
//! - once per playout slot, [`JitterBuffer::poll_playout`] → exactly one [`Playout`]. A slot lasts one frame
//!   plus the stretch the audio side applied, so call it when the audio side needs the next frame;
//! - read [`JitterBuffer::stats`] whenever (NetEQ / W3C-style counters and gauges).
//!
//! ## How it decides
//! The buffer is tuned for the ear: a concealed (PLC) slot is far more audible than a few milliseconds of constant
//! extra delay, an FEC-decoded frame or a small time-stretch, so it stretches rather than conceals while a frame is
//! only late, conceals only frames it has given up, and puts large delay changes into pauses.
//!
//! **Target.** Every packet's delay is measured relative to the fastest packet of the last ~2 s (`arrival − media
//! time`, minus its sliding minimum) into a decaying histogram (forgetting factor 0.9993 per packet, a memory of
//! ~30 s). The target is a quantile of it that depends on the measured loss rate (frames given up and never
//! arrived): on a lossless link the 99.7% quantile — every late frame is heard there, so the target keeps late
//! frames to a few per thousand — capped at 1.5× the 98% quantile (after a delay spike or with a heavy tail the high
//! quantile is not worth its delay); from 1% loss on, the 98% quantile (the lost frames' concealment dominates);
//! linear in between. It is combined with a short-term peak (jumps up with the first late packet of a spike, decays
//! by 5% per packet) as `max(quantile, 0.6 × peak)`, plus a 2 ms margin. When losses that FEC can recover are
//! frequent (above 0.8% of frames, frames decoded from FEC or concealed while their successor then played), the
//! target is at least the 95% quantile plus one frame, so the successor of a lost frame is there at its slot and
//! the frame is decoded from FEC instead of concealed. For the first 100 packets the target is at least 60 ms and the
//! largest delay seen. Everything is bounded by [`Config::min_delay`] and [`Config::max_delay`].
//!
//! **Stretch.** The playout delay follows the target through [`Stretch`] requests, never by dropping frames that are
//! there. A frame that is due soon (within the next three) and not buffered is expanded for: if the chance that it arrives
//! after its slot, given that it has not arrived yet (from the delay histogram and the loss rate), is 10% or more,
//! this slot asks for half a frame of expansion (preemptive expand) — the audio we have is stretched instead of
//! concealing the next slot. Below the target the slot expands by up to a quarter frame. Once the depth is more than a
//! 4 ms dead band above the target it shrinks back down to the target gently — at most a tenth of a frame per slot,
//! and only if the next missing frame stays very likely in time — and by up to half a frame only to drain a backlog
//! more than 40 ms above the target (after a spike). Larger reductions happen at talkspurt starts: after `END_OF_TALKSPURT` (or a stall) playout
//! restarts at the target, and the silence slot before the first frame is shrunk or expanded (inaudibly, by up to
//! half a frame) so that the frame starts exactly at the target whenever it arrived a frame or more ahead.
//!
//! **A missing frame.** When the frame due is not buffered:
//! - its successor is buffered: decode the successor's in-band FEC now ([`Action::DecodeFec`]) — a concealed slot
//!   while waiting would cost more than the FEC frame. (Its own packet, if it arrives later, is refused as late.)
//! - only later frames are buffered: this slot is concealed either way; the frame keeps its place (and plays next
//!   slot) only while it is likely to arrive within a slot, otherwise the concealed slot stands for it;
//! - nothing buffered (a delay spike, a burst loss): conceal and wait up to 500 ms past the target — a spike's
//!   packets then play late instead of being lost, and the backlog is drained fast afterwards;
//! - when a frame is given up after slots were concealed waiting for it (or playout is a frame or more behind its
//!   target), those slots stand for it and the missing frames: they are skipped without another slot.
//!
//! Robust to reordering, duplicates (played once), late packets (counted, never played out of order), sequence
//! wraparound (extended keys from [`voice_proto::Seq::distance`]), sender restarts and large jumps (flush and
//! re-anchor), talkspurts after DTX (`end_of_talkspurt` → silence, then a fresh start on the next packet without
//! concealment) and clock drift (±0.1% is absorbed by stretching).
//!
//! [`Policy::Fixed`] is a fixed watermark buffer, kept as a baseline to compare with.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use voice_jitter::{Action, Config, JitterBuffer, Packet, Seq, Timestamp};
//!
//! // The driver reads its clock and hands the time in; the buffer never reads one.
//! # #[allow(clippy::disallowed_methods, reason = "the example's driver reads the clock once, for its origin")]
//! let t0 = Instant::now();
//! let mut jb = JitterBuffer::new(Config::default(), t0).expect("the default config is valid");
//! let frame = Duration::from_millis(20);
//! let mut now = t0;
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

pub use buffer::{JitterBuffer, Packet};
#[doc(hidden)]
pub use config::Tuning;
pub use config::{Config, Policy};
pub use decision::{Action, Playout, Stretch};
pub use error::{ConfigError, PushError};
pub use stats::Stats;
/// The sequence number and media timestamp types a [`Packet`] carries (from voice-proto).
pub use voice_proto::{Seq, Timestamp};
