//! Mouth-to-ear latency through the real driver: voice-relay's tokio driver on loopback, two threaded `Client`s,
//! and an in-memory audio backend whose "device callbacks" run on a thread paced by the wall clock every `PERIOD`
//! (5 ms = 240 samples, a typical low-latency device period; `VC_PERIOD_MS` overrides it).
//!
//! Alice's capture callback delivers a marker (a 5 ms 1 kHz burst starting at the first sample of a callback's
//! chunk) every 300 ms; bob's playback callback looks for its onset in the chunk it hands to the device. Latency
//! = (time of that playback callback + position of the onset in its chunk) − (time of the capture callback that
//! delivered the marker). Included: the mic ring, the media thread's frame-period deadline loop (frame assembly),
//! DSP + Opus encode, seal, both UDP hops through the relay over loopback, the network threads, open, jitter
//! buffer, decode, mix, and the speaker ring. Not included: a real sound card's own buffers (about one period
//! on each side with this pacing). No network delay is injected.
//!
//! A measurement, not a test (it runs on the wall clock): `cargo test -p voice-client --release --test mouth_to_ear
//! -- --ignored --nocapture --test-threads 1`. The deterministic counterpart is `tests/latency.rs` (simulation).
#![allow(
    clippy::disallowed_methods,
    reason = "a wall-clock measurement: the in-memory device is paced like a sound card"
)]
#![cfg(feature = "tokio")]

mod loopback;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loopback::{TestRelay, run_for};
use voice_client::{AudioBackend, AudioFormat, AudioStreams, Error, SampleConsumer, SampleProducer};

const MARKERS: usize = 10;
const MARKER_EVERY: Duration = Duration::from_millis(300);
const THRESHOLD: f32 = 0.05;

fn period() -> Duration {
    let ms = std::env::var("VC_PERIOD_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    Duration::from_millis(ms)
}

/// What the test device saw: capture callback times of the markers, and playback onsets.
#[derive(Debug, Default)]
struct Log {
    /// Set to start sending markers.
    armed: bool,
    sent: Vec<Instant>,
    heard: Vec<Instant>,
}

/// An in-memory device. With `markers`, its capture side sends the marker bursts; its playback side records
/// every onset after silence.
#[derive(Debug)]
struct MemAudio {
    log: Arc<Mutex<Log>>,
    markers: bool,
}

#[derive(Debug)]
struct MemStreams {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl AudioStreams for MemStreams {
    fn stop(self: Box<Self>) -> Result<(), Error> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| Error::Stopped)
    }
}

impl AudioBackend for MemAudio {
    fn input_format(&self) -> AudioFormat {
        AudioFormat::MONO_48K
    }

    fn output_format(&self) -> AudioFormat {
        AudioFormat::MONO_48K
    }

    fn start(&mut self, mut mic: SampleProducer, mut speaker: SampleConsumer) -> Result<Box<dyn AudioStreams>, Error> {
        let (log, markers) = (Arc::clone(&self.log), self.markers);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let period = period();
            let n = 48 * period.as_millis() as usize;
            let silence = vec![0.0f32; n];
            let burst: Vec<f32> = (0..n.max(240))
                .map(|i| if i < 240 { 0.5 * (std::f32::consts::TAU * i as f32 / 48.0).sin() } else { 0.0 })
                .collect();
            let mut out = vec![0.0f32; n];
            let (start, mut ticks) = (Instant::now(), 0u32);
            let mut next_marker: Option<Instant> = None;
            let mut quiet_since_onset = true;
            while !flag.load(Ordering::Relaxed) {
                // Capture callback.
                let now = Instant::now();
                let mut chunk = &silence[..];
                if markers {
                    let mut log = log.lock().unwrap();
                    if log.armed && log.sent.len() < MARKERS {
                        let due = *next_marker.get_or_insert(now);
                        if now >= due {
                            log.sent.push(now);
                            next_marker = Some(due + MARKER_EVERY);
                            chunk = &burst[..];
                        }
                    }
                }
                let mut pos = 0;
                while pos < chunk.len() {
                    let k = (chunk.len() - pos).min(n);
                    mic.push(&chunk[pos..pos + k]);
                    pos += k;
                    if pos < chunk.len() {
                        break; // a burst longer than a period: the rest is dropped (never with 5 ms periods)
                    }
                }
                // Playback callback.
                let now = Instant::now();
                speaker.pop_or_silence(&mut out);
                if let Some(o) = out.iter().position(|x| x.abs() > THRESHOLD) {
                    if quiet_since_onset {
                        log.lock().unwrap().heard.push(now + Duration::from_micros(o as u64 * 1000 / 48));
                    }
                    quiet_since_onset = false;
                } else {
                    quiet_since_onset = true;
                }
                ticks += 1;
                let deadline = start + period * ticks;
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
        });
        Ok(Box::new(MemStreams { stop, thread }))
    }
}

