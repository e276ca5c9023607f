//! The playback (decoder) pipeline, one per remote speaker: carries out voice-jitter's playout decisions.

use voice_jitter::{Action, Playout, Stretch};

use crate::comfort::ComfortNoise;
use crate::config::{ChannelLayout, FrameDuration, MAX_SLOT_SAMPLES, SAMPLE_RATE_HZ};
use crate::decoder::{BLOCK_SAMPLES as PLC_QUANTUM, packet_samples};
use crate::dump::{DumpStage, Dumper};
use crate::stretch::Stretcher;
use crate::{CodecError, Decoder};

/// libopus conceals and decodes FEC in multiples of 2.5 ms (`PLC_QUANTUM`), but its SILK layer (SILK-only and hybrid
/// packets) conceals at least 10 ms per call and drops what the call did not ask for, so after such packets
/// concealment runs in multiples of 10 ms.
const SILK_PLC_QUANTUM: usize = 480;
/// Output buffer capacity in slots of maximal length; the oldest audio is dropped if nobody reads.
const OUTPUT_SLOTS: usize = 4;
/// Length over which the level of a slot's start or end is measured, samples per channel (5 ms).
const LEVEL_WINDOW: usize = 240;
/// Fade-in of decoded audio that resumes after a concealment or silence, from the level reached before (20 ms).
const RESUME_FADE: usize = 960;
/// Cross-fade from the mirrored end of the previous slot into resumed audio (2.5 ms).
const MIRROR_FADE: usize = 120;
/// Fade-out of the concealed continuation at the start of a silence (10 ms).
const SILENCE_FADE: usize = 480;
/// Cross-fade from comfort noise into decoded audio (5 ms).
const NOISE_FADE: usize = 240;
/// A resume whose start is within this ratio of the level before it needs no fade.
const LEVEL_MATCH: f32 = 1.0;

/// Configuration of a [`PlaybackPipeline`].
///
/// The defaults (each field says its own):
///
/// ```
/// use voice_codec::{ChannelLayout, FrameDuration, PlaybackConfig};
///
/// assert_eq!(
///     PlaybackConfig::default(),
///     PlaybackConfig {
///         layout: ChannelLayout::Mono,
///         frame: FrameDuration::Ms20,
///         volume: 1.0,
///         comfort_noise: true,
///         shrink_in_pauses: true,
///     }
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaybackConfig {
    /// Channel layout the decoder produces (libopus up- or down-mixes whatever the sender encoded). Default:
    /// [`ChannelLayout::Mono`].
    pub layout: ChannelLayout,
    /// Frame duration assumed for concealment until the first packet shows the real one. Default:
    /// [`FrameDuration::Ms20`].
    pub frame: FrameDuration,
    /// Linear volume for this speaker, 0 ..= 4. Default: 1.0.
    pub volume: f32,
    /// Play comfort noise in [`Action::Silence`] slots once the speaker has sent audio: low-level noise matched to
    /// the background of the recently decoded quiet frames (at most −40 dBFS), faded in. `false` plays digital
    /// silence. A speaker that never sent audio (or sent digital silence) is silent either way. Default: `true`.
    pub comfort_noise: bool,
    /// Apply a [`Stretch::Shrink`] only where the slot has a pause between words (a window below about −40 dBFS),
    /// never inside a word: shrinking is never urgent (the cost of not shrinking is a little delay), and time-warped
    /// speech is audible. Expansion is applied wherever the signal allows (it stands in for a concealment).
    /// Default: `true`.
    pub shrink_in_pauses: bool,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            layout: ChannelLayout::Mono,
            frame: FrameDuration::Ms20,
            volume: 1.0,
            comfort_noise: true,
            shrink_in_pauses: true,
        }
    }
}

/// How a slot's audio was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotSource {
    /// A packet was decoded.
    Decoded,
    /// The in-band FEC of the next packet stood in for a lost one.
    Fec,
    /// Packet loss concealment (asked for by the decision).
    Concealed,
    /// The packet (or the FEC packet) was corrupt; concealment was used instead.
    CorruptConcealed,
    /// Silence.
    Silence,
}

