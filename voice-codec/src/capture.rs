//! The capture (encoder) pipeline: device chunks in, Opus packets out.

use audiopus::coder::Encoder;
use audiopus::{Bitrate, SampleRate};

use crate::CodecError;
use crate::config::{CaptureConfig, MAX_PREROLL_MS, OpusSettings, SAMPLE_RATE_HZ, VadConfig, validate_device};
use crate::dsp::{NoiseSuppressor, OnsetDetector, VoiceGate, apply_gain};
use crate::dump::{DumpStage, Dumper};
use crate::preroll::PrerollRing;
use crate::resample::{StreamResampler, remix_into};

/// Capacity of the 48 kHz frame-assembly buffer, samples per channel (1 s): push at most about this much between two
/// drains.
pub const CAPTURE_BUFFER_SAMPLES: usize = 48_000;
/// Largest Opus packet the encoder may produce (60 ms at 510 kbit/s fits).
const MAX_PACKET_BYTES: usize = 4_000;
/// Device frames remixed per step (bounds the scratch buffer so chunks of any size need no allocation).
const REMIX_STEP_FRAMES: usize = 512;
/// With DTX, background lasting longer than this (samples at 48 kHz, 200 ms, as libopus' own DTX) is not sent.
const DTX_AFTER: usize = 9_600;

/// Why a frame was not transmitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateReason {
    /// Voice activity detection found no speech (and the hangover ran out).
    Vad,
    /// The push-to-talk gate is closed.
    PushToTalk,
    /// DTX: Opus produced an empty (≤ 2 byte) packet for a near-silent frame, or the frame is part of more than
    /// 200 ms of stationary background (see [`OpusSettings::dtx`]).
    Dtx,
}

/// One assembled frame's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFrame<'a> {
    /// Transmit this Opus packet.
    Packet {
        /// The encoded frame.
        payload: &'a [u8],
        /// Samples per channel it covers at 48 kHz (advance the media timestamp by this).
        samples: u32,
    },
    /// Nothing to transmit for this frame; the media timestamp still advances by `samples`.
    Gated {
        /// Samples per channel the frame covered at 48 kHz.
        samples: u32,
        /// Which gate closed.
        reason: GateReason,
    },
    /// Pre-roll ([`VadConfig::preroll_ms`]): a frame that was reported as `Gated { reason: Vad }` earlier, sent now
    /// because the voice gate opened right after it, so onsets the detector recognized late are not clipped.
    ///
    /// Pre-roll frames come oldest first, directly before the [`Packet`](Self::Packet) of the frame that opened the
    /// gate, and are consecutive in media time up to it. The media timestamp was already advanced for them: do
    /// **not** advance it again. The frame's media time starts `age_samples` before the current position (the start
    /// of the frame about to be returned as `Packet`), so send it with timestamp `current − age_samples`. Never
    /// produced for frames gated by push-to-talk.
    Preroll {
        /// The encoded frame.
        payload: &'a [u8],
        /// Samples per channel it covers at 48 kHz.
        samples: u32,
        /// How far before the current media position it starts, samples per channel at 48 kHz.
        age_samples: u32,
    },
}

/// Encoder pipeline: `push` device chunks of any size, then drain frames with [`poll_frame`](Self::poll_frame).
///
/// Stages, in order, each optional: conversion to 48 kHz and the configured layout → frame assembly → gain → noise
/// suppression → echo cancellation (feature `aec`) → voice activity gate (with hangover, fast attack and pre-roll)
/// → push-to-talk gate → Opus (→ DTX). After construction, pushing and polling allocate nothing (unless a [`Dumper`] is
/// attached).
///
/// With a voice gate, the most recent gated audio ([`VadConfig::preroll_ms`]) is kept unencoded; when the gate opens
/// it is encoded and returned first as [`CaptureFrame::Preroll`] frames (one per `poll_frame` call), so the
/// encoder's input stays continuous into the onset.
pub struct CapturePipeline {
    config: CaptureConfig,
    encoder: Encoder,
    resampler: StreamResampler,
    remix: Vec<f32>,
    fifo: Vec<f32>,
    frame: Vec<f32>,
    mono: Vec<f32>,
    packet: Vec<u8>,
    denoise: Option<NoiseSuppressor>,
    #[cfg(feature = "aec")]
    echo: Option<crate::dsp::EchoCanceller>,
    vad: Option<VoiceGate>,
    onset: OnsetDetector,
    preroll: PrerollRing,
    /// Next pre-roll entry to send after the gate opened; `None` when not draining.
    draining: Option<usize>,
    /// Samples per channel of the frame that opened the gate (waiting in `frame` while the pre-roll drains).
    pending: usize,
    /// Samples of background in a row (DTX).
    dtx_quiet: usize,
    ptt_pressed: bool,
    dumper: Option<Dumper>,
    frames_encoded: u64,
    frames_gated: u64,
}

