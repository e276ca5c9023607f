//! The audio half of a client: capture → encode → [`Session::send_frame`], and per speaker
//! [`Session::playout`] → decode → mix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use voice_codec::{
    CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, DumpStage, Dumper, Mixer, PlaybackConfig,
    PlaybackPipeline, PlaybackStats, VadConfig,
};
use voice_proto::PublicId;

use crate::{Error, Session, TalkMode};

/// What the [`Media`] side needs: the microphone's and the speaker's formats and the encoder settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Capture pipeline settings (device rate and channels, Opus settings, noise suppression, …). Its
    /// `push_to_talk` and `vad` fields are driven by the session's [`TalkMode`] and need not be set. Default
    /// [`CaptureConfig::default`]: 48 kHz mono in, Opus at 32 kb/s in 20 ms frames, no processing.
    pub capture: CaptureConfig,
    /// Voice activity settings used in [`TalkMode::VoiceActivation`]. Default [`VadConfig::default`].
    pub vad: VadConfig,
    /// Output device rate, Hz. Default 48 000.
    pub output_rate_hz: u32,
    /// Output device channels. Default 1.
    pub output_channels: u16,
    /// Ask the OS for real-time scheduling of the [`Client`](crate::Client)'s media and network threads (falls back
    /// to a raised, then to normal priority when that is not allowed; see
    /// [`Client::thread_priorities`](crate::Client::thread_priorities)). Default `true`.
    pub realtime_priority: bool,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            capture: CaptureConfig::default(),
            vad: VadConfig::default(),
            output_rate_hz: 48_000,
            output_channels: 1,
            realtime_priority: true,
        }
    }
}

