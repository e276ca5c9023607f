//! The playback (decoder) pipeline, one per remote speaker: carries out voice-jitter's playout decisions.

use audiopus::coder::Decoder;
use audiopus::packet::Packet;
use audiopus::{MutSignals, SampleRate};
use voice_jitter::{Action, Playout, Stretch};

use crate::CodecError;
use crate::config::{ChannelLayout, FrameDuration, MAX_SLOT_SAMPLES, SAMPLE_RATE_HZ};
use crate::dump::{DumpStage, Dumper};
use crate::stretch::Stretcher;

/// Longest Opus packet, samples per channel at 48 kHz (120 ms).
const MAX_PACKET_SAMPLES: usize = 5_760;
/// libopus conceals and decodes FEC in multiples of 2.5 ms.
const PLC_QUANTUM: usize = 120;
/// Output buffer capacity in slots of maximal length; the oldest audio is dropped if nobody reads.
const OUTPUT_SLOTS: usize = 4;

/// Samples per channel at 48 kHz that the Opus `payload` holds; [`CodecError::CorruptPacket`] if it is not a
/// parseable Opus packet of 2.5 ..= 120 ms.
pub fn packet_samples(payload: &[u8]) -> Result<usize, CodecError> {
    let packet = Packet::try_from(payload).map_err(|_| CodecError::CorruptPacket)?;
    match audiopus::packet::nb_samples(packet, SampleRate::Hz48000) {
        Ok(n) if (PLC_QUANTUM..=MAX_PACKET_SAMPLES).contains(&n) => Ok(n),
        _ => Err(CodecError::CorruptPacket),
    }
}

/// Configuration of a [`PlaybackPipeline`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaybackConfig {
    /// Channel layout the decoder produces (libopus up- or down-mixes whatever the sender encoded).
    pub layout: ChannelLayout,
    /// Frame duration assumed for concealment until the first packet shows the real one.
    pub frame: FrameDuration,
    /// Linear volume for this speaker, 0 ..= 4.
    pub volume: f32,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self { layout: ChannelLayout::Mono, frame: FrameDuration::Ms20, volume: 1.0 }
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

/// Decoder pipeline for one remote speaker: decode / FEC / PLC / silence, time-stretch, volume, into an output
/// buffer that a [`Mixer`](crate::Mixer) (or [`read`](Self::read)) drains. Nothing allocates after construction
/// (unless a [`Dumper`] is attached).
pub struct PlaybackPipeline {
    decoder: Decoder,
    channels: usize,
    frame_samples: usize,
    volume: f32,
    slot: Vec<f32>,
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
        let decoder = Decoder::new(SampleRate::Hz48000, config.layout.opus())?;
        let slot_frames = MAX_SLOT_SAMPLES as usize + PLC_QUANTUM;
        let mut this = Self {
            decoder,
            channels: ch,
            frame_samples: config.frame.samples(),
            volume: 1.0,
            slot: vec![0.0; slot_frames * ch],
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
                self.slot[..n * self.channels].fill(0.0);
                self.stats.silence += 1;
                (SlotSource::Silence, n)
            }
        };
        let ch = self.channels;
        let mut stretched = 0i64;
        match playout.stretch {
            Stretch::None => {}
            Stretch::Shrink { samples } => {
                let removed = self.stretcher.shrink(&mut self.slot, ch, frames, samples as usize);
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

    /// Decodes `payload` (normally or its FEC data) into the slot; conceals if it is corrupt.
    fn decode(&mut self, payload: &[u8], fec: bool) -> (SlotSource, usize) {
        let ch = self.channels;
        let Ok(n) = packet_samples(payload) else {
            self.stats.corrupt += 1;
            return (SlotSource::CorruptConcealed, self.conceal(self.frame_samples));
        };
        // packet_samples succeeded, so the payload is non-empty and the Packet conversion cannot fail again; the
        // fallbacks below are for completeness only.
        let Ok(packet) = Packet::try_from(payload) else {
            self.stats.corrupt += 1;
            return (SlotSource::CorruptConcealed, self.conceal(self.frame_samples));
        };
        let decoded = MutSignals::try_from(&mut self.slot[..n * ch])
            .map_err(CodecError::from)
            .and_then(|out| Ok(self.decoder.decode_float(Some(packet), out, fec)?));
        match decoded {
            Ok(got) if got == n => {
                self.frame_samples = n;
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
    /// 2.5 ms, so a remainder is taken from the start of one more 2.5 ms block.
    fn conceal(&mut self, n: usize) -> usize {
        let ch = self.channels;
        let mut done = 0;
        while done < n {
            let step = (n - done).min(960).div_ceil(PLC_QUANTUM) * PLC_QUANTUM;
            let region = &mut self.slot[done * ch..(done + step) * ch];
            let ok = MutSignals::try_from(region)
                .ok()
                .and_then(|out| self.decoder.decode_float(None, out, false).ok())
                .is_some_and(|got| got == step);
            if !ok {
                self.slot[done * ch..(done + step) * ch].fill(0.0);
            }
            done += step;
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

fn check_slot(samples: u32) -> Result<usize, CodecError> {
    if samples > MAX_SLOT_SAMPLES {
        return Err(CodecError::SlotTooLong { samples, max: MAX_SLOT_SAMPLES });
    }
    Ok(samples as usize)
}