/// What one [`PlaybackPipeline::play`] call produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotReport {
    /// Where the audio came from.
    pub source: SlotSource,
    /// Samples per channel appended to the output (48 kHz), after the stretch.
    pub samples: usize,
    /// Samples per channel the stretch added (positive) or removed (negative).
    pub stretched: i64,
}

/// Counters since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PlaybackStats {
    /// Packets decoded.
    pub decoded: u64,
    /// Slots filled from FEC.
    pub fec: u64,
    /// Slots concealed on request.
    pub concealed: u64,
    /// Corrupt packets (concealed instead).
    pub corrupt: u64,
    /// Slots of silence.
    pub silence: u64,
    /// Samples per channel removed by shrinking.
    pub shrunk_samples: u64,
    /// Samples per channel added by expanding.
    pub expanded_samples: u64,
    /// Samples per channel dropped because the output was not read in time.
    pub overflow_dropped: u64,
}

/// What the previous slot was, for the seams between slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prev {
    /// Nothing was played yet.
    Start,
    /// Decoded audio (a packet or FEC).
    Audio,
    /// Concealment.
    Concealed,
    /// Silence (or comfort noise).
    Silent,
}

/// Decoder pipeline for one remote speaker: decode / FEC / PLC / silence, time-stretch, volume, into an output
/// buffer that a [`Mixer`](crate::Mixer) (or [`read`](Self::read)) drains. Nothing allocates after construction
/// (unless a [`Dumper`] is attached). Underneath is a plain [`Decoder`], usable on its own.
///
/// Seams are smoothed: the decoder conceals in whole blocks (2.5 ms; 10 ms for SILK and hybrid streams) and what
/// it produced beyond a slot is kept for the next one (so its state never runs ahead of the output); a silence after audio fades the concealed
/// continuation out (and comfort noise in); decoded or concealed audio that resumes after a concealment or silence
/// fades in from the level reached before it, and such a slot is not time-stretched.
pub struct PlaybackPipeline {
    decoder: Decoder,
    channels: usize,
    frame_samples: usize,
    volume: f32,
    slot: Vec<f32>,
    /// Decoder output produced ahead of the output stream (less than one 2.5 ms block), interleaved.
    carry: Vec<f32>,
    /// Frames in `carry`.
    carry_len: usize,
    /// The last decoded packet was CELT-only (its concealment works in 2.5 ms blocks).
    celt_only: bool,
    prev: Prev,
    /// A concealment or silence broke the decoded stream since the last decoded slot.
    broken: bool,
    /// The last output frames (up to 5 ms, before volume), interleaved.
    hist: Vec<f32>,
    /// RMS of `hist`.
    tail_level: f32,
    comfort: Option<ComfortNoise>,
    shrink_in_pauses: bool,
    stretcher: Stretcher,
    out: Vec<f32>,
    dumper: Option<Dumper>,
    stats: PlaybackStats,
}

