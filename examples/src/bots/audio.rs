//! An in-memory [`AudioBackend`] on a clock shared by every client of the process, for bots and the demo.
//!
//! * **Microphone**: a [`TalkScript`] — this talker's turns in a room's round-robin schedule. Every turn starts with a
//!   5 ms 1 kHz marker, then speech (generated, or a WAV's), then silence until the next talker's turn. The schedule
//!   starts when [`Clock::start`] is called (silence before), so every talker of the process is aligned.
//! * **Speaker**: an onset detector — the first sample above [`ONSET_THRESHOLD`] after at least [`ONSET_SILENCE`] of
//!   quiet is a heard turn start — and, optionally, a recording of everything played (the demo's WAV files).
//!
//! One thread per client stands for both device callbacks, paced every 10 ms like a sound card. Times:
//! * a marker is **captured** at the instant the 10 ms chunk carrying it was pushed into the microphone ring (the
//!   end of the chunk, as a device delivers it);
//! * a sample is **played** at the instant its 10 ms chunk was popped from the speaker ring plus its offset in the
//!   chunk (a device plays a chunk from the moment it takes it).
//!
//! Mouth-to-ear latency = played − captured, so it covers frame assembly, encode, seal, network, relay, jitter buffer,
//! decode and mix; not a real sound card's own buffers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use voice_client::{AudioBackend, AudioFormat, AudioStreams, Error, SampleConsumer, SampleProducer};

/// Samples per second (the backend is 48 kHz mono both ways).
pub const RATE_HZ: usize = 48_000;
/// Samples per 10 ms chunk.
const CHUNK: usize = RATE_HZ / 100;
/// Marker: 5 ms of 1 kHz at this amplitude.
const MARKER_AMPLITUDE: f32 = 0.5;
/// Marker length in samples (5 ms).
pub const MARKER_SAMPLES: usize = 240;
/// Level above which a played sample counts as sound.
pub const ONSET_THRESHOLD: f32 = 0.05;
/// Quiet needed before a sound counts as an onset.
pub const ONSET_SILENCE: Duration = Duration::from_millis(150);

/// The process-wide schedule origin: talkers are silent until it is set.
#[derive(Debug, Default)]
pub struct Clock(OnceLock<Instant>);

impl Clock {
    /// Starts the schedule at `at` (only the first call counts).
    pub fn start(&self, at: Instant) {
        let _ = self.0.set(at);
    }
    fn origin(&self) -> Option<Instant> {
        self.0.get().copied()
    }
}

/// One talker's turns: in every cycle of `cycle` samples, the turn starts at `offset` and plays `turn` (marker
/// included); `cycles` turns in all (then silence).
#[derive(Clone, Debug)]
pub struct TalkScript {
    /// Cycle length, samples.
    pub cycle: usize,
    /// Start of this talker's turn within the cycle, samples.
    pub offset: usize,
    /// What is said in each turn: the marker, then speech (shorter than the slot, so silence follows).
    pub turn: Arc<Vec<f32>>,
    /// Number of turns.
    pub cycles: usize,
}

impl TalkScript {
    /// The sample at `n` samples after the schedule origin.
    pub fn sample(&self, n: usize) -> f32 {
        if self.cycle == 0 || n < self.offset || n / self.cycle >= self.cycles {
            return 0.0;
        }
        let pos = n % self.cycle;
        pos.checked_sub(self.offset).and_then(|i| self.turn.get(i)).copied().unwrap_or(0.0)
    }

    /// Sample indices (after the origin) of every turn's marker.
    #[must_use]
    pub fn marker_positions(&self) -> Vec<usize> {
        (0..self.cycles).map(|c| c * self.cycle + self.offset).collect()
    }
}

/// Builds a turn: the marker, then `speech` (samples at 48 kHz).
#[must_use]
pub fn turn_with_marker(speech: &[f32]) -> Vec<f32> {
    let mut turn: Vec<f32> = (0..MARKER_SAMPLES)
        .map(|i| MARKER_AMPLITUDE * (2.0 * std::f32::consts::PI * 1_000.0 * i as f32 / RATE_HZ as f32).sin())
        .collect();
    turn.extend_from_slice(speech);
    turn
}

/// What a bot's audio did, readable while it runs and after it stopped.
#[derive(Debug, Default)]
pub struct Recording {
    /// When each marker was captured (pushed into the microphone ring), in turn order.
    pub markers: Vec<Instant>,
    /// When each onset was played.
    pub onsets: Vec<Instant>,
    /// Output sample index of each onset (in `played`, if recorded).
    pub onset_samples: Vec<usize>,
    /// Everything played, if recording was asked for.
    pub played: Vec<f32>,
}

/// The in-memory backend: a [`TalkScript`] (or silence) as microphone, an onset detector (and optional recorder) as
/// speaker.
#[derive(Debug)]
pub struct ScriptedAudio {
    clock: Arc<Clock>,
    script: Option<TalkScript>,
    record: bool,
    recording: Arc<Mutex<Recording>>,
}

impl ScriptedAudio {
    /// A backend speaking `script` (if any) on `clock`'s schedule; `record` keeps everything played.
    #[must_use]
    pub fn new(clock: Arc<Clock>, script: Option<TalkScript>, record: bool) -> Self {
        Self { clock, script, record, recording: Arc::default() }
    }

    /// What the backend captured and heard (shared: read it at any time).
    #[must_use]
    pub fn recording(&self) -> Arc<Mutex<Recording>> {
        Arc::clone(&self.recording)
    }
}

impl AudioBackend for ScriptedAudio {
    fn input_format(&self) -> AudioFormat {
        AudioFormat::MONO_48K
    }

