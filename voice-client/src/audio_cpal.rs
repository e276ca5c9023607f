//! The sound-card backend (feature `cpal`): cpal input and output streams whose callbacks only move samples
//! through the sample rings, device selection by name or the default device, and recovery when a device
//! disappears (the streams are rebuilt on the same or the default device).
//!
//! Streams are 32-bit float when the device offers it at its default rate and channels; otherwise the device's
//! own format (16- or 32-bit integer, unsigned 16-bit), converted in the callbacks through a small stack buffer
//! (no allocation). A device whose streams cannot be opened at all fails [`AudioBackend::start`] with cpal's
//! reason; later failures (a device unplugged) are retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample};

use crate::audio::{AudioBackend, AudioFormat, AudioStreams};
use crate::{Error, SampleConsumer, SampleProducer};

/// Pause between two attempts to rebuild a lost device's streams.
const RETRY: Duration = Duration::from_millis(500);

/// Sound-card audio through cpal (ALSA on Linux, CoreAudio, WASAPI).
#[derive(Debug)]
pub struct CpalAudio {
    input_name: Option<String>,
    output_name: Option<String>,
    input: AudioFormat,
    output: AudioFormat,
    /// Sample formats of the device streams (the rings are always f32).
    input_sample: SampleFormat,
    output_sample: SampleFormat,
}

/// Names of the input and output devices of the default host (for a device picker).
pub fn device_names() -> Result<(Vec<String>, Vec<String>), Error> {
    let host = cpal::default_host();
    let names = |devices: Result<Vec<cpal::Device>, _>| -> Vec<String> {
        devices.map(|d| d.iter().filter_map(|d| d.name().ok()).collect()).unwrap_or_default()
    };
    let inputs = names(host.input_devices().map(Iterator::collect));
    let outputs = names(host.output_devices().map(Iterator::collect));
    Ok((inputs, outputs))
}

fn find(input: bool, name: Option<&str>) -> Option<cpal::Device> {
    let host = cpal::default_host();
    let named = name.and_then(|name| {
        let mut devices = if input { host.input_devices().ok()? } else { host.output_devices().ok()? };
        devices.find(|d| d.name().is_ok_and(|n| n == name))
    });
    named.or_else(|| if input { host.default_input_device() } else { host.default_output_device() })
}

fn no_device(what: &str) -> Error {
    Error::Io(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {what} audio device")))
}

fn device_error(e: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::other(e.to_string()))
}

/// The stream format for `device`: its default rate and channels, in f32 if it offers f32 there, else in its
/// default sample format if the callbacks can convert it.
fn stream_format(device: &cpal::Device, input: bool) -> Result<(AudioFormat, SampleFormat), Error> {
    let config = if input { device.default_input_config() } else { device.default_output_config() };
    let config = config.map_err(device_error)?;
    let format = AudioFormat { rate_hz: config.sample_rate().0, channels: config.channels() };
    let offers_f32 = |mut ranges: Box<dyn Iterator<Item = cpal::SupportedStreamConfigRange>>| {
        ranges.any(|r| {
            r.sample_format() == SampleFormat::F32
                && r.channels() == format.channels
                && (r.min_sample_rate().0..=r.max_sample_rate().0).contains(&format.rate_hz)
        })
    };
    let ranges: Option<Box<dyn Iterator<Item = _>>> = if input {
        device.supported_input_configs().ok().map(|r| Box::new(r) as Box<dyn Iterator<Item = _>>)
    } else {
        device.supported_output_configs().ok().map(|r| Box::new(r) as Box<dyn Iterator<Item = _>>)
    };
    let sample = if config.sample_format() == SampleFormat::F32 || ranges.is_some_and(offers_f32) {
        SampleFormat::F32
    } else {
        config.sample_format()
    };
    match sample {
        SampleFormat::F32 | SampleFormat::I16 | SampleFormat::I32 | SampleFormat::U16 => Ok((format, sample)),
        other => Err(device_error(format!(
            "the {} device's sample format {other} is not supported (f32, i16, i32 or u16 are)",
            if input { "input" } else { "output" }
        ))),
    }
}

