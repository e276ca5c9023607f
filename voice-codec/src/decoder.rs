//! A plain Opus decoder: one packet in, 48 kHz float samples out.

use audiopus::packet::Packet;
use audiopus::{MutSignals, SampleRate};

use crate::CodecError;
use crate::config::ChannelLayout;

/// libopus decodes FEC data and conceals in multiples of 2.5 ms (samples per channel at 48 kHz).
pub(crate) const BLOCK_SAMPLES: usize = 120;
/// Longest Opus packet, samples per channel at 48 kHz (120 ms).
pub(crate) const MAX_PACKET_SAMPLES: usize = 5_760;

/// Samples per channel at 48 kHz that the Opus `payload` holds; [`CodecError::CorruptPacket`] if it is not a
/// parseable Opus packet of 2.5 ..= 120 ms.
pub fn packet_samples(payload: &[u8]) -> Result<usize, CodecError> {
    let packet = Packet::try_from(payload).map_err(|_| CodecError::CorruptPacket)?;
    match audiopus::packet::nb_samples(packet, SampleRate::Hz48000) {
        Ok(n) if (BLOCK_SAMPLES..=MAX_PACKET_SAMPLES).contains(&n) => Ok(n),
        _ => Err(CodecError::CorruptPacket),
    }
}

/// A plain Opus decoder at 48 kHz: [`decode`](Self::decode) a packet, recover a lost one from the next packet's
/// in-band FEC with [`decode_fec`](Self::decode_fec), or [`conceal`](Self::conceal) it.
///
/// Output is interleaved `f32` at 48 kHz in the decoder's [`ChannelLayout`] (libopus up- or down-mixes whatever the
/// sender encoded). Nothing allocates after construction. This is the building block under
/// [`PlaybackPipeline`](crate::PlaybackPipeline), which adds what a listener needs on top (jitter-buffer decisions,
/// seam fades, comfort noise, time-stretch, volume); use the decoder alone when you schedule packets yourself.
///
/// ```
/// use voice_codec::{CaptureConfig, CaptureFrame, CapturePipeline, ChannelLayout, Decoder};
///
/// # fn main() -> Result<(), voice_codec::CodecError> {
/// // Encode 60 ms of a tone into three packets (the capture pipeline's defaults: 48 kHz mono, 20 ms frames).
/// let mut capture = CapturePipeline::new(CaptureConfig::default())?;
/// let tone: Vec<f32> = (0..2_880).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
/// capture.push(&tone)?;
/// let mut packets = Vec::new();
/// while let Some(frame) = capture.poll_frame()? {
///     if let CaptureFrame::Packet { payload, .. } = frame {
///         packets.push(payload.to_vec());
///     }
/// }
///
/// let mut decoder = Decoder::new(ChannelLayout::Mono)?;
/// let mut pcm = [0.0f32; 960];
/// assert_eq!(decoder.decode(&packets[0], &mut pcm)?, 960);
/// // packets[1] was lost: recover it from the FEC data in packets[2], then decode packets[2] itself.
/// assert_eq!(decoder.decode_fec(&packets[2], &mut pcm)?, 960);
/// assert_eq!(decoder.decode(&packets[2], &mut pcm)?, 960);
/// // The next packet is lost too, and there is no later one yet: conceal 20 ms.
/// assert_eq!(decoder.conceal(&mut pcm)?, 960);
/// # Ok(())
/// # }
/// ```
pub struct Decoder {
    inner: audiopus::coder::Decoder,
    channels: usize,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("channels", &self.channels).finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder producing `layout` at 48 kHz.
    pub fn new(layout: ChannelLayout) -> Result<Self, CodecError> {
        let inner = audiopus::coder::Decoder::new(SampleRate::Hz48000, layout.opus()).map_err(CodecError::opus)?;
        Ok(Self { inner, channels: layout.count() })
    }

    /// Channels of the output (1 or 2).
    #[must_use]
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Decodes one Opus packet into the start of `out` (interleaved); returns the samples per channel written, the
    /// packet's duration (120 ..= 5760 at 48 kHz).
    ///
    /// Errors: [`CodecError::CorruptPacket`] if `packet` is not valid Opus (nothing is written; conceal instead),
    /// [`CodecError::BufferTooSmall`] if `out` cannot hold the packet's samples.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        let samples = packet_samples(packet)?;
        let needed = samples * self.channels;
        if out.len() < needed {
            return Err(CodecError::BufferTooSmall { len: out.len(), needed });
        }
        self.run(Some(packet), &mut out[..needed], false)
    }

    /// Recovers the frame lost just before `next_packet` from the low-bitrate copy that packet carries (Opus in-band
    /// FEC), filling all of `out`: its length sets the duration recovered (the lost frame's, usually the same as
    /// `next_packet`'s), a whole number of 2.5 ms blocks up to 120 ms. If the packet carries no FEC data, libopus
    /// conceals instead. Decode `next_packet` itself normally afterwards.
    ///
    /// Errors: [`CodecError::CorruptPacket`] if `next_packet` is not valid Opus, [`CodecError::PartialFrame`] or
    /// [`CodecError::InvalidFrameLength`] for an `out` of another length.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [f32]) -> Result<usize, CodecError> {
        packet_samples(next_packet)?;
        self.check_length(out)?;
        self.run(Some(next_packet), out, true)
    }

    /// Packet loss concealment: fills all of `out` with a continuation of the audio decoded so far, fading to
    /// silence over longer losses. Its length is a whole number of 2.5 ms blocks up to 120 ms; returns the samples
    /// per channel written.
    ///
    /// Errors: [`CodecError::PartialFrame`] or [`CodecError::InvalidFrameLength`] for an `out` of another length.
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<usize, CodecError> {
        self.check_length(out)?;
        self.run(None, out, false)
    }

    /// Samples per channel in `out`, if it is a whole number of 2.5 ms blocks of 2.5 ..= 120 ms.
    fn check_length(&self, out: &[f32]) -> Result<usize, CodecError> {
        if !out.len().is_multiple_of(self.channels) {
            return Err(CodecError::PartialFrame { len: out.len(), channels: self.channels });
        }
        let samples = out.len() / self.channels;
        if samples == 0 || samples > MAX_PACKET_SAMPLES || !samples.is_multiple_of(BLOCK_SAMPLES) {
            return Err(CodecError::InvalidFrameLength { samples });
        }
        Ok(samples)
    }

    fn run(&mut self, packet: Option<&[u8]>, out: &mut [f32], fec: bool) -> Result<usize, CodecError> {
        let packet = match packet {
            Some(p) => Some(Packet::try_from(p).map_err(|_| CodecError::CorruptPacket)?),
            None => None,
        };
        let signals = MutSignals::try_from(out).map_err(CodecError::opus)?;
        self.inner.decode_float(packet, signals, fec).map_err(CodecError::opus)
    }
}
