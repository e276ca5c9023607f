//! The sound-card backend (feature `cpal`): cpal input and output streams whose callbacks only move samples
//! through the sample rings, device selection by name or the default device, and recovery when a device
//! disappears (the streams are rebuilt on the same or the default device).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

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

impl CpalAudio {
    /// Opens the named devices (`None`, or a name that is not found: the default device) and reads their
    /// default formats.
    pub fn new(input_name: Option<&str>, output_name: Option<&str>) -> Result<Self, Error> {
        let format = |input: bool| -> Result<AudioFormat, Error> {
            let device = find(input, if input { input_name } else { output_name })
                .ok_or_else(|| no_device(if input { "input" } else { "output" }))?;
            let config = if input { device.default_input_config() } else { device.default_output_config() };
            let config = config.map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
            Ok(AudioFormat { rate_hz: config.sample_rate().0, channels: config.channels() })
        };
        Ok(Self {
            input_name: input_name.map(Into::into),
            output_name: output_name.map(Into::into),
            input: format(true)?,
            output: format(false)?,
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
        let formats = (self.input, self.output);
        // cpal streams are not `Send` on every platform: one thread owns them for their whole life.
        let thread = std::thread::Builder::new()
            .name("voice-cpal".into())
            .spawn(move || supervise(names, formats, mic, speaker, &stop_rx, &enabled))?;
        Ok(Box::new(CpalStreams { stop: stop_tx, input_enabled, thread }))
    }
}

fn supervise(
    (input_name, output_name): (Option<String>, Option<String>),
    (input, output): (AudioFormat, AudioFormat),
    mic: SampleProducer,
    speaker: SampleConsumer,
    stop: &Receiver<()>,
    input_enabled: &AtomicBool,
) -> Result<(), Error> {
    let (mic_home, mic_back) = mpsc::channel();
    let (spk_home, spk_back) = mpsc::channel();
    let (mut mic, mut speaker) = (Some(mic), Some(speaker));
    loop {
        let failed = Arc::new(AtomicBool::new(false));
        let streams = build(
            (input_name.as_deref(), output_name.as_deref()),
            (input, output),
            (
                Mic { ring: mic.take(), home: mic_home.clone() },
                Speaker { ring: speaker.take(), home: spk_home.clone() },
            ),
            &failed,
        );
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

/// Builds and starts both streams; `None` if a device is missing or refuses (the supervisor retries).
fn build(
    (input_name, output_name): (Option<&str>, Option<&str>),
    (input, output): (AudioFormat, AudioFormat),
    (mut mic, mut speaker): (Mic, Speaker),
    failed: &Arc<AtomicBool>,
) -> Option<(cpal::Stream, cpal::Stream)> {
    let config = |f: AudioFormat| cpal::StreamConfig {
        channels: f.channels,
        sample_rate: cpal::SampleRate(f.rate_hz),
        buffer_size: cpal::BufferSize::Default,
    };
    let (f1, f2) = (Arc::clone(failed), Arc::clone(failed));
    let in_dev = find(true, input_name)?;
    let out_dev = find(false, output_name)?;
    // The callbacks: move samples through the rings, nothing else (no allocation, lock, I/O or logging).
    let in_stream = in_dev
        .build_input_stream(
            &config(input),
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                if let Some(r) = &mut mic.ring {
                    r.push(data);
                }
            },
            move |_| f1.store(true, Ordering::Relaxed),
            None,
        )
        .ok()?;
    let out_stream = out_dev
        .build_output_stream(
            &config(output),
            move |data: &mut [f32], _: &cpal::OutputCallbackInfo| match &mut speaker.ring {
                Some(r) => r.pop_or_silence(data),
                None => data.fill(0.0),
            },
            move |_| f2.store(true, Ordering::Relaxed),
            None,
        )
        .ok()?;
    in_stream.play().ok()?;
    out_stream.play().ok()?;
    Some((in_stream, out_stream))
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