impl CpalAudio {
    /// Opens the named devices (`None`, or a name that is not found: the default device) and reads their
    /// default formats.
    pub fn new(input_name: Option<&str>, output_name: Option<&str>) -> Result<Self, Error> {
        let format = |input: bool| -> Result<(AudioFormat, SampleFormat), Error> {
            let device = find(input, if input { input_name } else { output_name })
                .ok_or_else(|| no_device(if input { "input" } else { "output" }))?;
            stream_format(&device, input)
        };
        let ((input, input_sample), (output, output_sample)) = (format(true)?, format(false)?);
        Ok(Self {
            input_name: input_name.map(Into::into),
            output_name: output_name.map(Into::into),
            input,
            output,
            input_sample,
            output_sample,
        })
    }
}

/// The microphone callback's state. When the stream is dropped (device lost), the producer goes back to the
/// supervisor through `home`, so the rebuilt stream continues with the same ring.
struct Mic {
    ring: Option<SampleProducer>,
    home: Sender<SampleProducer>,
}

impl Drop for Mic {
    fn drop(&mut self) {
        if let Some(r) = self.ring.take() {
            let _ = self.home.send(r);
        }
    }
}

/// The speaker callback's state (see [`Mic`]).
struct Speaker {
    ring: Option<SampleConsumer>,
    home: Sender<SampleConsumer>,
}

impl Drop for Speaker {
    fn drop(&mut self) {
        if let Some(r) = self.ring.take() {
            let _ = self.home.send(r);
        }
    }
}

impl AudioBackend for CpalAudio {
    fn input_format(&self) -> AudioFormat {
        self.input
    }

    fn output_format(&self) -> AudioFormat {
        self.output
    }

    fn start(&mut self, mic: SampleProducer, speaker: SampleConsumer) -> Result<Box<dyn AudioStreams>, Error> {
        let (stop_tx, stop_rx) = mpsc::channel();
        let input_enabled = Arc::new(AtomicBool::new(true));
        let enabled = Arc::clone(&input_enabled);
        let names = (self.input_name.clone(), self.output_name.clone());
        let formats = (
            Formats { ring: self.input, sample: self.input_sample },
            Formats { ring: self.output, sample: self.output_sample },
        );
        let (ready_tx, ready_rx) = mpsc::channel();
        // cpal streams are not `Send` on every platform: one thread owns them for their whole life.
        let thread = std::thread::Builder::new()
            .name("voice-cpal".into())
            .spawn(move || supervise(names, formats, (mic, speaker), &stop_rx, &enabled, ready_tx))?;
        // The first attempt decides: a device that cannot stream at all is an error now, not a silent retry.
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Box::new(CpalStreams { stop: stop_tx, input_enabled, thread })),
            Ok(Err(reason)) => {
                let _ = thread.join();
                Err(device_error(format!("audio streams could not start: {reason}")))
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Stopped)
            }
        }
    }
}

/// One side's formats: the ring's (rate, channels; always f32) and the device stream's sample format.
#[derive(Clone, Copy, Debug)]
struct Formats {
    ring: AudioFormat,
    sample: SampleFormat,
}

