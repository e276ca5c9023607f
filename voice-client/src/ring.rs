//! The only thing audio callbacks touch: a lock-free, wait-free SPSC ring of `f32` samples (ringbuf), allocated
//! once, plus two atomic counters.
//!
//! * Capture: the input callback calls [`SampleProducer::push`] with what the device delivered; the media thread
//!   drains it with [`SampleConsumer::pop`]. Samples that do not fit are dropped and counted (an overrun means the
//!   media thread fell behind).
//! * Playback: the media thread [`SampleProducer::push`]es mixed samples; the output callback fills the device
//!   buffer with [`SampleConsumer::pop_or_silence`], which pads with silence and counts the missing samples (an
//!   underrun).
//!
//! Both calls return at once, never allocate, never lock, never log (`tests/realtime.rs` proves the first two on
//! every path; ringbuf's SPSC ring is made of two atomic indices, and the counters are atomics).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ringbuf::traits::{Consumer as _, Observer as _, Producer as _, Split as _};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Overrun / underrun counters shared by both ends, and the largest transfer each end has made (relaxed atomics:
/// counters, not synchronisation).
#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    silence: AtomicU64,
    /// Largest single [`SampleProducer::push`] so far (a capture device's period).
    largest_push: AtomicUsize,
    /// Largest single [`SampleConsumer::pop_or_silence`] so far (a playback device's period).
    largest_read: AtomicUsize,
}

/// What a ring has lost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Samples refused by a full ring (the consumer fell behind).
    pub dropped_samples: u64,
    /// Samples the consumer had to replace by silence (the producer fell behind).
    pub silence_samples: u64,
}

/// Writing end of a sample ring.
pub struct SampleProducer {
    prod: HeapProd<f32>,
    counters: Arc<Counters>,
}

/// Reading end of a sample ring.
pub struct SampleConsumer {
    cons: HeapCons<f32>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SampleProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleProducer").field("vacant", &self.vacant()).field("stats", &self.stats()).finish()
    }
}

impl std::fmt::Debug for SampleConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleConsumer").field("available", &self.available()).field("stats", &self.stats()).finish()
    }
}

/// A ring holding up to `capacity` samples (interleaved channels count separately), split into its two ends.
/// Allocates once, here; `capacity` 0 is raised to 1.
#[must_use]
pub fn sample_ring(capacity: usize) -> (SampleProducer, SampleConsumer) {
    let (prod, cons) = HeapRb::<f32>::new(capacity.max(1)).split();
    let counters = Arc::new(Counters::default());
    (SampleProducer { prod, counters: Arc::clone(&counters) }, SampleConsumer { cons, counters })
}

impl SampleProducer {
    /// Appends as many of `samples` as fit; the rest are dropped and counted. Returns how many were taken.
    pub fn push(&mut self, samples: &[f32]) -> usize {
        self.counters.largest_push.fetch_max(samples.len(), Ordering::Relaxed);
        let n = self.prod.push_slice(samples);
        if n < samples.len() {
            self.counters.dropped.fetch_add((samples.len() - n) as u64, Ordering::Relaxed);
        }
        n
    }

    /// Free space, in samples.
    #[must_use]
    pub fn vacant(&self) -> usize {
        self.prod.vacant_len()
    }

    /// Losses so far.
    #[must_use]
    pub fn stats(&self) -> RingStats {
        stats(&self.counters)
    }

    /// The most samples the reading end has asked for in one [`SampleConsumer::pop_or_silence`] so far (on a
    /// speaker ring: the playback device's period, interleaved), or `None` before its first call.
    #[must_use]
    pub fn largest_read(&self) -> Option<usize> {
        nonzero(&self.counters.largest_read)
    }
}

impl SampleConsumer {
    /// Takes up to `out.len()` samples into `out`; returns how many.
    pub fn pop(&mut self, out: &mut [f32]) -> usize {
        self.cons.pop_slice(out)
    }

    /// Fills all of `out`: samples from the ring, then silence for what is missing (counted).
    pub fn pop_or_silence(&mut self, out: &mut [f32]) {
        self.counters.largest_read.fetch_max(out.len(), Ordering::Relaxed);
        let n = self.cons.pop_slice(out);
        if n < out.len() {
            out[n..].fill(0.0);
            self.counters.silence.fetch_add((out.len() - n) as u64, Ordering::Relaxed);
        }
    }

    /// Samples waiting.
    #[must_use]
    pub fn available(&self) -> usize {
        self.cons.occupied_len()
    }

    /// Losses so far.
    #[must_use]
    pub fn stats(&self) -> RingStats {
        stats(&self.counters)
    }

    /// The most samples the writing end has pushed at once so far (on a microphone ring: the capture device's
    /// period, interleaved), or `None` before its first push.
    #[must_use]
    pub fn largest_push(&self) -> Option<usize> {
        nonzero(&self.counters.largest_push)
    }
}

fn nonzero(counter: &AtomicUsize) -> Option<usize> {
    Some(counter.load(Ordering::Relaxed)).filter(|&n| n > 0)
}

fn stats(c: &Counters) -> RingStats {
    RingStats { dropped_samples: c.dropped.load(Ordering::Relaxed), silence_samples: c.silence.load(Ordering::Relaxed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrun_and_underrun_are_counted_and_order_is_kept() {
        let (mut p, mut c) = sample_ring(4);
        assert_eq!(p.push(&[1.0, 2.0, 3.0]), 3);
        assert_eq!(p.push(&[4.0, 5.0]), 1);
        assert_eq!(p.stats().dropped_samples, 1);
        let mut out = [9.0; 6];
        c.pop_or_silence(&mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(c.stats(), RingStats { dropped_samples: 1, silence_samples: 2 });
        assert_eq!(c.pop(&mut out), 0);
        // The largest transfers of the device's ends (push, pop_or_silence), seen from the other end.
        assert_eq!((c.largest_push(), p.largest_read()), (Some(3), Some(6)));
        c.pop_or_silence(&mut out[..2]);
        assert_eq!(p.largest_read(), Some(6));
    }

    #[test]
    fn ends_work_across_threads() {
        let (mut p, mut c) = sample_ring(256);
        let writer = std::thread::spawn(move || {
            let mut sent = 0u32;
            while sent < 10_000 {
                let chunk: [f32; 32] = std::array::from_fn(|i| (sent + i as u32) as f32);
                let room = p.vacant().min(32);
                sent += p.push(&chunk[..room]) as u32;
                std::thread::yield_now();
            }
        });
        let mut next = 0u32;
        let mut buf = [0f32; 64];
        while next < 10_000 {
            let n = c.pop(&mut buf);
            for s in &buf[..n] {
                assert_eq!(*s, next as f32);
                next += 1;
            }
            std::thread::yield_now();
        }
        writer.join().expect("writer thread");
        assert_eq!(c.stats().dropped_samples, 0);
    }
}
