//! Errors of voice-client.

use voice_proto::control::ErrorCode;

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A probability is outside 0.0..=1.0 (or not a number).
    #[error("`{field}` must be a probability in 0.0..=1.0, got {value}")]
    NotAProbability {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A setting is outside its valid range (the message names it).
    #[error("invalid setting: {0}")]
    Invalid(&'static str),
}

/// Everything a [`Session`](crate::Session), [`Media`](crate::Media) or driver call can fail
/// with. Bad bytes from the network are never an error of these calls: they are dropped and counted (datagrams) or
/// close the control connection, which the session then re-opens and resumes (control frames).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request needs a logged-in session with a control connection; try again after
    /// [`Event::LoggedIn`](crate::Event::LoggedIn) or [`Event::Resumed`](crate::Event::Resumed).
    #[error("not connected to the server")]
    NotConnected,
    /// The request needs the session to be in a room (join one first).
    #[error("not in a room")]
    NotInRoom,
    /// A control message could not be encoded: a field exceeds its protocol cap (e.g. a chat text over 4000
    /// bytes). Nothing was sent.
    #[error("control message refused: {0}")]
    Control(#[from] voice_proto::ControlError),
    /// An audio payload could not be sealed (larger than a datagram allows). Nothing was sent.
    #[error("audio frame refused: {0}")]
    Crypto(#[from] voice_proto::CryptoError),
    /// The audio pipelines refused a setting or a buffer (see the inner error).
    #[error("audio pipeline: {0}")]
    Codec(#[from] voice_codec::CodecError),
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server refused the session for good (bad credentials, kicked, replaced, shutting down): the session
    /// will not reconnect by itself.
    #[error("server closed the session: {code:?} {message}")]
    Refused {
        /// The protocol error code.
        code: ErrorCode,
        /// The server's text.
        message: String,
    },
    /// An I/O failure of a driver (sockets, files, audio devices).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A WAV file could not be read or written.
    #[error("wav file: {0}")]
    Wav(String),
    /// TLS settings for the control connection could not be built: a bad server name, or a CA file that is
    /// missing or holds no usable certificate (the message says which).
    #[error("tls: {0}")]
    Tls(String),
    /// The driver's threads stopped (the client was shut down or a thread failed).
    #[error("the client has stopped")]
    Stopped,
}
