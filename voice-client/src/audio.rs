//! Audio I/O behind a trait.
//!
//! The rule for every backend: its callbacks only move samples through a [`sample_ring`](crate::sample_ring) —
//! the microphone callback pushes into a [`SampleProducer`], the speaker callback pops from a [`SampleConsumer`]
//! (silence when it is empty). Nothing else happens in a callback: no allocation, no lock, no I/O, no logging.

use crate::{Error, SampleConsumer, SampleProducer};

/// Sample format of one side of a device: rate and interleaved channel count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    /// Samples per second per channel.
    pub rate_hz: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl AudioFormat {
    /// 48 kHz mono, the pipelines' native format.
    pub const MONO_48K: Self = Self { rate_hz: 48_000, channels: 1 };
}

/// A source of microphone samples and a sink for speaker samples.
pub trait AudioBackend: Send + std::fmt::Debug {
    /// Format of the samples pushed into the microphone ring.
    fn input_format(&self) -> AudioFormat;
    /// Format of the samples popped from the speaker ring.
    fn output_format(&self) -> AudioFormat;
    /// Starts the streams: the backend's callbacks push microphone samples into `mic` and pop speaker samples from
    /// `speaker`, until the returned handle is stopped.
    fn start(&mut self, mic: SampleProducer, speaker: SampleConsumer) -> Result<Box<dyn AudioStreams>, Error>;
}

/// Running streams of an [`AudioBackend`].
pub trait AudioStreams: Send + std::fmt::Debug {
    /// Releases (`false`) or re-acquires (`true`) the microphone, e.g. while muted, so the system shows that
    /// nothing is captured. Speaker output is unaffected. The default does nothing.
    fn set_input_enabled(&self, enabled: bool) {
        let _ = enabled;
    }

    /// Stops the streams and releases the devices (for files: writes the output file to the end).
    fn stop(self: Box<Self>) -> Result<(), Error>;
}
