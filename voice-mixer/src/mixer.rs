//! The room mixer: talkers in, one mix per talking listener plus one shared mix out, every frame period.

use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_codec::{
    CaptureConfig, CaptureFrame, CapturePipeline, OpusSettings, PlaybackConfig, PlaybackPipeline, SlotSource,
};
use voice_jitter::{JitterBuffer, Packet};
use voice_proto::{PublicId, Seq, Timestamp};

use crate::MixerError;

/// Settings of a [`Mixer`]. Build one with [`MixerConfig::default`] and the `with_*` methods.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct MixerConfig {
    /// The encoders' settings: bitrate, complexity, FEC and expected loss, frame duration (the room's frame
    /// duration: talkers' packets and the mix's frames have the same length). Default: 32 kb/s, complexity 5,
    /// in-band FEC on at 10 % expected loss, 20 ms frames, no DTX.
    pub opus: OpusSettings,
    /// Most talkers at once. Default 16.
    pub max_talkers: usize,
    /// Most listeners in mixed mode. Default 256.
    pub max_listeners: usize,
}

impl Default for MixerConfig {
    fn default() -> Self {
        Self { opus: OpusSettings::default(), max_talkers: 16, max_listeners: 256 }
    }
}

impl MixerConfig {
    /// Sets the encoders' settings (and with them the frame duration).
    #[must_use]
    pub const fn with_opus(mut self, opus: OpusSettings) -> Self {
        self.opus = opus;
        self
    }

    /// Sets the most talkers and listeners the mixer takes.
    #[must_use]
    pub const fn with_limits(mut self, max_talkers: usize, max_listeners: usize) -> Self {
        self.max_talkers = max_talkers;
        self.max_listeners = max_listeners;
        self
    }
}

/// Who an output goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipients<'a> {
    /// One talking listener: its mix-minus.
    One(PublicId),
    /// Every listener not talking in this frame: the shared mix.
    Shared(&'a [PublicId]),
}

/// One encoded mix of one frame period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixOutput<'a> {
    /// Who gets it.
    pub recipients: Recipients<'a>,
    /// The talkers heard in it (never a recipient's own voice).
    pub members: &'a [PublicId],
    /// The Opus packet.
    pub payload: &'a [u8],
}

/// Counters since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MixerStats {
    /// Frame periods mixed.
    pub frames: u64,
    /// Opus encodes (one per talking listener and one for the shared mix, per frame with talkers).
    pub encodes: u64,
    /// Talkers' frames decoded from their own packet.
    pub decoded: u64,
    /// Talkers' frames recovered from the next packet's FEC.
    pub fec: u64,
    /// Talkers' frames concealed.
    pub concealed: u64,
    /// Talker packets refused by their jitter buffer (late, duplicate, full).
    pub refused: u64,
}

struct Talker {
    id: PublicId,
    jitter: JitterBuffer<Bytes>,
    playback: PlaybackPipeline,
    /// This frame's audio.
    frame: Vec<f32>,
    /// Heard in this frame (decoded, recovered or concealed audio, not silence).
    active: bool,
}

/// An Opus encoder and the last packet it produced.
struct Encoder {
    capture: CapturePipeline,
    packet: Vec<u8>,
    len: usize,
}

impl Encoder {
    fn new(opus: OpusSettings) -> Result<Self, MixerError> {
        let capture = CapturePipeline::new(CaptureConfig { opus, ..CaptureConfig::default() })?;
        Ok(Self { capture, packet: vec![0; voice_proto::MAX_DATAGRAM_LEN], len: 0 })
    }

    /// Encodes one frame of 48 kHz mono audio into `packet`.
    fn encode(&mut self, frame: &[f32]) -> Result<(), MixerError> {
        self.capture.push(frame)?;
        self.len = 0;
        while let Some(f) = self.capture.poll_frame()? {
            if let CaptureFrame::Packet { payload, .. } | CaptureFrame::Preroll { payload, .. } = f {
                let n = payload.len().min(self.packet.len());
                self.packet[..n].copy_from_slice(&payload[..n]);
                self.len = n;
            }
        }
        Ok(())
    }
}

struct Listener {
    id: PublicId,
    /// Its own encoder, for the frames in which it talks (mix-minus).
    encoder: Encoder,
}

/// What one frame produced, in order: the talking listeners' mix-minus outputs, then the shared one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    /// Listener index, and where its member list starts in `own_members` (it is `members.len() - 1` long).
    Own(usize, usize),
    Shared,
}

/// The mixer of one room. See the [crate docs](crate).
pub struct Mixer {
    config: MixerConfig,
    origin: Instant,
    frame_samples: usize,
    period: Duration,
    /// The next frame boundary, once the first packet arrived.
    next_tick: Option<Instant>,
    talkers: Vec<Talker>,
    listeners: Vec<Listener>,
    shared: Encoder,
    mix: Vec<f32>,
    minus: Vec<f32>,
    members: Vec<PublicId>,
    /// The talkers in each talking listener's mix-minus (`members` without itself), one list after the other.
    own_members: Vec<PublicId>,
    shared_to: Vec<PublicId>,
    outputs: Vec<Out>,
    cursor: usize,
    stats: MixerStats,
}