impl std::fmt::Debug for CapturePipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturePipeline")
            .field("config", &self.config)
            .field("pending", &(self.fifo.len() / self.config.layout.count()))
            .field("frames_encoded", &self.frames_encoded)
            .field("frames_gated", &self.frames_gated)
            .finish_non_exhaustive()
    }
}

impl CapturePipeline {
    /// Builds the pipeline; fails on an unsupported device format or out-of-range settings.
    pub fn new(config: CaptureConfig) -> Result<Self, CodecError> {
        validate_device(config.device_rate_hz, config.device_channels)?;
        config.opus.validate()?;
        if let Some(g) = config.gain {
            if !(g.is_finite() && (0.0..=100.0).contains(&g)) {
                return Err(CodecError::InvalidConfig("gain must be finite and in 0..=100"));
            }
        }
        if let Some(v) = config.vad {
            if !(0.0..=1.0).contains(&v.threshold) {
                return Err(CodecError::InvalidConfig("vad threshold must be in 0..=1"));
            }
        }
        if config.echo_cancellation && cfg!(not(feature = "aec")) {
            return Err(CodecError::InvalidConfig("echo_cancellation needs voice-codec's `aec` feature"));
        }
        let ch = config.layout.count();
        let encoder = Encoder::new(SampleRate::Hz48000, config.layout.opus(), config.application.opus())
            .map_err(CodecError::opus)?;
        let resampler = StreamResampler::new(config.device_rate_hz, SAMPLE_RATE_HZ, ch)?;
        let max_frame = crate::FrameDuration::Ms60.samples();
        let mut this = Self {
            encoder,
            resampler,
            remix: Vec::with_capacity(REMIX_STEP_FRAMES * ch),
            fifo: Vec::with_capacity(CAPTURE_BUFFER_SAMPLES * ch),
            frame: vec![0.0; max_frame * ch],
            mono: vec![0.0; max_frame],
            packet: vec![0; MAX_PACKET_BYTES],
            denoise: config.noise_suppression.then(|| NoiseSuppressor::new(ch)),
            #[cfg(feature = "aec")]
            echo: config.echo_cancellation.then(|| crate::dsp::EchoCanceller::new(ch)),
            vad: config.vad.map(|v| VoiceGate::new(v.threshold, v.hangover_frames, v.fast_attack)),
            onset: OnsetDetector::new(),
            preroll: preroll_ring(config.vad, ch),
            draining: None,
            pending: 0,
            dtx_quiet: 0,
            ptt_pressed: false,
            dumper: None,
            frames_encoded: 0,
            frames_gated: 0,
            config,
        };
        let settings = this.config.opus;
        this.apply_opus(&settings)?;
        Ok(this)
    }

    /// The configuration (with the current Opus settings).
    pub fn config(&self) -> &CaptureConfig {
        &self.config
    }

    /// Changes the encoder settings at runtime (bitrate, complexity, VBR, FEC, DTX, expected loss, frame duration).
    /// A new frame duration applies from the next assembled frame.
    pub fn set_opus_settings(&mut self, settings: OpusSettings) -> Result<(), CodecError> {
        settings.validate()?;
        self.apply_opus(&settings)?;
        self.config.opus = settings;
        Ok(())
    }

    fn apply_opus(&mut self, s: &OpusSettings) -> Result<(), CodecError> {
        // validate() bounds bitrate to 6000..=510000, so the cast is lossless.
        self.encoder.set_bitrate(Bitrate::BitsPerSecond(s.bitrate_bps as i32)).map_err(CodecError::opus)?;
        self.encoder.set_complexity(s.complexity).map_err(CodecError::opus)?;
        self.encoder.set_vbr(s.vbr).map_err(CodecError::opus)?;
        self.encoder.set_inband_fec(s.inband_fec).map_err(CodecError::opus)?;
        self.encoder.set_dtx(s.dtx).map_err(CodecError::opus)?;
        self.encoder.set_packet_loss_perc(s.expected_loss_pct).map_err(CodecError::opus)?;
        Ok(())
    }

