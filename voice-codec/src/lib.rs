//! # voice-codec — Opus capture and playback pipelines
//!
//! The audio half of the voice stack, between the device callbacks and the network:
//!
//! ```text
//! capture:  device chunks (any size, rate, channels) ─► 48 kHz + layout (rubato) ─► exact frames (10/20/40/60 ms)
//!           ─► gain ─► noise suppression (nnnoiseless) ─► echo cancellation (aec3, feature `aec`)
//!           ─► VAD gate (earshot + energy onset, hangover, pre-roll) ─► push-to-talk ─► Opus ─► DTX
//! playback: voice_jitter::Playout ─► decode | FEC of next packet | PLC | silence/comfort noise ─► seam fades
//!           ─► time-stretch ─► volume ─► Mixer: sum of speakers ─► soft clip ─► device rate + channels
//! ```
//!
//! **libopus is a C library this crate needs at build time.** It is linked statically, and found or built in this
//! order: a system libopus that `pkg-config` finds (Debian/Ubuntu `libopus-dev`, Fedora `opus-devel`, Homebrew
//! `opus`, …); a directory named by `LIBOPUS_LIB_DIR`; otherwise the libopus source bundled with the `audiopus_sys`
//! crate is compiled, which needs **CMake** and a C compiler (with CMake 4, also set
//! `CMAKE_POLICY_VERSION_MINIMUM=3.5`: the bundled CMakeLists is older than CMake 3.5). Nothing else needs system
//! libraries; the default build needs no audio headers.
//!
//! Besides the pipelines, a plain [`Decoder`] (`decode`, `decode_fec`, `conceal`) decodes packets you schedule
//! yourself. The playout decisions [`PlaybackPipeline::play`] carries out ([`Playout`], [`Action`], [`Stretch`]) and
//! the packet numbering they name ([`Seq`], [`Timestamp`]) come from the voice-jitter and voice-proto crates and are
//! re-exported here.
//!
//! What a listener hears, and how the pipelines take care of it:
//!
//! - **Seamless concealment.** libopus conceals in 2.5 ms blocks (10 ms in SILK and hybrid streams); what a block
//!   produces beyond the asked length is kept and played first in the next slot, so the decoder's state never runs
//!   ahead of the output. Decoded audio that resumes after a concealment or a silence fades in from the level
//!   reached before it (20 ms; the first 2.5 ms cross-fade from the previous slot's end, so there is no step) and is
//!   not time-stretched. A silence right after audio (talkspurt end, stalled stream) fades the concealed
//!   continuation out over 10 ms instead of stepping to zero.
//! - **Comfort noise.** In [`Action::Silence`] slots a speaker who has sent audio gets
//!   low-level noise shaped like the background of their recently decoded quiet frames (at most −40 dBFS, faded in,
//!   cross-faded out when audio resumes); never for a speaker that sent nothing or digital silence.
//!   [`PlaybackConfig::comfort_noise`] turns it off.
//! - **DTX.** With [`OpusSettings::dtx`], frames libopus encodes as DTX packets *and* frames of stationary
//!   background (within a few dB of a tracked noise floor for more than 200 ms) are gated as
//!   [`GateReason::Dtx`]; libopus alone keeps sending background noise above about −45 dBFS.
//! - **No clipped onsets.** The voice gate opens at once on an energy onset over the noise floor (closing again
//!   within 100 ms unless earshot confirms speech), and the most recent gated audio ([`VadConfig::preroll_ms`]) is
//!   sent when it opens, as [`CaptureFrame::Preroll`] frames that carry their position in media time
//!   (`age_samples` before the current position: the caller must not advance its timestamp for them). Push-to-talk
//!   never pre-rolls audio from before the key was pressed.
//!
//! What it does **not** do: no threads, no audio devices, no sockets, no clock reads, no jitter buffering (that is
//! voice-jitter's job; this crate carries out its decisions). Every call is plain CPU work on buffers the pipelines
//! allocate once at construction; steady-state processing allocates nothing (see `tests/no_alloc.rs`). Echo
//! cancellation (aec3) is behind the `aec` feature.
//!
//! Errors are typed ([`CodecError`]) and only for caller mistakes and library failures: a corrupt packet from the
//! network is concealed and counted ([`PlaybackStats::corrupt`]), never a panic or an error.
//!
//! ```
//! use voice_codec::{
//!     Action, CaptureConfig, CaptureFrame, ChannelLayout, Mixer, PlaybackConfig, PlaybackPipeline, Playout, Seq,
//!     Stretch, Timestamp,
//! };
//!
//! # fn main() -> Result<(), voice_codec::CodecError> {
//! // A 44.1 kHz stereo microphone, sent as 20 ms mono Opus frames.
//! let mut capture = voice_codec::CapturePipeline::new(CaptureConfig {
//!     device_rate_hz: 44_100,
//!     device_channels: 2,
//!     ..CaptureConfig::default()
//! })?;
//! let mut playback = PlaybackPipeline::new(PlaybackConfig::default())?;
//! let mut mixer = Mixer::new(ChannelLayout::Mono, 48_000, 2)?;
//!
//! let chunk: Vec<f32> = (0..441 * 2).map(|i| ((i / 2) as f32 * 0.05).sin() * 0.3).collect();
//! // (With a voice gate, also handle CaptureFrame::Preroll: send it at `timestamp - age_samples`.)
//! let mut seq = 0u64;
//! for _ in 0..10 {
//!     capture.push(&chunk)?; // 10 ms per push
//!     while let Some(frame) = capture.poll_frame()? {
//!         if let CaptureFrame::Packet { payload, .. } = frame {
//!             let playout = Playout {
//!                 action: Action::Play {
//!                     seq: Seq(seq),
//!                     timestamp: Timestamp((seq * 960) as u32),
//!                     payload: payload.to_vec(),
//!                 },
//!                 stretch: Stretch::None,
//!             };
//!             seq += 1;
//!             let report = playback.play(&playout)?;
//!             assert_eq!(report.samples, 960);
//!         }
//!     }
//! }
//! let device_audio = mixer.mix([&mut playback], 960)?;
//! assert!(device_audio.len() <= 2 * 960);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod capture;
mod comfort;
mod config;
mod decoder;
mod dsp;
mod dump;
mod error;
mod mixer;
mod playback;
mod preroll;
mod resample;
mod stretch;