impl std::fmt::Debug for Mixer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mixer")
            .field("talkers", &self.talkers.len())
            .field("listeners", &self.listeners.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Mixer {
    /// A mixer with `config`; `origin` is the time its talkers' jitter buffers count from (any instant not later
    /// than the first packet).
    pub fn new(config: MixerConfig, origin: Instant) -> Result<Self, MixerError> {
        if config.max_talkers == 0 || config.max_listeners == 0 {
            return Err(MixerError::Config("max_talkers and max_listeners must be at least 1".into()));
        }
        let frame_samples = config.opus.frame.samples();
        let period = Duration::from_millis(u64::from(config.opus.frame.millis()));
        Ok(Self {
            config,
            origin,
            frame_samples,
            period,
            next_tick: None,
            talkers: Vec::with_capacity(config.max_talkers),
            listeners: Vec::with_capacity(config.max_listeners),
            shared: Encoder::new(config.opus)?,
            mix: vec![0.0; frame_samples],
            minus: vec![0.0; frame_samples],
            members: Vec::with_capacity(config.max_talkers),
            own_members: Vec::with_capacity(config.max_talkers * config.max_talkers),
            shared_to: Vec::with_capacity(config.max_listeners),
            outputs: Vec::with_capacity(config.max_talkers + 1),
            cursor: 0,
            stats: MixerStats::default(),
        })
    }

    /// Counters since construction.
    #[must_use]
    pub fn stats(&self) -> MixerStats {
        self.stats
    }

    /// Puts `id` in mixed mode: from the next frame it gets a mix (its own mix-minus while it talks).
    pub fn add_listener(&mut self, id: PublicId) -> Result<(), MixerError> {
        if self.listeners.iter().any(|l| l.id == id) {
            return Err(MixerError::DuplicateListener(id));
        }
        if self.listeners.len() >= self.config.max_listeners {
            return Err(MixerError::TooManyListeners { max: self.config.max_listeners });
        }
        self.listeners.push(Listener { id, encoder: Encoder::new(self.config.opus)? });
        Ok(())
    }

    /// Takes `id` out of mixed mode. Returns whether it was in it.
    pub fn remove_listener(&mut self, id: PublicId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|l| l.id != id);
        before != self.listeners.len()
    }

    /// Forgets talker `id` (it left the room). Returns whether it was a talker.
    pub fn remove_talker(&mut self, id: PublicId) -> bool {
        let before = self.talkers.len();
        self.talkers.retain(|t| t.id != id);
        before != self.talkers.len()
    }

    /// One opened audio packet of `sender` (its Opus payload), arrived at `now`. A packet its jitter buffer refuses
    /// (late, duplicate) is counted, not an error.
    pub fn handle_audio(
        &mut self,
        now: Instant,
        sender: PublicId,
        seq: Seq,
        timestamp: Timestamp,
        end_of_talkspurt: bool,
        payload: Bytes,
    ) -> Result<(), MixerError> {
        let i = match self.talkers.iter().position(|t| t.id == sender) {
            Some(i) => i,
            None => {
                if self.talkers.len() >= self.config.max_talkers {
                    return Err(MixerError::TooManyTalkers { max: self.config.max_talkers });
                }
                let jitter_config = voice_jitter::Config::default().with_frame_ms(self.config.opus.frame.millis());
                let jitter = JitterBuffer::new(jitter_config, self.origin)
                    .map_err(|e| MixerError::Config(format!("jitter buffer: {e}")))?;
                // No comfort noise: a talker in silence is left out of the mix, not filled in.
                let playback_config =
                    PlaybackConfig { frame: self.config.opus.frame, comfort_noise: false, ..PlaybackConfig::default() };
                let playback = PlaybackPipeline::new(playback_config)?;
                let frame = vec![0.0; self.frame_samples];
                self.talkers.push(Talker { id: sender, jitter, playback, frame, active: false });
                self.talkers.len() - 1
            }
        };
        let packet = Packet { seq, timestamp, end_of_talkspurt, payload };
        if self.talkers[i].jitter.push(now, packet).is_err() {
            self.stats.refused += 1;
        }
        if self.next_tick.is_none() {
            self.next_tick = Some(now + self.period);
        }
        Ok(())
    }

    /// When the next frame period is due (after the first packet).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    /// Mixes every frame period due by `now` (at most a second's worth at once: after a longer stall the clock
    /// jumps ahead). Take what each produced with [`Mixer::poll_output`] before the next call: outputs of an
    /// earlier call that were not taken are dropped.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), MixerError> {
        self.outputs.clear();
        self.cursor = 0;
        let Some(mut tick) = self.next_tick else { return Ok(()) };
        let mut periods = 0;
        while tick <= now {
            periods += 1;
            if periods > 1_000 / self.config.opus.frame.millis() {
                tick = now;
                break;
            }
            // Only the last frame's outputs are kept: earlier ones are late already.
            self.outputs.clear();
            self.mix_frame(tick)?;
            tick += self.period;
        }
        self.next_tick = Some(tick);
        Ok(())
    }

    /// The next output of the last frame mixed, if any.
    pub fn poll_output(&mut self) -> Option<MixOutput<'_>> {
        let out = *self.outputs.get(self.cursor)?;
        self.cursor += 1;
        Some(match out {
            Out::Own(l, start) => {
                let listener = &self.listeners[l];
                let n = self.members.len().saturating_sub(1);
                MixOutput {
                    recipients: Recipients::One(listener.id),
                    members: &self.own_members[start..start + n],
                    payload: &listener.encoder.packet[..listener.encoder.len],
                }
            }
            Out::Shared => MixOutput {
                recipients: Recipients::Shared(&self.shared_to),
                members: &self.members,
                payload: &self.shared.packet[..self.shared.len],
            },
        })
    }

    fn mix_frame(&mut self, now: Instant) -> Result<(), MixerError> {
        self.stats.frames += 1;
        let n = self.frame_samples;
        self.members.clear();
        self.mix.fill(0.0);
        for t in &mut self.talkers {
            t.active = false;
            // Decide and play slots until a whole frame is buffered (a shrink can leave less than a frame). Each
            // decision is asked at the time its slot starts playing in the mix: after the audio already buffered,
            // as a sound card's callback would ask. (Asked at the tick itself, the buffer would count the buffered
            // audio as delay it does not see, ask to shrink it away, and then come up short.)
            let mut slots = 0;
            while t.playback.buffered() < n && slots < 4 {
                slots += 1;
                let ahead = Duration::from_micros(t.playback.buffered() as u64 * 1_000 / 48);
                let playout = t.jitter.poll_playout(now + ahead);
                let report = t.playback.play(&playout)?;
                match report.source {
                    SlotSource::Decoded => self.stats.decoded += 1,
                    SlotSource::Fec => self.stats.fec += 1,
                    SlotSource::Concealed | SlotSource::CorruptConcealed => self.stats.concealed += 1,
                    SlotSource::Silence => continue,
                }
                t.active = true;
            }
            let got = t.playback.read(&mut t.frame[..n]);
            t.frame[got..n].fill(0.0);
            if t.active {
                self.members.push(t.id);
                for (m, s) in self.mix.iter_mut().zip(&t.frame) {
                    *m += s;
                }
            }
        }
        self.own_members.clear();
        self.shared_to.clear();
        if self.members.is_empty() {
            return Ok(());
        }
        for (l, listener) in self.listeners.iter_mut().enumerate() {
            let own = self.talkers.iter().find(|t| t.active && t.id == listener.id);
            let Some(own) = own else {
                self.shared_to.push(listener.id);
                continue;
            };
            if self.members.len() == 1 {
                // The only talker: nothing to hear but itself.
                continue;
            }
            for ((m, all), mine) in self.minus.iter_mut().zip(&self.mix).zip(&own.frame) {
                *m = soft_clip(all - mine);
            }
            listener.encoder.encode(&self.minus)?;
            self.stats.encodes += 1;
            let start = self.own_members.len();
            self.own_members.extend(self.members.iter().filter(|&&id| id != listener.id));
            self.outputs.push(Out::Own(l, start));
        }
        if !self.shared_to.is_empty() {
            for m in &mut self.mix {
                *m = soft_clip(*m);
            }
            self.shared.encode(&self.mix)?;
            self.stats.encodes += 1;
            self.outputs.push(Out::Shared);
        }
        Ok(())
    }
}

