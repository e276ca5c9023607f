//! Configuration of the capture and playback pipelines.

use crate::CodecError;

/// The internal sample rate of both pipelines (Opus full band).
pub const SAMPLE_RATE_HZ: u32 = 48_000;

/// Longest slot a playback pipeline produces in one call, samples per channel at 48 kHz (120 ms, Opus' longest
/// packet, plus room for a stretch of up to 60 ms).
pub const MAX_SLOT_SAMPLES: u32 = 5_760 + 2_880;

/// Opus frame duration. Each is a whole number of the 10 ms noise-suppression frames. Default:
/// [`Ms20`](Self::Ms20).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FrameDuration {
    /// 10 ms, 480 samples per channel.
    Ms10,
    /// 20 ms, 960 samples per channel (the default).
    #[default]
    Ms20,
    /// 40 ms, 1920 samples per channel.
    Ms40,
    /// 60 ms, 2880 samples per channel.
    Ms60,
}

impl FrameDuration {
    /// Samples per channel at 48 kHz.
    pub const fn samples(self) -> usize {
        match self {
            Self::Ms10 => 480,
            Self::Ms20 => 960,
            Self::Ms40 => 1920,
            Self::Ms60 => 2880,
        }
    }

    /// Duration in milliseconds.
    pub const fn millis(self) -> u32 {
        match self {
            Self::Ms10 => 10,
            Self::Ms20 => 20,
            Self::Ms40 => 40,
            Self::Ms60 => 60,
        }
    }

    /// The duration of `ms` milliseconds, if it is one of 10, 20, 40, 60.
    pub const fn from_millis(ms: u32) -> Option<Self> {
        match ms {
            10 => Some(Self::Ms10),
            20 => Some(Self::Ms20),
            40 => Some(Self::Ms40),
            60 => Some(Self::Ms60),
            _ => None,
        }
    }
}

/// Channel layout of the encoded stream (and of the pipeline's internal 48 kHz signal). Default: [`Mono`](Self::Mono).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChannelLayout {
    /// One channel: the usual choice for voice (the default).
    #[default]
    Mono,
    /// Two interleaved channels (e.g. a music bot).
    Stereo,
}

impl ChannelLayout {
    /// Number of channels.
    pub const fn count(self) -> usize {
        match self {
            Self::Mono => 1,
            Self::Stereo => 2,
        }
    }

    pub(crate) fn opus(self) -> audiopus::Channels {
        match self {
            Self::Mono => audiopus::Channels::Mono,
            Self::Stereo => audiopus::Channels::Stereo,
        }
    }
}

/// Opus application mode. Default: [`Voip`](Self::Voip).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Application {
    /// Best for speech (`OPUS_APPLICATION_VOIP`; the default).
    #[default]
    Voip,
    /// Best for music and mixed content (`OPUS_APPLICATION_AUDIO`).
    Audio,
    /// Lowest algorithmic delay, CELT only (`OPUS_APPLICATION_RESTRICTED_LOWDELAY`).
    LowDelay,
}

impl Application {
    pub(crate) fn opus(self) -> audiopus::Application {
        match self {
            Self::Voip => audiopus::Application::Voip,
            Self::Audio => audiopus::Application::Audio,
            Self::LowDelay => audiopus::Application::LowDelay,
        }
    }
}

/// Encoder settings; every field can be changed at runtime with
/// [`CapturePipeline::set_opus_settings`](crate::CapturePipeline::set_opus_settings) (e.g. to follow receiver
/// reports). The application mode and channel layout are fixed at construction.
///
/// The defaults (each field says its own):
///
/// ```
/// use voice_codec::{FrameDuration, OpusSettings};
///
/// assert_eq!(
///     OpusSettings::default(),
///     OpusSettings {
///         bitrate_bps: 32_000,
///         complexity: 5,
///         vbr: true,
///         inband_fec: true,
///         dtx: false,
///         expected_loss_pct: 10,
///         frame: FrameDuration::Ms20,
///     }
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpusSettings {
    /// Target bitrate in bits per second, 6 000 ..= 510 000 (e.g. 16 000 for voice, 96 000 for music). Default:
    /// 32 000.
    pub bitrate_bps: u32,
    /// Encoder complexity 0 ..= 10 (CPU against quality). Default: 5.
    pub complexity: u8,
    /// Variable bitrate. Default: `true`.
    pub vbr: bool,
    /// In-band forward error correction: each packet carries a low-bitrate copy of the previous frame. Default:
    /// `true`.
    pub inband_fec: bool,
    /// Discontinuous transmission: frames that are background are not sent and reported as
    /// [`GateReason::Dtx`](crate::GateReason::Dtx): those Opus itself encodes as 1–2 byte DTX packets, and (since
    /// libopus keeps sending stationary noise above about −45 dBFS at the default complexity) frames that stayed
    /// within a few dB of the tracked noise floor (or below −60 dBFS), below −30 dBFS, for more than 200 ms.
    /// Default: `false`.
    pub dtx: bool,
    /// Expected packet loss in percent, 0 ..= 100; libopus sizes the FEC data from it (FEC needs it > 0). Default:
    /// 10.
    pub expected_loss_pct: u8,
    /// Frame duration. Default: [`FrameDuration::Ms20`].
    pub frame: FrameDuration,
}

impl Default for OpusSettings {
    fn default() -> Self {
        Self {
            bitrate_bps: 32_000,
            complexity: 5,
            vbr: true,
            inband_fec: true,
            dtx: false,
            expected_loss_pct: 10,
            frame: FrameDuration::Ms20,
        }
    }
}

