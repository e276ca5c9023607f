//! Audio dumper: writes the signal at chosen pipeline stages to WAV files (32-bit float) for debugging.
//!
//! A debugging tool, not part of the real-time contract: opening a file allocates and writing does file I/O. Attach
//! one with [`CapturePipeline::set_dumper`](crate::CapturePipeline::set_dumper) or
//! [`PlaybackPipeline::set_dumper`](crate::PlaybackPipeline::set_dumper).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavSpec, WavWriter};

use crate::CodecError;

/// A tap point in a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DumpStage {
    /// Microphone input as pushed, at the device rate and channel count: `raw_mic.wav`.
    RawMic,
    /// The 48 kHz frame after gain, noise suppression and the gates, just before Opus: `post_dsp.wav`.
    PostDsp,
    /// The 48 kHz output of the decoder (decode, FEC, PLC, silence, stretch), before volume: `post_opus_decode.wav`.
    PostOpusDecode,
}

impl DumpStage {
    /// The file name this stage is written to.
    pub const fn file_name(self) -> &'static str {
        match self {
            Self::RawMic => "raw_mic.wav",
            Self::PostDsp => "post_dsp.wav",
            Self::PostOpusDecode => "post_opus_decode.wav",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::RawMic => 0,
            Self::PostDsp => 1,
            Self::PostOpusDecode => 2,
        }
    }
}

type Writer = WavWriter<BufWriter<File>>;

/// Writes the enabled stages into one directory. Files are created on the first write of a stage (with that
/// stream's rate and channel count) and finalized by [`Dumper::finish`] or on drop.
pub struct Dumper {
    dir: PathBuf,
    enabled: [bool; 3],
    writers: [Option<Writer>; 3],
}

impl std::fmt::Debug for Dumper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dumper").field("dir", &self.dir).field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

impl Dumper {
    /// A dumper writing `stages` into the existing directory `dir`.
    pub fn new(dir: impl AsRef<Path>, stages: &[DumpStage]) -> Self {
        let mut enabled = [false; 3];
        for s in stages {
            enabled[s.index()] = true;
        }
        Self { dir: dir.as_ref().to_path_buf(), enabled, writers: [None, None, None] }
    }

    /// Whether `stage` is being written.
    pub fn is_enabled(&self, stage: DumpStage) -> bool {
        self.enabled[stage.index()]
    }

    /// Appends interleaved `samples` of `channels` channels at `rate_hz` to the stage's file. The format of a file is
    /// fixed by its first write.
    pub fn write(&mut self, stage: DumpStage, samples: &[f32], rate_hz: u32, channels: u16) -> Result<(), CodecError> {
        let i = stage.index();
        if !self.enabled[i] {
            return Ok(());
        }
        let writer = match &mut self.writers[i] {
            Some(w) => w,
            slot => {
                let spec =
                    WavSpec { channels, sample_rate: rate_hz, bits_per_sample: 32, sample_format: SampleFormat::Float };
                slot.insert(WavWriter::create(self.dir.join(stage.file_name()), spec)?)
            }
        };
        for &s in samples {
            writer.write_sample(s)?;
        }
        Ok(())
    }

    /// Finalizes every file (writes the WAV headers' lengths).
    pub fn finish(mut self) -> Result<(), CodecError> {
        for w in self.writers.iter_mut().filter_map(Option::take) {
            w.finalize()?;
        }
        Ok(())
    }
}