fn supervise(
    (input_name, output_name): (Option<String>, Option<String>),
    (input, output): (Formats, Formats),
    (mic, speaker): (SampleProducer, SampleConsumer),
    stop: &Receiver<()>,
    input_enabled: &AtomicBool,
    ready: Sender<Result<(), String>>,
) -> Result<(), Error> {
    let (mic_home, mic_back) = mpsc::channel();
    let (spk_home, spk_back) = mpsc::channel();
    let (mut mic, mut speaker) = (Some(mic), Some(speaker));
    let mut ready = Some(ready);
    loop {
        let failed = Arc::new(AtomicBool::new(false));
        let built = build(
            (input_name.as_deref(), output_name.as_deref()),
            (input, output),
            (
                Mic { ring: mic.take(), home: mic_home.clone() },
                Speaker { ring: speaker.take(), home: spk_home.clone() },
            ),
            &failed,
        );
        // The first attempt's outcome goes back to `start`; a first failure ends this thread.
        if let Some(ready) = ready.take() {
            let first = built.as_ref().map(|_| ()).map_err(Clone::clone);
            let failed_first = first.is_err();
            let _ = ready.send(first);
            if failed_first {
                return Ok(());
            }
        }
        let streams = built.ok();
        // Run until stopped or until a device fails; pause the microphone while it is released.
        let mut input_playing = true;
        let stopped = loop {
            let want = input_enabled.load(Ordering::Relaxed);
            if let Some((input, _)) = &streams {
                if want != input_playing {
                    let _ = if want { input.play().map_err(|_| ()) } else { input.pause().map_err(|_| ()) };
                    input_playing = want;
                }
            }
            match stop.recv_timeout(Duration::from_millis(100)) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break true,
                Err(mpsc::RecvTimeoutError::Timeout) if failed.load(Ordering::Relaxed) || streams.is_none() => {
                    break false;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };
        drop(streams);
        // The dropped callbacks handed their ring ends back.
        mic = mic_back.recv_timeout(RETRY).ok();
        speaker = spk_back.recv_timeout(RETRY).ok();
        if stopped || mic.is_none() || speaker.is_none() {
            return Ok(());
        }
        if stop.recv_timeout(RETRY).is_ok() {
            return Ok(());
        }
    }
}

/// Builds and starts both streams; the reason if a device is missing or refuses (the supervisor retries).
fn build(
    (input_name, output_name): (Option<&str>, Option<&str>),
    (input, output): (Formats, Formats),
    (mic, speaker): (Mic, Speaker),
    failed: &Arc<AtomicBool>,
) -> Result<(cpal::Stream, cpal::Stream), String> {
    let in_dev = find(true, input_name).ok_or("no input device")?;
    let out_dev = find(false, output_name).ok_or("no output device")?;
    let in_stream = match input.sample {
        SampleFormat::I16 => input_stream::<i16>(&in_dev, input.ring, mic, failed),
        SampleFormat::I32 => input_stream::<i32>(&in_dev, input.ring, mic, failed),
        SampleFormat::U16 => input_stream::<u16>(&in_dev, input.ring, mic, failed),
        _ => input_stream::<f32>(&in_dev, input.ring, mic, failed),
    }
    .map_err(|e| format!("input: {e}"))?;
    let out_stream = match output.sample {
        SampleFormat::I16 => output_stream::<i16>(&out_dev, output.ring, speaker, failed),
        SampleFormat::I32 => output_stream::<i32>(&out_dev, output.ring, speaker, failed),
        SampleFormat::U16 => output_stream::<u16>(&out_dev, output.ring, speaker, failed),
        _ => output_stream::<f32>(&out_dev, output.ring, speaker, failed),
    }
    .map_err(|e| format!("output: {e}"))?;
    in_stream.play().map_err(|e| format!("input: {e}"))?;
    out_stream.play().map_err(|e| format!("output: {e}"))?;
    Ok((in_stream, out_stream))
}

fn stream_config(f: AudioFormat) -> cpal::StreamConfig {
    cpal::StreamConfig {
        channels: f.channels,
        sample_rate: cpal::SampleRate(f.rate_hz),
        buffer_size: cpal::BufferSize::Default,
    }
}

/// The microphone stream in sample type `T`. Its callback only moves samples into the ring (converted to f32).
fn input_stream<T>(
    device: &cpal::Device,
    format: AudioFormat,
    mut mic: Mic,
    failed: &Arc<AtomicBool>,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let failed = Arc::clone(failed);
    device.build_input_stream(
        &stream_config(format),
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            if let Some(r) = &mut mic.ring {
                push_converted(r, data);
            }
        },
        move |_| failed.store(true, Ordering::Relaxed),
        None,
    )
}