/// Latencies (ms) of the markers heard.
fn measure(room: &str) -> Vec<f64> {
    let relay = TestRelay::start();
    let (alice_log, bob_log) = (Arc::new(Mutex::new(Log::default())), Arc::new(Mutex::new(Log::default())));
    let bob = relay.client("bob", room, Box::new(MemAudio { log: Arc::clone(&bob_log), markers: false }));
    let alice = relay.client("alice", room, Box::new(MemAudio { log: Arc::clone(&alice_log), markers: true }));
    // Let the jitter buffer settle on the stream of silence frames first.
    run_for(&bob, Duration::from_secs(1));
    bob_log.lock().unwrap().heard.clear();
    alice_log.lock().unwrap().armed = true;
    run_for(&bob, MARKER_EVERY * MARKERS as u32 + Duration::from_millis(500));
    eprintln!(
        "bob: {:?}; ring losses alice {:?}, bob {:?}",
        bob.stats().speakers,
        alice.ring_losses(),
        bob.ring_losses()
    );
    alice.shutdown().unwrap();
    bob.shutdown().unwrap();
    let sent = alice_log.lock().unwrap().sent.clone();
    let heard = bob_log.lock().unwrap().heard.clone();
    // Per marker, the first onset heard after it and before the next one (a concealed or stretched frame may
    // show a second onset; it is not a marker).
    let mut lat = Vec::new();
    for (k, &s) in sent.iter().enumerate() {
        let next = sent.get(k + 1).copied();
        if let Some(&h) = heard.iter().find(|&&h| h >= s && next.is_none_or(|n| h < n)) {
            lat.push((h - s).as_secs_f64() * 1000.0);
        }
    }
    let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
    let worst = lat.iter().copied().fold(0.0, f64::max);
    let best = lat.iter().copied().fold(f64::MAX, f64::min);
    eprintln!(
        "{room}: device period {:?}, {} markers sent, {} heard; mouth-to-ear (capture callback → playback callback) \
         mean {mean:.1} ms, best {best:.1} ms, worst {worst:.1} ms; all {lat:.1?}",
        period(),
        sent.len(),
        heard.len()
    );
    // Loose on purpose: a loaded machine may lose a marker to a late frame.
    assert!(lat.len() >= 3, "markers heard: {} of {}", lat.len(), sent.len());
    lat
}

#[test]
#[ignore = "a wall-clock measurement: run it by hand with --ignored --nocapture (see the file's docs)"]
fn mouth_to_ear_20ms_frames_through_the_driver() {
    // The figures are printed (see the targets); a test on real threads asserts no timing.
    let lat = measure("lobby");
    assert!(lat.iter().all(|l| l.is_finite() && *l >= 0.0), "{lat:?}");
}

#[test]
#[ignore = "a wall-clock measurement: run it by hand with --ignored --nocapture (see the file's docs)"]
fn mouth_to_ear_10ms_frames_through_the_driver() {
    // The figures are printed (see the targets); a test on real threads asserts no timing.
    let lat = measure("fast");
    assert!(lat.iter().all(|l| l.is_finite() && *l >= 0.0), "{lat:?}");
}