/// Capture pipeline, one decoder pipeline per remote speaker, and the mixer. Sans-IO like [`Session`]: the caller
/// pushes microphone samples in ([`capture`](Self::capture)) and asks for up to a frame period of speaker output at a
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
    /// Directory of the audio dump, while one is written.
    dump: Option<PathBuf>,
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
            dump: None,
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
                CaptureFrame::Preroll { payload, age_samples, .. } => {
                    // Voice activation opened its gate: the frames just before it go first, at their own times.
                    self.talking |= session.send_preroll(now, payload, age_samples)?;
                }
                CaptureFrame::Gated { samples, .. } => {
                    // Voice activation closed the gate (or the key is up): end the talkspurt with this frame so
                    // receivers stop at once; its END_OF_TALKSPURT packet advances the timestamp by the frame.
                    if !(std::mem::take(&mut self.talking) && session.end_talkspurt()?) {
                        session.skip_audio(samples);
                    }
                }
            }
        }
        Ok(())
    }

    /// Up to one frame period of the room's audio: each remote speaker whose previous slot has been mixed away
    /// gets its next playout decision from the session (at `now`), decoded; then as much as every speaker with
    /// audio holds, at most a frame, is mixed. Returns the device-format audio to play (interleaved; empty when the
    /// resampler is still filling a block).
    ///
    /// Call it when the device is about to need audio (a driver: when its speaker ring runs low), at the real
    /// time: each jitter buffer then decides whether a packet is there by the moment its slot is needed, and the
    /// time-stretch it asks for moves the moment of the next decision. A slot shrunk in a pause makes this call
    /// return less than a frame, so the device comes back for more sooner: that is how a listener's playout moves
    /// toward the packets' arrival, and delay does not stay on a clean link.
    pub fn mix(&mut self, session: &mut Session, now: Instant) -> Result<&[f32], Error> {
        let samples = session.frame_ms() as usize * 48;
        self.speakers.retain(|id, _| session.has_speaker(*id));
        self.ids.clear();
        self.ids.extend(session.speakers());
        for &id in &self.ids {
            if !self.speakers.contains_key(&id) {
                let volume = self.volumes.get(&id).copied().unwrap_or(1.0);
                // Comfort noise fills the pauses of rooms with DTX (senders stop in background noise); elsewhere a
                // talkspurt's end (push-to-talk released, voice activation closed) is followed by silence.
                let comfort_noise = session.channel_config().is_some_and(|c| c.dtx);
                let mut p =
                    PlaybackPipeline::new(PlaybackConfig { volume, comfort_noise, ..PlaybackConfig::default() })?;
                if let Some(dir) = &self.dump {
                    // A debugging aid: a speaker whose file cannot be created is simply not dumped.
                    p.set_dumper(speaker_dumper(dir, id).ok());
                }
                self.speakers.insert(id, p);
            }
            let Some(p) = self.speakers.get_mut(&id) else { continue };
            // One decision per slot, when the previous slot has been played: the decision is taken at the moment
            // its audio is needed, so the jitter buffer's stretch requests are carried out as asked.
            if p.buffered() == 0 {
                if let Some(playout) = session.poll_playout(now, id) {
                    p.play(&playout)?;
                }
            }
        }
        // As much as every speaker holds (the others keep the rest of their slot for the next call).
        let n = self.speakers.values().map(PlaybackPipeline::buffered).filter(|&b| b > 0).min();
        self.mixer.mix(self.speakers.values_mut(), n.unwrap_or(samples).min(samples))?;
        // What is about to be played is the far end for echo cancellation (a no-op unless it is enabled).
        self.capture.push_echo_reference(self.mixer.last_mix(), self.mixer.channels());
        Ok(self.mixer.last_output())
    }

    /// Starts (`Some(dir)`) or stops (`None`) the audio dump for debugging: 32-bit float WAV files of the
    /// microphone as captured (`raw_mic.wav`, device format), the frames after DSP just before the encoder
    /// (`post_dsp.wav`) and, per remote speaker, the decoder output before volume
    /// (`speaker-<public id>/post_opus_decode.wav`), written in `dir` (created if missing). Starting a new dump
    /// or stopping finalizes the files of the previous one. Opening files allocates and writing does file I/O:
    /// call this on a media thread, never from an audio callback. A file that fails to write makes `capture` or
    /// `mix` fail; stop the dump then.
    pub fn set_dump(&mut self, dir: Option<&Path>) -> Result<(), Error> {
        let mut result = Ok(());
        let mut finish = |d: Option<Dumper>| {
            if let Some(Err(e)) = d.map(Dumper::finish) {
                result = Err(Error::Codec(e));
            }
        };
        finish(self.capture.set_dumper(None));
        for p in self.speakers.values_mut() {
            finish(p.set_dumper(None));
        }
        self.dump = None;
        result?;
        let Some(dir) = dir else { return Ok(()) };
        if let Err(e) = self.start_dump(dir) {
            // All or nothing: a dump that could not start for one speaker does not run for the others.
            let _ = self.capture.set_dumper(None).map(Dumper::finish);
            for p in self.speakers.values_mut() {
                let _ = p.set_dumper(None).map(Dumper::finish);
            }
            return Err(e);
        }
        self.dump = Some(dir.to_path_buf());
        Ok(())
    }

    fn start_dump(&mut self, dir: &Path) -> Result<(), Error> {
        std::fs::create_dir_all(dir)?;
        self.capture.set_dumper(Some(Dumper::new(dir, &[DumpStage::RawMic, DumpStage::PostDsp])));
        for (&id, p) in &mut self.speakers {
            p.set_dumper(Some(speaker_dumper(dir, id)?));
        }
        Ok(())
    }

    /// Where the audio dump is being written, if it is.
    #[must_use]
    pub fn dump_dir(&self) -> Option<&Path> {
        self.dump.as_deref()
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

/// A dumper of one remote speaker's decoder output, in its own subdirectory of `dir`.
fn speaker_dumper(dir: &Path, id: PublicId) -> Result<Dumper, Error> {
    let sub = dir.join(format!("speaker-{}", id.0));
    std::fs::create_dir_all(&sub)?;
    Ok(Dumper::new(sub, &[DumpStage::PostOpusDecode]))
}
