//! Test support for the voice stack — never published, never a dependency of a published crate's library.
//!
//! - [`Rng`]: the seeded PRNG every simulation, harness and fuzz body draws from (SplitMix64: the same sequence on
//!   every platform).
//! - Network traces ([`TracePacket`], [`parse_csv`], [`generate`] with its [`Model`]s) and the jitter-buffer
//!   [`replay`] that measures what a listener would get on one (the `replay` example prints it as JSON, and with
//!   `--audio` plays real speech through it).
//! - [`audio`]: deterministic speech-like test signals and codec measurement harnesses (correlation, encoding a
//!   signal, FEC recovery under loss).
//! - [`fuzzing`]: the bodies of the cargo-fuzz targets in `fuzz/`, shared with the corpus-replay tests here so that
//!   stable Rust runs exactly what the fuzzer runs.
//!
//! ```
//! use voice_sim::{Model, TraceSpec};
//!
//! let trace = voice_sim::generate(&TraceSpec { model: Model::Jitter20, seed: 1, packets: 500, drift_ppm: 0.0 });
//! let report = voice_sim::replay(&trace, voice_jitter::Config::default(), 0).expect("valid config");
//! assert_eq!(report.sent, 500);
//! assert!(report.concealed_pct() < 1.0);
//! ```
#![forbid(unsafe_code)]

pub mod audio;
pub mod fuzzing;
mod replay;
mod rng;
mod trace;

pub use replay::{PlayedFrame, Report, replay};
pub use rng::Rng;
pub use trace::{Model, TracePacket, TraceSpec, generate, parse_csv};
