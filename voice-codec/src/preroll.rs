//! The capture pre-roll: a ring of the most recent VAD-gated frames (processed 48 kHz audio, not yet encoded), sent
//! when the voice gate opens so that onsets the detector recognizes late are not clipped.

/// Ring of up to `max_entries` frames of `entry` samples per channel. Allocated once per configuration.
#[derive(Debug)]
pub(crate) struct PrerollRing {
    buf: Vec<f32>,
    channels: usize,
    preroll_samples: usize,
    entry: usize,
    max_entries: usize,
    start: usize,
    len: usize,
}

impl PrerollRing {
    /// A ring for `preroll_samples` samples per channel of frames up to `max_frame` long.
    pub(crate) fn new(preroll_samples: usize, max_frame: usize, channels: usize) -> Self {
        let capacity = if preroll_samples == 0 { 0 } else { (preroll_samples + max_frame) * channels };
        Self { buf: vec![0.0; capacity], channels, preroll_samples, entry: 0, max_entries: 0, start: 0, len: 0 }
    }

    /// Empties the ring and sets the frame length (samples per channel) of the entries to come.
    pub(crate) fn reset(&mut self, frame: usize) {
        self.entry = frame;
        self.max_entries = if frame == 0 || self.preroll_samples == 0 {
            0
        } else {
            self.preroll_samples.div_ceil(frame).min(self.buf.len() / (frame * self.channels))
        };
        self.start = 0;
        self.len = 0;
    }

    /// Frames held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Samples per channel of each held frame.
    pub(crate) fn entry_samples(&self) -> usize {
        self.entry
    }

    /// Adds a frame (interleaved, `entry × channels` long; anything else empties the ring), dropping the oldest
    /// when full.
    pub(crate) fn push(&mut self, frame: &[f32]) {
        let n = self.entry * self.channels;
        if self.max_entries == 0 || frame.len() != n {
            self.len = 0;
            return;
        }
        let slot = (self.start + self.len) % self.max_entries;
        self.buf[slot * n..(slot + 1) * n].copy_from_slice(frame);
        if self.len < self.max_entries {
            self.len += 1;
        } else {
            self.start = (self.start + 1) % self.max_entries;
        }
    }

    /// The `i`-th held frame, oldest first.
    pub(crate) fn get(&self, i: usize) -> &[f32] {
        let n = self.entry * self.channels;
        if i >= self.len {
            return &[];
        }
        let slot = (self.start + i) % self.max_entries;
        &self.buf[slot * n..(slot + 1) * n]
    }

    /// Empties the ring.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.len = 0;
    }
}
