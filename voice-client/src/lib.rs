//! # voice-client — the client core (work in progress)
//!
//! What it will be: a sans-IO `Session` (login → join → hello → streaming, resume, roaming), a jitter buffer and a
//! decoder per remote speaker, audio I/O behind a trait (cpal, or WAV files), and the threads that drive them.
//!
//! What is here today:
//! * the [`NetworkConditioner`] — seed 003's "chaos simulator", which injects loss, latency, jitter and reordering
//!   into a datagram stream, with settings changeable at runtime. Like every core of the stack it reads no clock and
//!   does no I/O: time comes in as an argument;
//! * [`sample_ring`] — the lock-free SPSC sample ring that is the only thing audio callbacks touch (no allocation,
//!   no lock, no I/O in a callback; `tests/realtime.rs` proves the no-allocation part on every path).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use voice_client::{ConditionerConfig, NetworkConditioner};
//!
//! let config = ConditionerConfig {
//!     loss: 0.05,
//!     latency: Duration::from_millis(40),
//!     jitter: Duration::from_millis(10),
//!     ..ConditionerConfig::default()
//! };
//! let mut net = NetworkConditioner::new(config, 1)?;
//! let start = Instant::now();
//! for seq in 0..100u32 {
//!     net.push(start + Duration::from_millis(20 * u64::from(seq)), seq);
//! }
//! let mut delivered = 0;
//! while let Some(due) = net.poll_timeout() {
//!     while net.poll(due).is_some() {
//!         delivered += 1;
//!     }
//! }
//! assert_eq!(delivered + net.stats().dropped, 100);
//! # Ok::<(), voice_client::ConfigError>(())
//! ```
#![forbid(unsafe_code)]

mod audio;
mod conditioner;
#[cfg(feature = "tokio")]
mod driver;
mod error;
mod media;
mod ring;
mod session;

pub use audio::{AudioBackend, AudioFormat, AudioStreams, FileAudio, read_wav, write_wav};
pub use conditioner::{ConditionerConfig, ConditionerStats, NetworkConditioner};
#[cfg(feature = "tokio")]
pub use driver::{Client, ClientConfig};
pub use error::{ConfigError, Error};
pub use media::{Media, MediaConfig};
pub use ring::{RingStats, SampleConsumer, SampleProducer, sample_ring};
pub use session::{
    ConnectionCommand, EncoderHint, Event, Session, SessionConfig, SessionStats, SpeakerStats, State, TalkMode,
};