impl OpusSettings {
    pub(crate) fn validate(&self) -> Result<(), CodecError> {
        if !(6_000..=510_000).contains(&self.bitrate_bps) {
            return Err(CodecError::InvalidConfig("bitrate_bps must be in 6000..=510000"));
        }
        if self.complexity > 10 {
            return Err(CodecError::InvalidConfig("complexity must be in 0..=10"));
        }
        if self.expected_loss_pct > 100 {
            return Err(CodecError::InvalidConfig("expected_loss_pct must be in 0..=100"));
        }
        Ok(())
    }
}

/// Voice activity detection settings.
///
/// The defaults (each field says its own):
///
/// ```
/// use voice_codec::VadConfig;
///
/// assert_eq!(
///     VadConfig::default(),
///     VadConfig { threshold: 0.5, hangover_frames: 15, preroll_ms: 60, fast_attack: true }
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadConfig {
    /// Score (0 ..= 1) from which a 16 ms analysis window counts as speech. Default: 0.5.
    pub threshold: f32,
    /// Frames transmitted after the last speech frame, so word endings are not cut. Default: 15 (300 ms of 20 ms
    /// frames).
    pub hangover_frames: u32,
    /// Pre-roll, milliseconds (at most [`MAX_PREROLL_MS`]; 0 disables): the most recent VAD-gated audio, up to this
    /// long, is kept and sent when the gate opens, ahead of the frame that opened it, as
    /// [`CaptureFrame::Preroll`](crate::CaptureFrame::Preroll). Covers the detector's reaction time, so word
    /// onsets are not clipped. Default: 60.
    pub preroll_ms: u32,
    /// Fast attack: an energy onset well above the tracked noise floor opens the gate at once, before the voice
    /// detector has decided; if it does not confirm speech within about 100 ms the gate closes again. Default:
    /// `true`.
    pub fast_attack: bool,
}

/// Longest [`VadConfig::preroll_ms`]; longer values are treated as this.
pub const MAX_PREROLL_MS: u32 = 200;

impl Default for VadConfig {
    fn default() -> Self {
        Self { threshold: 0.5, hangover_frames: 15, preroll_ms: 60, fast_attack: true }
    }
}

/// Configuration of a [`CapturePipeline`](crate::CapturePipeline).
///
/// The defaults (each field says its own) take 48 kHz mono input and send every frame, with no processing but
/// Opus:
///
/// ```
/// use voice_codec::{Application, CaptureConfig, ChannelLayout, OpusSettings};
///
/// assert_eq!(
///     CaptureConfig::default(),
///     CaptureConfig {
///         device_rate_hz: 48_000,
///         device_channels: 1,
///         layout: ChannelLayout::Mono,
///         application: Application::Voip,
///         opus: OpusSettings::default(),
///         gain: None,
///         noise_suppression: false,
///         echo_cancellation: false,
///         vad: None,
///         push_to_talk: false,
///     }
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureConfig {
    /// Sample rate of the chunks pushed in (the device's rate), 8 000 ..= 384 000. Default: 48 000.
    pub device_rate_hz: u32,
    /// Channel count of the chunks pushed in (interleaved), 1 ..= 8. Default: 1.
    pub device_channels: u16,
    /// Channel layout of the encoded stream. Default: [`ChannelLayout::Mono`].
    pub layout: ChannelLayout,
    /// Opus application mode. Default: [`Application::Voip`].
    pub application: Application,
    /// Encoder settings. Default: [`OpusSettings::default()`].
    pub opus: OpusSettings,
    /// Linear gain applied first, 0 ..= 100; `None` skips the stage. Default: `None`.
    pub gain: Option<f32>,
    /// Run RNNoise-style noise suppression (nnnoiseless). Default: `false`.
    pub noise_suppression: bool,
    /// Cancel the echo of the playback signal (fed with
    /// [`push_echo_reference`](crate::CapturePipeline::push_echo_reference)). Needs the `aec` cargo feature;
    /// without it, construction fails with [`CodecError::InvalidConfig`]. Note: aec3 allocates while processing, so
    /// this stage is the one exception to the pipelines' no-allocation guarantee. Default: `false`.
    pub echo_cancellation: bool,
    /// Gate transmission on voice activity; `None` transmits every frame. Default: `None` (with a gate,
    /// [`VadConfig::default()`] is the usual choice).
    pub vad: Option<VadConfig>,
    /// Start with a push-to-talk gate (closed until [`set_push_to_talk`](crate::CapturePipeline::set_push_to_talk)
    /// opens it); `false` means no push-to-talk. Default: `false`.
    pub push_to_talk: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            device_rate_hz: SAMPLE_RATE_HZ,
            device_channels: 1,
            layout: ChannelLayout::Mono,
            application: Application::Voip,
            opus: OpusSettings::default(),
            gain: None,
            noise_suppression: false,
            echo_cancellation: false,
            vad: None,
            push_to_talk: false,
        }
    }
}

pub(crate) fn validate_device(rate_hz: u32, channels: u16) -> Result<(), CodecError> {
    if !(8_000..=384_000).contains(&rate_hz) {
        return Err(CodecError::UnsupportedSampleRate { rate_hz });
    }
    if !(1..=8).contains(&channels) {
        return Err(CodecError::UnsupportedChannels { channels });
    }
    Ok(())
}