/// The speaker stream in sample type `T`. Its callback only moves samples out of the ring (silence when empty).
fn output_stream<T>(
    device: &cpal::Device,
    format: AudioFormat,
    mut speaker: Speaker,
    failed: &Arc<AtomicBool>,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample + FromSample<f32>,
{
    let failed = Arc::clone(failed);
    device.build_output_stream(
        &stream_config(format),
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| match &mut speaker.ring {
            Some(r) => pop_converted(r, data),
            None => data.fill(T::EQUILIBRIUM),
        },
        move |_| failed.store(true, Ordering::Relaxed),
        None,
    )
}

/// Samples converted per step in the callbacks (a stack buffer: no allocation).
const CONVERT_CHUNK: usize = 256;

/// Pushes device samples into the f32 ring, converting through a stack buffer (f32 samples are copied through it
/// too).
fn push_converted<T: Sample>(ring: &mut SampleProducer, data: &[T])
where
    f32: FromSample<T>,
{
    let mut buf = [0.0f32; CONVERT_CHUNK];
    for chunk in data.chunks(CONVERT_CHUNK) {
        for (o, &s) in buf.iter_mut().zip(chunk) {
            *o = f32::from_sample(s);
        }
        ring.push(&buf[..chunk.len()]);
    }
}

/// Fills device samples from the f32 ring (silence where it runs dry), converting through a stack buffer.
fn pop_converted<T: Sample + FromSample<f32>>(ring: &mut SampleConsumer, data: &mut [T]) {
    let mut buf = [0.0f32; CONVERT_CHUNK];
    for chunk in data.chunks_mut(CONVERT_CHUNK) {
        let buf = &mut buf[..chunk.len()];
        ring.pop_or_silence(buf);
        for (o, &s) in chunk.iter_mut().zip(buf.iter()) {
            *o = T::from_sample(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_samples_convert_both_ways() {
        let (mut p, mut c) = crate::sample_ring(2048);
        let input: Vec<i16> = (0..1000).map(|i| (i * 61 - 30_000) as i16).collect();
        push_converted(&mut p, &input);
        let mut back = vec![0i16; 1000];
        pop_converted(&mut c, &mut back);
        assert_eq!(back, input, "i16 → f32 → i16 is exact");
        // What the callbacks run allocates nothing.
        let info = allocation_counter::measure(|| {
            push_converted(&mut p, &input);
            pop_converted(&mut c, &mut back);
        });
        assert_eq!(info.count_total, 0, "conversion in the callbacks allocated");
        push_converted(&mut p, &[u16::MIN, 32_768, u16::MAX]);
        let mut f = [0.0f32; 3];
        assert_eq!(c.pop(&mut f), 3);
        assert_eq!(f[0], -1.0);
        assert_eq!(f[1], 0.0);
        assert!((f[2] - 1.0).abs() < 1e-4, "{f:?}");
        // A dry ring plays silence: the device's equilibrium (32 768 for u16).
        let mut out = [1u16; 600];
        pop_converted(&mut c, &mut out);
        assert!(out.iter().all(|&s| s == 32_768));
    }
}

#[derive(Debug)]
struct CpalStreams {
    stop: Sender<()>,
    input_enabled: Arc<AtomicBool>,
    thread: JoinHandle<Result<(), Error>>,
}

impl AudioStreams for CpalStreams {
    fn set_input_enabled(&self, enabled: bool) {
        self.input_enabled.store(enabled, Ordering::Relaxed);
    }

    fn stop(self: Box<Self>) -> Result<(), Error> {
        let _ = self.stop.send(());
        self.thread.join().map_err(|_| Error::Stopped)?
    }
}
