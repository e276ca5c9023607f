//! Errors of voice-relay.
//!
//! Bad network input is never an error the caller sees: datagrams are dropped and counted
//! ([`crate::DropReason`]), control requests are answered with a protocol `Error` message. The types here are for the
//! caller's side: building a relay ([`Error`]), plugging in an authenticator ([`AuthError`]) or a random source
//! ([`RngError`]), and the typed reasons a control request is refused ([`RequestError`]), each with its stable wire
//! code.

use voice_proto::control::ErrorCode;

/// Why a [`crate::Relay`] could not be built from its configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured room name is empty or longer than the protocol's 64-byte cap.
    #[error("room name {name:?} is empty or longer than 64 bytes")]
    InvalidRoomName {
        /// The offending name.
        name: String,
    },
    /// Two configured rooms have the same name.
    #[error("room {name:?} is configured twice")]
    DuplicateRoom {
        /// The duplicated name.
        name: String,
    },
    /// A configured room password is longer than the protocol's 128-byte cap (no client could send it).
    #[error("password of room {name:?} is longer than 128 bytes")]
    PasswordTooLong {
        /// The room.
        name: String,
    },
    /// The server name is longer than the protocol's 64-byte cap.
    #[error("server name is longer than 64 bytes")]
    ServerNameTooLong,
    /// A numeric setting is out of its valid range (named in `setting`).
    #[error("configuration setting `{setting}` is out of range")]
    InvalidSetting {
        /// The setting's name as in [`crate::RelayConfig`].
        setting: &'static str,
    },
    /// The random source failed while drawing the rooms' first media keys.
    #[error(transparent)]
    Rng(#[from] RngError),
}

/// The random source could not produce bytes. The relay answers the request that needed them with `INTERNAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RngError {
    /// The operating system's generator failed.
    #[error("the system random number generator failed")]
    Unavailable,
}

/// Why an [`crate::Authenticator`] refused a login. The client always sees `AUTH_FAILED`, whatever the reason, so
/// it learns nothing about which user names exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No such user.
    #[error("unknown user")]
    UnknownUser,
    /// The user exists, the credential is wrong (bad password, bad signature, expired token).
    #[error("wrong credential")]
    WrongCredential,
    /// This authenticator does not accept this kind of credential (e.g. a token where passwords are expected).
    #[error("credential kind not supported by this authenticator")]
    UnsupportedCredential,
    /// The authenticator could not decide (a backend failed); the login is refused.
    #[error("authenticator unavailable: {0}")]
    Unavailable(String),
    /// The driver's verification pool and its queue are full: the login is refused at once (`RATE_LIMITED`), the
    /// client may try again later.
    #[error("verification pool busy")]
    Busy,
    /// The account or the client's address is backing off after wrong credentials: the login is refused at once,
    /// without a check (`RATE_LIMITED`). Applied alike to existing and unknown user names.
    #[error("too many failed logins, backing off")]
    Throttled,
}

