//! Sans-IO server-side mixing (an MCU) for the voice stack.
//!
//! A [`Mixer`] serves one room. It is fed the room's opened audio packets (the Opus payload, with the sender's
//! public id, sequence number, timestamp and arrival time) and keeps, per talker, what a client keeps: an adaptive
//! jitter buffer ([`voice_jitter`]) and a playback pipeline ([`voice_codec`]: decode, in-band FEC, concealment,
//! time-stretch). Every frame period ([`Mixer::poll_timeout`] / [`Mixer::handle_timeout`]) it takes one frame from
//! every talker and produces, for each listener in mixed mode, the mix of every talker except that listener:
//!
//! - a listener who is talking in this frame gets its own **mix-minus** (everyone else), encoded by its own
//!   encoder;
//! - every other listener gets the **shared mix** (everyone), encoded **once** for all of them.
//!
//! Each output ([`Mixer::poll_output`]) names its recipients and the talkers in the mix (so clients still show who
//! speaks). The encoders run Opus with in-band FEC (bitrate and complexity configurable). After construction and
//! once every talker and listener was added, nothing allocates per frame.
//!
//! What it does **not** do: open sockets, seal or frame packets (the server seals each output with the room key,
//! as the mix's sender), decide who listens to the mix (the server's policy), or read a clock (time comes in).
//! A listener that moves between its own mix-minus and the shared mix hears packets from another encoder: Opus
//! decodes any packet, and the change falls on the frame where the listener starts or stops talking.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use voice_mixer::{Mixer, MixerConfig, Recipients};
//! use voice_proto::{PublicId, Seq, Timestamp};
//!
//! let t0 = Instant::now();
//! let mut mixer = Mixer::new(MixerConfig::default(), t0)?;
//! let (alice, bob, carol) = (PublicId(1), PublicId(2), PublicId(3));
//! for id in [alice, bob, carol] {
//!     mixer.add_listener(id)?;
//! }
//! // One Opus frame of alice (from her encoder; here a packet of digital silence would do as well).
//! let mut encoder = voice_codec::CapturePipeline::new(voice_codec::CaptureConfig::default())?;
//! let tone: Vec<f32> = (0..960).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
//! encoder.push(&tone)?;
//! let Some(voice_codec::CaptureFrame::Packet { payload, .. }) = encoder.poll_frame()? else { unreachable!() };
//! let packet = Bytes::copy_from_slice(payload);
//! mixer.handle_audio(t0, alice, Seq(1), Timestamp(0), false, packet)?;
//! // Frame periods pass; alice's frame plays once the jitter buffer's start-up delay has passed.
//! let mut now = t0;
//! let mut heard_alice = false;
//! for _ in 0..10 {
//!     now += Duration::from_millis(20);
//!     mixer.handle_timeout(now)?;
//!     while let Some(out) = mixer.poll_output() {
//!         if out.members == [alice] {
//!             heard_alice = true;
//!             // Bob and carol share one encode; alice gets no mix of herself alone.
//!             assert!(matches!(out.recipients, Recipients::Shared(ids) if ids == [bob, carol]));
//!         }
//!     }
//! }
//! assert!(heard_alice);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod mixer;

pub use error::MixerError;
pub use mixer::{MixOutput, Mixer, MixerConfig, MixerStats, Recipients};
