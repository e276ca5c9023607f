//! Errors of voice-server: a configuration file that cannot be used ([`ConfigError`], by key and line), and a
//! server that cannot start or stops on a failure ([`Error`]). Both print as sentences for the operator.

use voice_relay::{DriverError, RngError};

/// Why a configuration file was refused ([`crate::Config`]), or a password could not be hashed
/// ([`crate::hash_password`]). Lines and columns are 1-based; the column counts characters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`crate::config::MAX_CONFIG_BYTES`].
    #[error("{} is larger than 1 MiB", path.display())]
    TooLarge {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The text is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("line {line}, column {column}: {}{message}", key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Parse {
        /// The dotted key the error is about (e.g. `limits.max_sessions`, `rooms[1].name`), when the text parses
        /// far enough to tell.
        key: Option<String>,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What is wrong, as the TOML parser says it (an unknown key is named here, with the keys expected).
        message: String,
    },
    /// A value is out of its range or conflicts with another (e.g. a rate limit of 0, a room configured twice).
    #[error("line {line}, column {column}: `{key}`: {reason}")]
    Invalid {
        /// The dotted key, e.g. `limits.packets_per_s` or `rooms[2].name`.
        key: String,
        /// Line of the key's value (or of its enclosing table when the key was left to its default; 0 when the
        /// configuration was not parsed from text).
        line: usize,
        /// Column of the key's value (0 when not parsed from text).
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// The random source failed while drawing a password salt.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// argon2 refused to hash the password (e.g. longer than its limit).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Why the server could not start, or stopped on a failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot be used.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The relay refused its settings (the file's checks make this rare).
    #[error("relay settings: {0}")]
    Relay(#[from] voice_relay::Error),
    /// TLS could not be set up, or the relay's driver failed.
    #[error("{0}")]
    Driver(#[from] DriverError),
    /// A socket of `[listen]` could not be bound (the address is in use, not local, or needs privileges).
    #[error("cannot bind the {what} socket to {addr}: {source}{}", bind_hint(source))]
    Bind {
        /// Which socket: `control (TCP)`, `audio (UDP)` or `metrics (HTTP)`.
        what: &'static str,
        /// The configured address.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The metrics / health HTTP listener could not be set up after binding.
    #[error("cannot use the metrics socket {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate could not be made ([`crate::tls::self_signed`]).
    #[error("certificate: {reason}")]
    Certificate {
        /// What is wrong.
        reason: String,
    },
    /// The server's thread or its runtime could not be started.
    #[error("cannot start the server thread: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What an operator can do about a failed bind, after the operating system's words.
fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another program, perhaps another voice-server, listens there: stop it or choose another address in \
             [listen])"
        }
        std::io::ErrorKind::AddrNotAvailable => " (not an address of this machine: check [listen])",
        std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges: choose a higher port in [listen])",
        _ => "",
    }
}
