//! The audio half of a client: capture → encode → [`Session::send_frame`], and per speaker
//! [`Session::playout`] → decode → mix.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use voice_codec::{
    CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, Mixer, PlaybackConfig, PlaybackPipeline,
    PlaybackStats, VadConfig,
};
use voice_jitter::Stretch;
use voice_proto::PublicId;

use crate::{Error, Session, TalkMode};

/// What the [`Media`] side needs: the microphone's and the speaker's formats and the encoder settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Capture pipeline settings (device rate and channels, Opus settings, noise suppression, …). Its
    /// `push_to_talk` and `vad` fields are driven by the session's [`TalkMode`] and need not be set.
    pub capture: CaptureConfig,
    /// Voice activity settings used in [`TalkMode::VoiceActivation`].
    pub vad: VadConfig,
    /// Output device rate, Hz.
    pub output_rate_hz: u32,
    /// Output device channels.
    pub output_channels: u16,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            capture: CaptureConfig::default(),
            vad: VadConfig::default(),
            output_rate_hz: 48_000,
            output_channels: 1,
        }
    }
}

/// Capture pipeline, one decoder pipeline per remote speaker, and the mixer. Sans-IO like [`Session`]: the caller
/// pushes microphone samples in ([`capture`](Self::capture)) and asks for one frame period of speaker output at a
/// time ([`mix`](Self::mix)). It allocates only when a new speaker appears.
///
/// Why a separate struct: the [`Session`] deals in Opus packets and protocol state only, so it can be tested and
/// driven without any audio code; `Media` is the CPU-heavy audio work that a driver runs on its media thread.
pub struct Media {
    capture: CapturePipeline,
    vad: VadConfig,
    speakers: BTreeMap<PublicId, PlaybackPipeline>,
    volumes: BTreeMap<PublicId, f32>,
    mixer: Mixer,
    /// Scratch list of speaker ids (reused every frame).
    ids: Vec<PublicId>,
    /// Was the last captured frame sent (for END_OF_TALKSPURT bookkeeping in voice activation).
    talking: bool,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media").field("speakers", &self.speakers.len()).finish_non_exhaustive()
    }
}

impl Media {
    /// Builds the pipelines; fails on an unsupported device format or out-of-range settings.
    pub fn new(config: MediaConfig) -> Result<Self, Error> {
        let capture = CapturePipeline::new(CaptureConfig { push_to_talk: true, vad: None, ..config.capture })?;
        let mixer = Mixer::new(ChannelLayout::Mono, config.output_rate_hz, config.output_channels)?;
        Ok(Self {
            capture,
            vad: config.vad,
            speakers: BTreeMap::new(),
            volumes: BTreeMap::new(),
            mixer,
            ids: Vec::new(),
            talking: false,
        })
    }

    /// Pushes microphone samples (interleaved, the configured device format), encodes every complete frame and
    /// hands it to the session (which sends it, or not: mute, push-to-talk). Applies the session's encoder hints
    /// (relay bitrate / FEC / loss hints, the room's frame duration) first.
    pub fn capture(&mut self, session: &mut Session, now: Instant, samples: &[f32]) -> Result<(), Error> {
        if let Some(hint) = session.poll_encoder_hint() {
            let settings = hint.apply_to(self.capture.config().opus);
            self.capture.set_opus_settings(settings)?;
        }
        let want_vad = session.talk_mode() == TalkMode::VoiceActivation;
        if want_vad != self.capture.config().vad.is_some() {
            self.capture.set_vad(want_vad.then_some(self.vad));
        }
        self.capture.push(samples)?;
        loop {
            // The encoder runs only while the session would send the frame (push-to-talk held, not muted, …).
            self.capture.set_push_to_talk(session.wants_audio());
            let Some(frame) = self.capture.poll_frame()? else { break };
            match frame {
                CaptureFrame::Packet { payload, .. } => {
                    self.talking = session.send_frame(now, payload, false)?;
                }
                CaptureFrame::Gated { samples, .. } => {
                    self.talking = false;
                    session.skip_audio(samples);
                }
            }
        }
        Ok(())
    }

    /// One playout slot: takes every remote speaker's playout decision from the session, decodes it, and mixes
    /// one frame period of the room. Returns the device-format audio to play (interleaved).
    pub fn mix(&mut self, session: &mut Session, now: Instant) -> Result<&[f32], Error> {
        let samples = session.frame_ms() as usize * 48;
        self.speakers.retain(|id, _| session.has_speaker(*id));
        self.ids.clear();
        self.ids.extend(session.speakers());
        for &id in &self.ids {
            if !self.speakers.contains_key(&id) {
                let volume = self.volumes.get(&id).copied().unwrap_or(1.0);
                let p = PlaybackPipeline::new(PlaybackConfig { volume, ..PlaybackConfig::default() })?;
                self.speakers.insert(id, p);
            }
            let Some(p) = self.speakers.get_mut(&id) else { continue };
            // One slot per frame period, plus one more when a shrink left less than a frame (bounded).
            for _ in 0..4 {
                if p.buffered() >= samples {
                    break;
                }
                // The slot starts playing when what the decoder already holds has played.
                let starts = now + Duration::from_micros(p.buffered() as u64 * 1_000 / 48);
                let Some(mut playout) = session.poll_playout(starts, id) else { break };
                // A shrink with nothing else buffered would leave the rest of this period to concealment: the
                // next packet is not due before the next period. The excess delay is then only the phase between
                // packet arrival and the playout period, which no shrink can remove; skip it (the buffer allows
                // the audio side to apply less than asked).
                if matches!(playout.stretch, Stretch::Shrink { .. }) && session.jitter_depth(id) == 0 {
                    playout.stretch = Stretch::None;
                }
                p.play(&playout)?;
            }
        }
        Ok(self.mixer.mix(self.speakers.values_mut(), samples)?)
    }

    /// Sets a remote speaker's volume (linear, 0 ..= 4; 1 is unchanged).
    pub fn set_volume(&mut self, id: PublicId, volume: f32) -> Result<(), Error> {
        if !(0.0..=4.0).contains(&volume) {
            return Err(crate::ConfigError::Invalid("volume must be in 0..=4").into());
        }
        self.volumes.insert(id, volume);
        if let Some(p) = self.speakers.get_mut(&id) {
            p.set_volume(volume)?;
        }
        Ok(())
    }

    /// Decoder counters of a remote speaker (decoded, FEC, PLC, corrupt, …).
    #[must_use]
    pub fn playback_stats(&self, id: PublicId) -> Option<PlaybackStats> {
        self.speakers.get(&id).map(PlaybackPipeline::stats)
    }

    /// The encoder settings now in use.
    #[must_use]
    pub fn opus_settings(&self) -> voice_codec::OpusSettings {
        self.capture.config().opus
    }

    /// Interleaved channels of the microphone samples [`capture`](Self::capture) takes.
    #[must_use]
    pub fn input_channels(&self) -> u16 {
        self.capture.config().device_channels
    }

    /// Whether the last captured frame was sent.
    #[must_use]
    pub fn is_talking(&self) -> bool {
        self.talking
    }
}