    /// Opens (`true`) or closes the push-to-talk gate. Only has an effect when the pipeline was configured with
    /// `push_to_talk`.
    pub fn set_push_to_talk(&mut self, pressed: bool) {
        self.ptt_pressed = pressed;
    }

    /// Enables or disables the voice activity gate at runtime.
    pub fn set_vad(&mut self, vad: Option<VadConfig>) {
        self.vad = vad.map(|v| VoiceGate::new(v.threshold, v.hangover_frames, v.fast_attack));
        self.preroll = preroll_ring(vad, self.config.layout.count());
        self.config.vad = vad;
    }

    /// The most recent voice activity score (0 ..= 1), if the gate is enabled.
    pub fn vad_score(&self) -> Option<f32> {
        self.vad.as_ref().map(VoiceGate::last_score)
    }

    /// Attaches (or with `None` detaches) a WAV dumper for [`DumpStage::RawMic`] and [`DumpStage::PostDsp`].
    pub fn set_dumper(&mut self, dumper: Option<Dumper>) -> Option<Dumper> {
        std::mem::replace(&mut self.dumper, dumper)
    }

    /// Frames encoded and transmitted, and frames gated, since construction. A pre-roll frame counts in both (it was
    /// reported gated first, then sent).
    pub fn frame_counts(&self) -> (u64, u64) {
        (self.frames_encoded, self.frames_gated)
    }

    /// Samples per channel (48 kHz) waiting for a full frame.
    pub fn pending_samples(&self) -> usize {
        self.fifo.len() / self.config.layout.count()
    }

    /// Feeds the far-end reference for echo cancellation: the 48 kHz audio being played (interleaved `channels`),
    /// e.g. [`Mixer::last_mix`](crate::Mixer::last_mix) after each mix. Push it as it is played, before the capture
    /// that contains its echo is polled. A no-op unless echo cancellation is enabled (feature `aec`).
    pub fn push_echo_reference(&mut self, audio: &[f32], channels: usize) {
        #[cfg(feature = "aec")]
        if let Some(aec) = &mut self.echo {
            aec.push_reference(audio, channels);
        }
        #[cfg(not(feature = "aec"))]
        let _ = (audio, channels);
    }

    /// Pushes an interleaved chunk at the device rate and channel count. Any length of whole frames is accepted;
    /// fails without consuming anything if the chunk is not whole frames or would overflow the assembly buffer
    /// ([`CAPTURE_BUFFER_SAMPLES`]).
    pub fn push(&mut self, chunk: &[f32]) -> Result<(), CodecError> {
        let dev_ch = usize::from(self.config.device_channels);
        if !chunk.len().is_multiple_of(dev_ch) {
            return Err(CodecError::PartialFrame { len: chunk.len(), channels: dev_ch });
        }
        let ch = self.config.layout.count();
        let frames = chunk.len() / dev_ch;
        // Upper bound of what this chunk can add at 48 kHz, including one resampler chunk held back earlier.
        let rate = self.config.device_rate_hz as usize;
        let bound = (frames + rate / 100 + 1) * SAMPLE_RATE_HZ as usize / rate + 2;
        let pending = self.fifo.len() / ch + bound;
        if pending > CAPTURE_BUFFER_SAMPLES {
            return Err(CodecError::Overflow { pending, capacity: CAPTURE_BUFFER_SAMPLES });
        }
        if let Some(d) = &mut self.dumper {
            d.write(DumpStage::RawMic, chunk, self.config.device_rate_hz, self.config.device_channels)?;
        }
        let fifo = &mut self.fifo;
        for step in chunk.chunks(REMIX_STEP_FRAMES * dev_ch) {
            self.remix.clear();
            remix_into(step, dev_ch, ch, &mut self.remix);
            self.resampler.process(&self.remix, |out| fifo.extend_from_slice(out))?;
        }
        Ok(())
    }

    /// Assembles, processes and encodes the next frame if a whole one is buffered. Right after the voice gate
    /// opens, returns the pre-roll frames first (one per call), then the frame that opened it.
    pub fn poll_frame(&mut self) -> Result<Option<CaptureFrame<'_>>, CodecError> {
        if self.draining.is_some() {
            return self.drain_preroll().map(Some);
        }
        let ch = self.config.layout.count();
        let samples = self.config.opus.frame.samples();
        let n = samples * ch;
        if self.fifo.len() < n {
            return Ok(None);
        }
        let frame = &mut self.frame[..n];
        frame.copy_from_slice(&self.fifo[..n]);
        self.fifo.drain(..n);