    fn output_format(&self) -> AudioFormat {
        AudioFormat::MONO_48K
    }

    fn start(&mut self, mic: SampleProducer, speaker: SampleConsumer) -> Result<Box<dyn AudioStreams>, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let device = Device {
            clock: Arc::clone(&self.clock),
            script: self.script.clone(),
            record: self.record,
            recording: Arc::clone(&self.recording),
            mic,
            speaker,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new().name("bot-audio".into()).spawn(move || device.run())?;
        Ok(Box::new(Streams { stop, thread }))
    }
}

struct Device {
    clock: Arc<Clock>,
    script: Option<TalkScript>,
    record: bool,
    recording: Arc<Mutex<Recording>>,
    mic: SampleProducer,
    speaker: SampleConsumer,
    stop: Arc<AtomicBool>,
}

impl Device {
    fn run(mut self) {
        // A sound card's callbacks run at real-time priority; this thread stands in for them.
        let _ = voice_client::raise_current_thread_priority();
        let mut mic_chunk = [0.0f32; CHUNK];
        let mut out_chunk = [0.0f32; CHUNK];
        let start = Instant::now();
        let mut ticks = 0u32;
        // Next sample index of the script (set at the first tick after the origin) and the next marker to log.
        let mut next_sample: Option<usize> = None;
        let markers = self.script.as_ref().map(TalkScript::marker_positions).unwrap_or_default();
        let mut next_marker = 0usize;
        let mut quiet = 0usize;
        let quiet_needed = (ONSET_SILENCE.as_secs_f64() * RATE_HZ as f64) as usize;
        let mut played_samples = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            let tick_at = start + Duration::from_millis(10) * ticks;
            if next_sample.is_none() {
                // The script starts at the first tick at or after the origin (each device is within 10 ms of it).
                if self.clock.origin().is_some_and(|origin| tick_at >= origin) {
                    next_sample = Some(0);
                }
            }
            let chunk_start = next_sample;
            match (&self.script, next_sample.as_mut()) {
                (Some(script), Some(n)) => {
                    for (i, s) in mic_chunk.iter_mut().enumerate() {
                        *s = script.sample(*n + i);
                    }
                    *n += CHUNK;
                }
                _ => mic_chunk.fill(0.0),
            }
            self.mic.push(&mic_chunk);
            let pushed_at = Instant::now();
            self.speaker.pop_or_silence(&mut out_chunk);
            let popped_at = Instant::now();
            let mut rec = match self.recording.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            if let Some(c) = chunk_start {
                while markers.get(next_marker).is_some_and(|&m| m < c + CHUNK) {
                    if markers[next_marker] >= c {
                        rec.markers.push(pushed_at);
                    }
                    next_marker += 1;
                }
            }
            for (j, &x) in out_chunk.iter().enumerate() {
                if x.abs() >= ONSET_THRESHOLD {
                    if quiet >= quiet_needed {
                        rec.onsets.push(popped_at + Duration::from_secs_f64(j as f64 / RATE_HZ as f64));
                        rec.onset_samples.push(played_samples + j);
                    }
                    quiet = 0;
                } else {
                    quiet += 1;
                }
            }
            if self.record {
                rec.played.extend_from_slice(&out_chunk);
            }
            played_samples += CHUNK;
            drop(rec);
            ticks += 1;
            let deadline = start + Duration::from_millis(10) * ticks;
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

#[derive(Debug)]
struct Streams {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl AudioStreams for Streams {
    fn stop(self: Box<Self>) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| Error::Stopped)
    }
}

/// For each marker (captured at `markers[k]`), the index of the first onset a listener played at or after it,
/// within `window`; `None` if it was not heard.
#[must_use]
pub fn first_onsets(markers: &[Instant], onsets: &[Instant], window: Duration) -> Vec<Option<usize>> {
    markers
        .iter()
        .map(|&m| {
            let first = onsets.partition_point(|&o| o < m);
            onsets.get(first).filter(|&&o| o - m <= window).map(|_| first)
        })
        .collect()
}

/// Mouth-to-ear latencies of one listener: for each marker, the first onset it played at or after it, within
/// `window` ([`first_onsets`]). Returns the latencies and the number of markers never heard.
#[must_use]
pub fn match_onsets(markers: &[Instant], onsets: &[Instant], window: Duration) -> (Vec<Duration>, usize) {
    let matched = first_onsets(markers, onsets, window);
    let latencies: Vec<Duration> = matched.iter().zip(markers).filter_map(|(o, &m)| o.map(|i| onsets[i] - m)).collect();
    let missed = matched.len() - latencies.len();
    (latencies, missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_turns_and_markers() {
        let turn = Arc::new(turn_with_marker(&[0.25; 10]));
        let s = TalkScript { cycle: 1_000, offset: 500, turn, cycles: 2 };
        assert_eq!(s.marker_positions(), vec![500, 1_500]);
        assert_eq!(s.sample(499), 0.0);
        assert_eq!(s.sample(500), 0.0); // sin(0)
        assert!(s.sample(505).abs() > 0.1);
        assert_eq!(s.sample(500 + MARKER_SAMPLES), 0.25);
        assert_eq!(s.sample(500 + MARKER_SAMPLES + 10), 0.0);
        assert_eq!(s.sample(2_505), 0.0, "after the last cycle");
    }

    #[test]
    fn onsets_match_the_first_after_each_marker() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let markers = [ms(0), ms(1_000), ms(2_000)];
        let onsets = [ms(60), ms(300), ms(1_070)];
        let (lat, missed) = match_onsets(&markers, &onsets, Duration::from_millis(500));
        assert_eq!(lat, vec![Duration::from_millis(60), Duration::from_millis(70)]);
        assert_eq!(missed, 1);
    }
}
