//! The file backend (feature `wav`, on by default): a WAV file as a microphone paced in real time, what is played
//! written to a WAV file; and reading / writing WAV files.
#![allow(
    clippy::disallowed_methods,
    reason = "the file backend stands in for a sound card: its device thread is paced by the wall clock"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{AudioBackend, AudioFormat, AudioStreams, Error, SampleConsumer, SampleProducer};

/// The file backend: a WAV file read as a microphone, paced in real time in 10 ms chunks (then silence), and
/// what is played written to a WAV file (48 kHz mono 32-bit float by default) as it plays: created at start,
/// streamed by a writer thread (memory stays bounded however long the run), finalized at stop; what was still queued
/// for the speaker at stop is written too (up to a second of it). Either side may be absent (silence in, nothing
/// out). No system dependencies.
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
    let mut w = wav_writer(path, format)?;
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
        let stop = Arc::new(AtomicBool::new(false));
        // What is played goes through a ring to a writer thread that streams it into the file: memory stays
        // bounded however long the run, and the paced thread never allocates or touches the disk.
        let (mut played, writer) = match &self.output {
            Some(path) => {
                let file = wav_writer(path, out_fmt)?;
                let (tx, rx) = crate::sample_ring(out_fmt.rate_hz as usize * usize::from(out_fmt.channels));
                let done = Arc::new(AtomicBool::new(false));
                (Some(tx), Some((spawn_writer(file, rx, Arc::clone(&done))?, done)))
            }
            None => (None, None),
        };
        let flag = Arc::clone(&stop);
        let input_enabled = Arc::new(AtomicBool::new(true));
        let enabled = Arc::clone(&input_enabled);
        // One thread stands for both device callbacks: every 10 ms it pushes 10 ms of the file and pops 10 ms for
        // the speaker. Reading the input file happens before the loop; writing the output, on the writer thread.
        // It returns how many played samples the ring to the writer could not take (the disk fell behind by > 1 s).
        let spawned = std::thread::Builder::new().name("voice-file-audio".into()).spawn(move || {
            let mut unwritten = 0usize;
            let in_chunk = (in_fmt.rate_hz / 100) as usize * usize::from(in_fmt.channels);
            let mut out_chunk = vec![0.0f32; (out_fmt.rate_hz / 100) as usize * usize::from(out_fmt.channels)];
            let silence = vec![0.0f32; in_chunk];
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
                if let Some(tx) = &mut played {
                    unwritten += out_chunk.len() - tx.push(&out_chunk);
                }
                ticks += 1;
                let deadline = start + Duration::from_millis(10) * ticks;
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
            // A file has no deadline to miss: what was queued for the speaker when the streams stopped is written
            // too, so the file holds everything handed to the device.
            if let Some(tx) = &mut played {
                loop {
                    let n = speaker.pop(&mut out_chunk);
                    if n == 0 {
                        break;
                    }
                    unwritten += n - tx.push(&out_chunk[..n]);
                }
            }
            unwritten
        });
        // From here on, dropping the streams (or failing to start them) ends both threads and finalizes the file.
        let streams = FileStreams { stop, input_enabled, thread: None, writer };
        let mut streams = Box::new(streams);
        streams.thread = Some(spawned?);
        Ok(streams)
    }
}

/// A 32-bit float WAV file created at `path` for `format`.
fn wav_writer(path: &std::path::Path, format: AudioFormat) -> Result<WavFile, Error> {
    let spec = hound::WavSpec {
        channels: format.channels,
        sample_rate: format.rate_hz,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    hound::WavWriter::create(path, spec).map_err(|e| Error::Wav(e.to_string()))
}

type WavFile = hound::WavWriter<std::io::BufWriter<std::fs::File>>;

/// The thread writing the output file.
type Writer = JoinHandle<Result<(), Error>>;

/// How often the writer thread empties the ring into the file.
const WRITE_PERIOD: Duration = Duration::from_millis(50);

/// Streams what `rx` receives into `file` until `stop` is set (after the last push) and the ring is empty;
/// finalizes the file.
fn spawn_writer(
    mut file: WavFile,
    mut rx: SampleConsumer,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<(), Error>>, Error> {
    let thread = std::thread::Builder::new().name("voice-file-writer".into()).spawn(move || {
        let mut buf = vec![0.0f32; 4096];
        loop {
            // Read the flag first: it is set after the last push, so that push is in the ring by then.
            let stopping = stop.load(Ordering::Acquire);
            loop {
                let n = rx.pop(&mut buf);
                if n == 0 {
                    break;
                }
                for &s in &buf[..n] {
                    file.write_sample(s).map_err(|e| Error::Wav(e.to_string()))?;
                }
            }
            if stopping {
                return file.finalize().map_err(|e| Error::Wav(e.to_string()));
            }
            std::thread::sleep(WRITE_PERIOD);
        }
    })?;
    Ok(thread)
}

#[derive(Debug)]
struct FileStreams {
    stop: Arc<AtomicBool>,
    input_enabled: Arc<AtomicBool>,
    /// The paced thread; it returns the number of played samples that could not be written.
    thread: Option<JoinHandle<usize>>,
    /// The output file's writer and its stop flag, if there is an output.
    writer: Option<(Writer, Arc<AtomicBool>)>,
}

impl FileStreams {
    /// Stops the paced thread first (it may push one last chunk), then lets the writer drain the ring and finalize.
    fn finish(&mut self) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        let unwritten = match self.thread.take() {
            Some(t) => t.join().map_err(|_| Error::Stopped),
            None => Ok(0),
        };
        let written = match self.writer.take() {
            Some((w, done)) => {
                done.store(true, Ordering::Release);
                w.join().map_err(|_| Error::Stopped)?
            }
            None => Ok(()),
        };
        match unwritten? {
            0 => written,
            n => written.and(Err(Error::Wav(format!("{n} played samples were not written: the disk fell behind")))),
        }
    }
}

impl Drop for FileStreams {
    fn drop(&mut self) {
        // Not stopped with `stop`: end the threads anyway (errors have no one to go to).
        let _ = self.finish();
    }
}

impl AudioStreams for FileStreams {
    fn set_input_enabled(&self, enabled: bool) {
        self.input_enabled.store(enabled, Ordering::Relaxed);
    }

    fn stop(mut self: Box<Self>) -> Result<(), Error> {
        self.finish()
    }
}
