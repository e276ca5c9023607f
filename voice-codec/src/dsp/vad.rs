//! Voice activity gate: 48 kHz mono is low-passed and decimated to 16 kHz, scored by earshot in 16 ms windows, and
//! the gate stays open for a hangover after the last speech window. With fast attack, an energy onset opens the gate
//! provisionally: it stays open while earshot confirms speech within [`PROVISIONAL`] samples, else it closes.

use earshot::Detector;

const WINDOW: usize = 256;
const DECIMATION: usize = 3;
const TAPS: usize = 33;
/// How long an onset keeps the gate open without earshot confirming speech, samples at 48 kHz (100 ms).
pub(crate) const PROVISIONAL: usize = 4_800;

/// The gate. Processing allocates nothing.
pub(crate) struct VoiceGate {
    detector: Box<Detector>,
    fir: [f32; TAPS],
    delay: [f32; TAPS],
    delay_pos: usize,
    phase: usize,
    window: [f32; WINDOW],
    filled: usize,
    threshold: f32,
    hangover_frames: u32,
    hangover_left: u32,
    fast_attack: bool,
    provisional_left: usize,
    last_score: f32,
}

impl std::fmt::Debug for VoiceGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceGate")
            .field("threshold", &self.threshold)
            .field("hangover_frames", &self.hangover_frames)
            .field("last_score", &self.last_score)
            .finish()
    }
}

impl VoiceGate {
    pub(crate) fn new(threshold: f32, hangover_frames: u32, fast_attack: bool) -> Self {
        // Windowed-sinc low-pass at 7 kHz (48 kHz rate) against aliasing before keeping every third sample.
        let mut fir = [0.0f32; TAPS];
        let mid = (TAPS / 2) as f32;
        let fc = 7_000.0 / 48_000.0;
        for (i, h) in fir.iter_mut().enumerate() {
            let x = i as f32 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f32::consts::PI * fc * x).sin() / (std::f32::consts::PI * x)
            };
            let w = 0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / (TAPS - 1) as f32).cos();
            *h = sinc * w;
        }
        let sum: f32 = fir.iter().sum();
        for h in &mut fir {
            *h /= sum;
        }
        Self {
            detector: Box::new(Detector::default()),
            fir,
            delay: [0.0; TAPS],
            delay_pos: 0,
            phase: 0,
            window: [0.0; WINDOW],
            filled: 0,
            threshold,
            hangover_frames,
            hangover_left: 0,
            fast_attack,
            provisional_left: 0,
            last_score: 0.0,
        }
    }

    /// The latest earshot score (0 ..= 1).
    pub(crate) fn last_score(&self) -> f32 {
        self.last_score
    }

    /// Feeds one 48 kHz mono frame (`onset`: the energy onset detector fired in it); returns whether the gate is
    /// open for it.
    pub(crate) fn process(&mut self, mono: &[f32], onset: bool) -> bool {
        let mut speech = false;
        let mut scored = false;
        for &s in mono {
            self.delay[self.delay_pos] = s;
            self.delay_pos = (self.delay_pos + 1) % TAPS;
            self.phase += 1;
            if self.phase < DECIMATION {
                continue;
            }
            self.phase = 0;
            // Convolve: delay[delay_pos] is the oldest sample.
            let mut acc = 0.0;
            for (k, h) in self.fir.iter().enumerate() {
                acc += h * self.delay[(self.delay_pos + k) % TAPS];
            }
            self.window[self.filled] = acc.clamp(-1.0, 1.0);
            self.filled += 1;
            if self.filled == WINDOW {
                self.filled = 0;
                self.last_score = self.detector.predict_f32(&self.window);
                scored = true;
                speech |= self.last_score >= self.threshold;
            }
        }
        if !scored {
            speech = self.last_score >= self.threshold;
        }
        if speech {
            self.hangover_left = self.hangover_frames;
            self.provisional_left = 0;
            true
        } else if self.fast_attack && (onset || self.provisional_left > 0) && self.hangover_left == 0 {
            if onset && self.provisional_left == 0 {
                self.provisional_left = PROVISIONAL;
            }
            self.provisional_left = self.provisional_left.saturating_sub(mono.len());
            true
        } else if self.hangover_left > 0 {
            self.hangover_left -= 1;
            true
        } else {
            false
        }
    }
}
