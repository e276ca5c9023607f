//! Audio I/O behind a trait, and the file backend (WAV in as a microphone paced in real time, WAV out).
//!
//! The rule for every backend: its callbacks only move samples through a [`sample_ring`](crate::sample_ring) —
//! the microphone callback pushes into a [`SampleProducer`], the speaker callback pops from a [`SampleConsumer`]
//! (silence when it is empty). Nothing else happens in a callback: no allocation, no lock, no I/O, no logging.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// The file backend: a WAV file read as a microphone, paced in real time in 10 ms chunks (then silence), and
/// what is played written to a WAV file (48 kHz mono 32-bit float by default). Either side may be absent
/// (silence in, nothing out). No system dependencies.
#[derive(Clone, Debug, Default)]
pub struct FileAudio {
    /// WAV file played as the microphone (any rate and channel count; integer or float samples).
    pub input: Option<PathBuf>,
    /// WAV file written with what the speaker plays.
    pub output: Option<PathBuf>,
    /// Format of the output file.
    pub output_format: Option<AudioFormat>,
    input_format: Option<AudioFormat>,
}

impl FileAudio {
    /// Reads `input` (if any) as the microphone and writes what is played to `output` (if any).
    pub fn new(input: Option<PathBuf>, output: Option<PathBuf>) -> Result<Self, Error> {
        let input_format = match &input {
            Some(path) => {
                let r = hound::WavReader::open(path).map_err(|e| Error::Wav(e.to_string()))?;
                let spec = r.spec();
                Some(AudioFormat { rate_hz: spec.sample_rate, channels: spec.channels })
            }
            None => None,
        };
        Ok(Self { input, output, output_format: None, input_format })
    }
}

/// Reads a whole WAV file as interleaved f32 samples.
pub fn read_wav(path: &std::path::Path) -> Result<(AudioFormat, Vec<f32>), Error> {
    let mut r = hound::WavReader::open(path).map_err(|e| Error::Wav(e.to_string()))?;
    let spec = r.spec();
    let format = AudioFormat { rate_hz: spec.sample_rate, channels: spec.channels };
    let samples: Result<Vec<f32>, _> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            r.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect()
        }
    };
    Ok((format, samples.map_err(|e| Error::Wav(e.to_string()))?))
}

/// Writes interleaved f32 samples to a 32-bit float WAV file.
pub fn write_wav(path: &std::path::Path, format: AudioFormat, samples: &[f32]) -> Result<(), Error> {
    let spec = hound::WavSpec {
        channels: format.channels,
        sample_rate: format.rate_hz,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| Error::Wav(e.to_string()))?;
    for &s in samples {
        w.write_sample(s).map_err(|e| Error::Wav(e.to_string()))?;
    }
    w.finalize().map_err(|e| Error::Wav(e.to_string()))
}

impl AudioBackend for FileAudio {
    fn input_format(&self) -> AudioFormat {
        self.input_format.unwrap_or(AudioFormat::MONO_48K)
    }

    fn output_format(&self) -> AudioFormat {
        self.output_format.unwrap_or(AudioFormat::MONO_48K)
    }

    fn start(&mut self, mut mic: SampleProducer, mut speaker: SampleConsumer) -> Result<Box<dyn AudioStreams>, Error> {
        let input = match &self.input {
            Some(path) => read_wav(path)?.1,
            None => Vec::new(),
        };
        let (in_fmt, out_fmt) = (self.input_format(), self.output_format());
        let output = self.output.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let input_enabled = Arc::new(AtomicBool::new(true));
        let enabled = Arc::clone(&input_enabled);
        // One thread stands for both device callbacks: every 10 ms it pushes 10 ms of the file and pops 10 ms for
        // the speaker. Reading and writing the files happens outside the "callback" (before and after the loop).
        let thread = std::thread::Builder::new().name("voice-file-audio".into()).spawn(move || {
            let in_chunk = (in_fmt.rate_hz / 100) as usize * usize::from(in_fmt.channels);
            let mut out_chunk = vec![0.0f32; (out_fmt.rate_hz / 100) as usize * usize::from(out_fmt.channels)];
            let silence = vec![0.0f32; in_chunk];
            let mut played = Vec::with_capacity(out_chunk.len() * 100 * 60);
            let (start, mut pos, mut ticks) = (Instant::now(), 0usize, 0u32);
            while !flag.load(Ordering::Relaxed) {
                let end = (pos + in_chunk).min(input.len());
                let chunk = if pos < end { &input[pos..end] } else { &silence[..] };
                // A released microphone captures nothing; the file keeps its real-time position.
                if enabled.load(Ordering::Relaxed) {
                    mic.push(chunk);
                }
                pos = end;
                speaker.pop_or_silence(&mut out_chunk);
                if output.is_some() {
                    played.extend_from_slice(&out_chunk);
                }
                ticks += 1;
                let deadline = start + Duration::from_millis(10) * ticks;
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
            match output {
                Some(path) => write_wav(&path, out_fmt, &played),
                None => Ok(()),
            }
        })?;
        Ok(Box::new(FileStreams { stop, input_enabled, thread }))
    }
}

#[derive(Debug)]
struct FileStreams {
    stop: Arc<AtomicBool>,
    input_enabled: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), Error>>,
}

impl AudioStreams for FileStreams {
    fn set_input_enabled(&self, enabled: bool) {
        self.input_enabled.store(enabled, Ordering::Relaxed);
    }

    fn stop(self: Box<Self>) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| Error::Stopped)?
    }
}