/// Level up to which a mix passes unchanged; above it, [`soft_clip`] bends it smoothly toward full scale.
const KNEE: f32 = 0.8;

/// Soft clipping of an overloaded mix: linear up to [`KNEE`], then a tanh curve that approaches ±1 (no flat tops
/// short of far overload, continuous slope at the knee).
fn soft_clip(x: f32) -> f32 {
    let a = x.abs();
    if a <= KNEE {
        return x;
    }
    let room = 1.0 - KNEE;
    (KNEE + room * ((a - KNEE) / room).tanh()).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::soft_clip;

    #[test]
    fn soft_clip_is_linear_below_the_knee_and_never_reaches_full_scale() {
        for x in [0.0f32, 0.1, -0.5, 0.8, -0.8] {
            assert_eq!(soft_clip(x), x);
        }
        let mut last = soft_clip(0.8);
        for i in 1..=400 {
            let y = soft_clip(0.8 + i as f32 * 0.01);
            assert!(y >= last && y <= 1.0, "monotonic, within full scale: {y}");
            if i <= 60 {
                assert!(y > last && y < 1.0, "strictly rising below 1.4: {y}");
            }
            assert_eq!(soft_clip(-(0.8 + i as f32 * 0.01)), -y, "odd");
            last = y;
        }
        // The slope is continuous at the knee.
        assert!((soft_clip(0.8001) - 0.8001).abs() < 1e-6);
    }
}