/// Why a control request was refused. Each variant maps to one stable [`ErrorCode`] ([`RequestError::code`]) and
/// its `Display` text is the `message` of the protocol `Error` the client receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request needs a logged-in session (`NOT_LOGGED_IN`).
    #[error("log in first")]
    NotLoggedIn,
    /// Login or resume on a connection that already has a session (`ALREADY_LOGGED_IN`).
    #[error("this connection already has a session")]
    AlreadyLoggedIn,
    /// A Login or Resume while this connection's login is still being checked (`ALREADY_LOGGED_IN`).
    #[error("a login is already being checked on this connection")]
    LoginPending,
    /// The credential could not be checked now: the server's verification pool is full (`RATE_LIMITED`).
    #[error("server busy, try again later")]
    Busy,
    /// Too many failed logins for this account or from this address: try again later (`RATE_LIMITED`).
    #[error("too many failed logins, try again later")]
    Throttled,
    /// A user name, room name or chat text holds control characters (`INVALID_NAME`; the connection stays open).
    #[error("control characters are not allowed in names or chat")]
    ControlCharacters,
    /// The authenticator refused the credential (`AUTH_FAILED`).
    #[error("authentication failed")]
    AuthFailed,
    /// Unknown or expired token, or wrong secret (`RESUME_FAILED`).
    #[error("cannot resume this session")]
    ResumeFailed,
    /// No such room and ad-hoc rooms are not allowed, or the name is invalid (`ROOM_NOT_FOUND`).
    #[error("no such room")]
    RoomNotFound,
    /// The room has `max_users` members (`ROOM_FULL`).
    #[error("room is full")]
    RoomFull,
    /// The room password is wrong or missing (`WRONG_ROOM_PASSWORD`).
    #[error("wrong room password")]
    WrongRoomPassword,
    /// Voice is not allowed in the session's room (`VOICE_NOT_ALLOWED`).
    #[error("voice is not allowed in this room")]
    VoiceNotAllowed,
    /// The request needs the session to be in a room (`NOT_IN_ROOM`).
    #[error("not in a room")]
    NotInRoom,
    /// Whisper target 0, or more whisper lists than the relay keeps per session (`INVALID_WHISPER`).
    #[error("invalid whisper list")]
    InvalidWhisper,
    /// A field is over its protocol cap (`TOO_LARGE`).
    #[error("a field exceeds its cap")]
    TooLarge,
    /// The connection sends control messages faster than its limit (`RATE_LIMITED`).
    #[error("too many requests")]
    RateLimited,
    /// The relay cannot create more sessions or rooms (`RATE_LIMITED`).
    #[error("server capacity reached")]
    Capacity,
    /// The relay is shutting down (`SHUTTING_DOWN`).
    #[error("server is shutting down")]
    ShuttingDown,
    /// The relay failed, e.g. its random source (`INTERNAL`).
    #[error("internal server error")]
    Internal,
}

impl RequestError {
    /// The stable wire code of this refusal (`PROTOCOL.md` §5.5).
    #[must_use]
    pub const fn code(self) -> ErrorCode {
        match self {
            Self::NotLoggedIn => ErrorCode::NOT_LOGGED_IN,
            Self::AlreadyLoggedIn | Self::LoginPending => ErrorCode::ALREADY_LOGGED_IN,
            Self::AuthFailed => ErrorCode::AUTH_FAILED,
            Self::ResumeFailed => ErrorCode::RESUME_FAILED,
            Self::RoomNotFound => ErrorCode::ROOM_NOT_FOUND,
            Self::RoomFull => ErrorCode::ROOM_FULL,
            Self::WrongRoomPassword => ErrorCode::WRONG_ROOM_PASSWORD,
            Self::VoiceNotAllowed => ErrorCode::VOICE_NOT_ALLOWED,
            Self::NotInRoom => ErrorCode::NOT_IN_ROOM,
            Self::InvalidWhisper => ErrorCode::INVALID_WHISPER,
            Self::TooLarge => ErrorCode::TOO_LARGE,
            Self::RateLimited | Self::Capacity | Self::Busy | Self::Throttled => ErrorCode::RATE_LIMITED,
            Self::ControlCharacters => ErrorCode::INVALID_NAME,
            Self::ShuttingDown => ErrorCode::SHUTTING_DOWN,
            Self::Internal => ErrorCode::INTERNAL,
        }
    }
}

impl From<RngError> for RequestError {
    fn from(_: RngError) -> Self {
        Self::Internal
    }
}

/// Why a driver ([`crate::driver::Server`]) failed: socket setup or a socket error it cannot recover from.
/// Errors of one control connection or of one datagram are never fatal: they close that connection or drop that
/// datagram.
#[cfg(feature = "tokio")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// Binding the UDP socket or the TCP listener failed (address in use, permission, bad address).
    #[error("cannot bind {what} socket: {source}")]
    Bind {
        /// `"udp"` or `"tcp"`.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The UDP socket failed in a way that is not about one datagram (e.g. it was closed under the driver).
    #[error("udp socket failed: {0}")]
    Udp(#[source] std::io::Error),
    /// The driver's thread or its tokio runtime could not be created ([`crate::driver::Server::spawn`]).
    #[error("cannot start the driver thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The TLS certificate or key could not be used ([`crate::driver::server_config_from_pem`]): the file is
    /// missing, holds no PEM certificate / key, or the key does not match the certificate.
    #[error("TLS: {}: {reason}", path.display())]
    Tls {
        /// The file concerned.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}