impl std::fmt::Debug for PlaybackPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackPipeline")
            .field("channels", &self.channels)
            .field("frame_samples", &self.frame_samples)
            .field("volume", &self.volume)
            .field("buffered", &self.buffered())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PlaybackPipeline {
    /// Builds a pipeline; fails on an out-of-range volume.
    pub fn new(config: PlaybackConfig) -> Result<Self, CodecError> {
        let ch = config.layout.count();
        let decoder = Decoder::new(config.layout)?;
        let slot_frames = MAX_SLOT_SAMPLES as usize + SILK_PLC_QUANTUM;
        let mut this = Self {
            decoder,
            channels: ch,
            frame_samples: config.frame.samples(),
            volume: 1.0,
            slot: vec![0.0; slot_frames * ch],
            carry: vec![0.0; SILK_PLC_QUANTUM * ch],
            celt_only: false,
            carry_len: 0,
            prev: Prev::Start,
            broken: false,
            hist: Vec::with_capacity(LEVEL_WINDOW * ch),
            tail_level: 0.0,
            comfort: config.comfort_noise.then(ComfortNoise::new),
            shrink_in_pauses: config.shrink_in_pauses,
            stretcher: Stretcher::new(slot_frames, ch),
            out: Vec::with_capacity(OUTPUT_SLOTS * slot_frames * ch),
            dumper: None,
            stats: PlaybackStats::default(),
        };
        this.set_volume(config.volume)?;
        Ok(this)
    }

    /// Channel count of the output.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Sets this speaker's linear volume (0 ..= 4).
    pub fn set_volume(&mut self, volume: f32) -> Result<(), CodecError> {
        if !(volume.is_finite() && (0.0..=4.0).contains(&volume)) {
            return Err(CodecError::InvalidConfig("volume must be finite and in 0..=4"));
        }
        self.volume = volume;
        Ok(())
    }

    /// The speaker's volume.
    pub fn volume(&self) -> f32 {
        self.volume
    }

    /// Counters since construction.
    pub fn stats(&self) -> PlaybackStats {
        self.stats
    }

    /// Attaches (or with `None` detaches) a WAV dumper for [`DumpStage::PostOpusDecode`].
    pub fn set_dumper(&mut self, dumper: Option<Dumper>) -> Option<Dumper> {
        std::mem::replace(&mut self.dumper, dumper)
    }

    /// Samples per channel waiting in the output.
    pub fn buffered(&self) -> usize {
        self.out.len() / self.channels
    }

    /// Carries out one playout decision and appends the slot's audio (48 kHz, interleaved, volume applied) to the
    /// output. Corrupt packets are concealed (and counted), never an error; errors are only for a `Conceal` or
    /// `Silence` longer than [`MAX_SLOT_SAMPLES`] or a failing dump.
    ///
    /// A slot that resumes decoded audio after a concealment or silence (or concealment after a silence) fades in
    /// from the level reached before it and is not stretched (its [`SlotReport::stretched`] is 0).
    pub fn play<P: AsRef<[u8]>>(&mut self, playout: &Playout<P>) -> Result<SlotReport, CodecError> {
        let (source, mut frames) = match &playout.action {
            Action::Play { payload, .. } => self.decode(payload.as_ref(), false),
            Action::DecodeFec { next_payload, .. } => self.decode(next_payload.as_ref(), true),
            Action::Conceal { samples } => {
                let n = check_slot(*samples)?;
                self.stats.concealed += 1;
                (SlotSource::Concealed, self.conceal(n))
            }
            Action::Silence { samples } => {
                let n = check_slot(*samples)?;
                self.stats.silence += 1;
                self.silence(n);
                (SlotSource::Silence, n)
            }
        };
        let ch = self.channels;
        let decoded = matches!(source, SlotSource::Decoded | SlotSource::Fec);
        let resumed = match source {
            SlotSource::Decoded | SlotSource::Fec => self.broken,
            SlotSource::Concealed | SlotSource::CorruptConcealed => self.prev == Prev::Silent,
            SlotSource::Silence => false,
        };
        if decoded {
            if let Some(cn) = &mut self.comfort {
                cn.observe(&self.slot, ch, frames);
            }
        }
        if resumed {
            self.fade_in_from_tail(frames);
        }
        if self.prev == Prev::Silent && source != SlotSource::Silence {
            if let Some(cn) = &mut self.comfort {
                cn.fade_out_into(&mut self.slot[..frames * ch], ch, NOISE_FADE);
            }
        }
        let mut stretched = 0i64;
        match playout.stretch {
            _ if resumed => {}
            Stretch::None => {}
            Stretch::Shrink { samples } => {
                let removed =
                    self.stretcher.shrink(&mut self.slot, ch, frames, samples as usize, self.shrink_in_pauses);
                frames -= removed;
                self.stats.shrunk_samples += removed as u64;
                stretched = -(removed as i64);
            }
            Stretch::Expand { samples } => {
                let room = (MAX_SLOT_SAMPLES as usize).saturating_sub(frames);
                let want = (samples as usize).min(room);
                let added = self.stretcher.expand(&mut self.slot, ch, frames, want);
                frames += added;
                self.stats.expanded_samples += added as u64;
                stretched = added as i64;
            }
        }
        self.remember_tail(frames);
        // FEC after a concealment is a low-bitrate stand-in: the packet after it still resumes the stream.
        self.broken = match source {
            SlotSource::Decoded => false,
            SlotSource::Fec => self.broken,
            _ => true,
        };
        self.prev = match source {
            SlotSource::Decoded | SlotSource::Fec => Prev::Audio,
            SlotSource::Concealed | SlotSource::CorruptConcealed => Prev::Concealed,
            SlotSource::Silence => Prev::Silent,
        };
        let audio = &mut self.slot[..frames * ch];
        if let Some(d) = &mut self.dumper {
            d.write(DumpStage::PostOpusDecode, audio, SAMPLE_RATE_HZ, ch as u16)?;
        }
        if self.volume != 1.0 {
            for s in audio.iter_mut() {
                *s *= self.volume;
            }
        }
        let free = self.out.capacity() - self.out.len();
        if audio.len() > free {
            let drop = audio.len() - free;
            self.out.drain(..drop);
            self.stats.overflow_dropped += (drop / ch) as u64;
        }
        self.out.extend_from_slice(audio);
        Ok(SlotReport { source, samples: frames, stretched })
    }

    /// Fades the start of the slot in from the level the previous slot ended at, if it starts louder: the gain
    /// rises from that level to 1 over 20 ms, and the first 2.5 ms cross-fade from the previous slot's mirrored end
    /// (same level, no step at the boundary) into the faded audio.
    fn fade_in_from_tail(&mut self, frames: usize) {
        let ch = self.channels;
        let len = RESUME_FADE.min(frames);
        // The loudest 5 ms of the fade's span: decoded audio may itself rise within it (libopus' own smoothing).
        let head = self.slot[..len * ch].chunks(LEVEL_WINDOW * ch).map(rms).fold(0.0, f32::max);
        if head.is_nan() || head <= 0.0 || self.tail_level >= head * LEVEL_MATCH {
            return;
        }
        let g0 = (self.tail_level / head).clamp(0.0, 1.0);
        let hist_frames = self.hist.len() / ch;
        let xfade = MIRROR_FADE.min(len).min(hist_frames);
        for (i, f) in self.slot[..len * ch].chunks_exact_mut(ch).enumerate() {
            let g = g0 + (1.0 - g0) * raised_cosine(i, len);
            let (w, mirror) = if i < xfade {
                (raised_cosine(i, xfade), &self.hist[(hist_frames - 1 - i) * ch..(hist_frames - i) * ch])
            } else {
                (1.0, &self.hist[..0])
            };
            for (c, s) in f.iter_mut().enumerate() {
                let m = mirror.get(c).copied().unwrap_or(0.0);
                *s = w * g * *s + (1.0 - w) * m;
            }
        }
    }

    /// Keeps the last frames of the slot (before volume) and their level, for the next slot's seam.
    fn remember_tail(&mut self, frames: usize) {
        let ch = self.channels;
        let keep = LEVEL_WINDOW * ch;
        let new = &self.slot[frames.saturating_sub(LEVEL_WINDOW) * ch..frames * ch];
        let excess = (self.hist.len() + new.len()).saturating_sub(keep);
        self.hist.drain(..excess.min(self.hist.len()));
        self.hist.extend_from_slice(new);
        self.tail_level = rms(&self.hist);
    }

    /// Silence of `n` samples per channel into the slot. After audio, the concealed continuation fades out over the
    /// first 10 ms instead of stepping to zero; comfort noise (if enabled and learned) fades in.
    fn silence(&mut self, n: usize) {
        let ch = self.channels;
        let fade = if matches!(self.prev, Prev::Audio | Prev::Concealed) && self.tail_level > 1e-5 {
            SILENCE_FADE.min(n)
        } else {
            0
        };
        if fade > 0 {
            self.conceal(fade);
            for (i, f) in self.slot[..fade * ch].chunks_exact_mut(ch).enumerate() {
                let g = 1.0 - raised_cosine(i, fade);
                for s in f {
                    *s *= g;
                }
            }
        }
        // The decoded stream is broken here; what the decoder produced ahead belongs to nothing any more.
        self.carry_len = 0;
        self.slot[fade * ch..n * ch].fill(0.0);
        if let Some(cn) = &mut self.comfort {
            if self.prev != Prev::Silent {
                cn.start();
            }
            cn.add_to(&mut self.slot, ch, n);
        }
    }

    /// Decodes `payload` (normally or its FEC data) into the slot; conceals if it is corrupt. Audio the decoder
    /// produced ahead of the output earlier (`carry`) comes first, and as much is kept back from the end.
    fn decode(&mut self, payload: &[u8], fec: bool) -> (SlotSource, usize) {
        let ch = self.channels;
        let Ok(n) = packet_samples(payload) else {
            self.stats.corrupt += 1;
            return (SlotSource::CorruptConcealed, self.conceal(self.frame_samples));
        };
        let c = self.carry_len;
        let out = &mut self.slot[c * ch..(c + n) * ch];
        let decoded = if fec { self.decoder.decode_fec(payload, out) } else { self.decoder.decode(payload, out) };
        match decoded {
            Ok(got) if got == n => {
                // Decoded at offset `c`: the carry plays first, the decoder's last `c` frames become the new carry.
                self.slot[..c * ch].copy_from_slice(&self.carry[..c * ch]);
                self.carry[..c * ch].copy_from_slice(&self.slot[n * ch..(n + c) * ch]);
                self.frame_samples = n;
                // TOC configurations 16..=31 are CELT-only.
                self.celt_only = payload[0] >> 3 >= 16;
                if fec {
                    self.stats.fec += 1;
                    (SlotSource::Fec, n)
                } else {
                    self.stats.decoded += 1;
                    (SlotSource::Decoded, n)
                }
            }
            _ => {
                self.stats.corrupt += 1;
                (SlotSource::CorruptConcealed, self.conceal(n))
            }
        }
    }

    /// Packet loss concealment of exactly `n` samples per channel into the slot. libopus conceals in multiples of
    /// 2.5 ms (10 ms for SILK and hybrid streams): audio left over from an earlier block comes first, and what the
    /// last block produces beyond `n` is kept for the next slot, so the decoder's state never runs ahead of the output.
    fn conceal(&mut self, n: usize) -> usize {
        let ch = self.channels;
        let from_carry = self.carry_len.min(n);
        self.slot[..from_carry * ch].copy_from_slice(&self.carry[..from_carry * ch]);
        self.carry.copy_within(from_carry * ch..self.carry_len * ch, 0);
        self.carry_len -= from_carry;
        let mut done = from_carry;
        let quantum = if self.celt_only { PLC_QUANTUM } else { SILK_PLC_QUANTUM };
        while done < n {
            let step = (n - done).min(960).div_ceil(quantum) * quantum;
            let region = &mut self.slot[done * ch..(done + step) * ch];
            if !self.decoder.conceal(region).is_ok_and(|got| got == step) {
                self.slot[done * ch..(done + step) * ch].fill(0.0);
            }
            done += step;
        }
        let extra = done - n;
        if extra > 0 {
            self.carry[..extra * ch].copy_from_slice(&self.slot[n * ch..done * ch]);
            self.carry_len = extra;
        }
        n
    }

    /// Moves up to `out.len()` samples (interleaved) from the output into `out`; returns how many were moved.
    pub fn read(&mut self, out: &mut [f32]) -> usize {
        let n = out.len().min(self.out.len());
        out[..n].copy_from_slice(&self.out[..n]);
        self.out.drain(..n);
        n
    }

    /// Adds `frames` frames of output into `acc` (interleaved, `acc_channels` channels), converting the channel
    /// layout; missing audio counts as silence. Returns the frames taken.
    pub(crate) fn read_add(&mut self, acc: &mut [f32], acc_channels: usize, frames: usize) -> usize {
        let ch = self.channels;
        let take = frames.min(self.buffered());
        for (dst, src) in acc.chunks_exact_mut(acc_channels).zip(self.out[..take * ch].chunks_exact(ch)) {
            if ch == acc_channels {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            } else if acc_channels == 1 {
                dst[0] += src.iter().sum::<f32>() / ch as f32;
            } else {
                for (c, d) in dst.iter_mut().enumerate() {
                    *d += src[c % ch];
                }
            }
        }
        self.out.drain(..take * ch);
        take
    }
}

/// Raised-cosine fade-in weight for sample `i` of `n`.
fn raised_cosine(i: usize, n: usize) -> f32 {
    let x = (i as f32 + 0.5) / n as f32;
    0.5 - 0.5 * (std::f32::consts::PI * x).cos()
}

/// Root mean square of interleaved samples (0 for none).
fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt()
}

fn check_slot(samples: u32) -> Result<usize, CodecError> {
    if samples > MAX_SLOT_SAMPLES {
        return Err(CodecError::SlotTooLong { samples, max: MAX_SLOT_SAMPLES });
    }
    Ok(samples as usize)
}