        if let Some(g) = self.config.gain {
            apply_gain(frame, g);
        }
        if let Some(ns) = &mut self.denoise {
            ns.process(frame);
        }
        #[cfg(feature = "aec")]
        if let Some(aec) = &mut self.echo {
            aec.process(frame);
        }
        let mono = &mut self.mono[..samples];
        for (m, f) in mono.iter_mut().zip(frame.chunks_exact(ch)) {
            *m = f.iter().sum::<f32>() / ch as f32;
        }
        let onset = self.onset.process(mono);
        let mut gate = None;
        if let Some(vad) = &mut self.vad {
            if !vad.process(mono, onset) {
                gate = Some(GateReason::Vad);
            }
        }
        if self.config.push_to_talk && !self.ptt_pressed {
            gate = Some(GateReason::PushToTalk);
        }
        if let Some(d) = &mut self.dumper {
            d.write(DumpStage::PostDsp, frame, SAMPLE_RATE_HZ, ch as u16)?;
        }
        // Frames are at most 2880 samples, so the count fits u32.
        let samples_u32 = samples as u32;
        match gate {
            Some(GateReason::Vad) => {
                if self.preroll.entry_samples() != samples {
                    self.preroll.reset(samples);
                }
                self.preroll.push(frame);
                self.frames_gated += 1;
                return Ok(Some(CaptureFrame::Gated { samples: samples_u32, reason: GateReason::Vad }));
            }
            Some(reason) => {
                // Nothing from before push-to-talk was pressed is ever sent.
                self.preroll.clear();
                self.frames_gated += 1;
                return Ok(Some(CaptureFrame::Gated { samples: samples_u32, reason }));
            }
            None => {}
        }
        self.pending = samples;
        if self.preroll.len() > 0 {
            self.draining = Some(0);
            return self.drain_preroll().map(Some);
        }
        self.encode_pending().map(Some)
    }

    /// Encodes the next pre-roll frame, or when they are all sent, the frame that opened the gate.
    fn drain_preroll(&mut self) -> Result<CaptureFrame<'_>, CodecError> {
        while let Some(i) = self.draining {
            if i >= self.preroll.len() {
                break;
            }
            self.draining = Some(i + 1);
            let entry = self.preroll.entry_samples();
            // At most 200 ms plus a frame: fits u32.
            let age = ((self.preroll.len() - i) * entry) as u32;
            let len = self.encoder.encode_float(self.preroll.get(i), &mut self.packet).map_err(CodecError::opus)?;
            if self.config.opus.dtx && len <= 2 {
                continue;
            }
            self.frames_encoded += 1;
            return Ok(CaptureFrame::Preroll { payload: &self.packet[..len], samples: entry as u32, age_samples: age });
        }
        self.draining = None;
        self.preroll.clear();
        self.encode_pending()
    }

    /// Encodes the processed frame waiting in `frame` (`pending` samples per channel), applying DTX.
    fn encode_pending(&mut self) -> Result<CaptureFrame<'_>, CodecError> {
        let samples = self.pending;
        let n = samples * self.config.layout.count();
        let samples_u32 = samples as u32;
        let len = self.encoder.encode_float(&self.frame[..n], &mut self.packet).map_err(CodecError::opus)?;
        // The onset detector last saw this frame (the pre-roll drain processes no new frames).
        self.dtx_quiet = if self.onset.background() { self.dtx_quiet.saturating_add(samples) } else { 0 };
        if self.config.opus.dtx && (len <= 2 || self.dtx_quiet > DTX_AFTER) {
            self.frames_gated += 1;
            return Ok(CaptureFrame::Gated { samples: samples_u32, reason: GateReason::Dtx });
        }
        self.frames_encoded += 1;
        Ok(CaptureFrame::Packet { payload: &self.packet[..len], samples: samples_u32 })
    }
}

/// The pre-roll ring for a voice gate configuration (empty without one).
fn preroll_ring(vad: Option<VadConfig>, channels: usize) -> PrerollRing {
    let ms = vad.map_or(0, |v| v.preroll_ms.min(MAX_PREROLL_MS)) as usize;
    PrerollRing::new(ms * SAMPLE_RATE_HZ as usize / 1000, crate::FrameDuration::Ms60.samples(), channels)
}
