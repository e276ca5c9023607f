//! Errors of the mixer.

use voice_proto::PublicId;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MixerError {
    /// The configuration is not usable (the text says which setting).
    #[error("mixer configuration: {0}")]
    Config(String),
    /// The room already has as many talkers as the mixer was configured for.
    #[error("no room for another talker ({max} at most)")]
    TooManyTalkers {
        /// `MixerConfig::max_talkers`.
        max: usize,
    },
    /// The room already has as many listeners as the mixer was configured for.
    #[error("no room for another listener ({max} at most)")]
    TooManyListeners {
        /// `MixerConfig::max_listeners`.
        max: usize,
    },
    /// The listener is already in the mix.
    #[error("listener {} is already in the mix", .0.0)]
    DuplicateListener(PublicId),
    /// The codec failed (only for a configuration libopus refuses; corrupt packets are concealed, not errors).
    #[error(transparent)]
    Codec(#[from] voice_codec::CodecError),
}