pub use capture::{CAPTURE_BUFFER_SAMPLES, CaptureFrame, CapturePipeline, GateReason};
pub use config::{
    Application, CaptureConfig, ChannelLayout, FrameDuration, MAX_PREROLL_MS, MAX_SLOT_SAMPLES, OpusSettings,
    SAMPLE_RATE_HZ, VadConfig,
};
pub use decoder::{Decoder, packet_samples};
pub use dump::{DumpStage, Dumper};
pub use error::{CodecError, OpusError};
pub use mixer::{MAX_MIX_SAMPLES, Mixer, soft_clip};
pub use playback::{PlaybackConfig, PlaybackPipeline, PlaybackStats, SlotReport, SlotSource};
// The playout decisions `PlaybackPipeline::play` carries out, and the packet numbering they name (see the crate docs).
pub use voice_jitter::{Action, Playout, Seq, Stretch, Timestamp};

/// Resamples a whole interleaved clip from `in_rate_hz` to `out_rate_hz` with the pipelines' resampler (a
/// convenience for tools and tests; it allocates). The resampler's delay is kept at the start of the output.
pub fn resample_clip(
    input: &[f32],
    channels: usize,
    in_rate_hz: u32,
    out_rate_hz: u32,
) -> Result<Vec<f32>, CodecError> {
    config::validate_device(in_rate_hz, u16::try_from(channels).unwrap_or(0))?;
    config::validate_device(out_rate_hz, u16::try_from(channels).unwrap_or(0))?;
    if channels == 0 || !input.len().is_multiple_of(channels) {
        return Err(CodecError::PartialFrame { len: input.len(), channels });
    }
    let mut r = resample::StreamResampler::new(in_rate_hz, out_rate_hz, channels)?;
    let mut out = Vec::new();
    r.process(input, |b| out.extend_from_slice(b))?;
    Ok(out)
}
