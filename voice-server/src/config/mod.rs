//! The server's TOML configuration file: listen addresses, limits, rooms, users and authentication, every option
//! defaulted (an empty file is a valid configuration).
//!
//! Load it with [`Config::from_path`] (or [`Config::from_toml_str`]); the path comes from `--config` or the
//! `ARS_CONFIG_PATH` environment variable ([`config_path_from`]). A bad file is reported by key and line
//! ([`ConfigError`]): syntax errors, unknown keys, values of the wrong type and values out of range all name the
//! key (when there is one) and its 1-based line and column. `voice-server/server.example.toml` documents every key.
//!
//! ```
//! use voice_server::Config;
//!
//! let cfg = Config::from_toml_str("[limits]\nmax_sessions = 500\n\n[[rooms]]\nname = \"ops\"\npassword = \"s3cret\"\n")?;
//! assert_eq!(cfg.limits.max_sessions, 500);
//! let relay_config = cfg.relay_config();
//! assert_eq!(relay_config.rooms.len(), 1);
//!
//! let err = Config::from_toml_str("[limits]\npackets_per_s = 0\n").unwrap_err();
//! assert_eq!(err.to_string(), "line 2, column 17: `limits.packets_per_s`: must be at least 1");
//! # Ok::<(), voice_server::ConfigError>(())
//! ```

mod validate;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use voice_proto::control::ChannelConfig;
use voice_relay::driver::{AuthPool, ConnLimits, LoginBackoff};
use voice_relay::{RelayConfig, RoomConfig};

use crate::auth::{CombinedAuthenticator, JwtAuthenticator, PasswordFileAuthenticator};
use crate::error::ConfigError;

/// The environment variable that names the configuration file when `--config` is not given.
pub const CONFIG_PATH_ENV: &str = "ARS_CONFIG_PATH";

/// Largest configuration file [`Config::from_path`] reads (1 MiB).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The configuration file to load: the `--config` value if given, else the value of `ARS_CONFIG_PATH`
/// ([`CONFIG_PATH_ENV`]) if set and non-empty, else none (run with the defaults).
///
/// Pure: the caller passes the environment variable's value, e.g.
/// `config_path_from(args.config, std::env::var_os(CONFIG_PATH_ENV))`.
#[must_use]
pub fn config_path_from(args_value: Option<PathBuf>, env_value: Option<OsString>) -> Option<PathBuf> {
    args_value.or_else(|| env_value.filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// The whole configuration file. Every section and key is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// `[server]`: how the relay presents itself.
    pub server: ServerSection,
    /// `[listen]`: socket addresses.
    pub listen: ListenSection,
    /// `[limits]`: rate limits, capacities, timeouts.
    pub limits: LimitsSection,
    /// `[[rooms]]`: rooms that exist from the start. Default: one room, `lobby`. Giving any `[[rooms]]` replaces it.
    pub rooms: Vec<RoomSection>,
    /// `[adhoc]`: rooms created on join.
    pub adhoc: AdhocSection,
    /// `[[users]]`: password users (argon2id PHC hashes, see [`hash_password`](crate::hash_password)).
    pub users: Vec<UserSection>,
    /// `[auth]`: token (JWT) authentication.
    pub auth: AuthSection,
    /// `[tls]`: TLS on the control connections (default: off).
    pub tls: TlsSection,
}

/// `[tls]`: serve the control connections over TLS. Both keys or neither; paths are relative to the working
/// directory. Audio is sealed with a room key (`PROTOCOL.md`), but that key travels on the control connection with
/// the passwords, tokens and chat: without TLS an on-path attacker can read them all, and so the audio.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsSection {
    /// `cert`: PEM file with the certificate chain, leaf first (e.g. Let's Encrypt's `fullchain.pem`).
    pub cert: Option<PathBuf>,
    /// `key`: PEM file with its private key (e.g. `privkey.pem`).
    pub key: Option<PathBuf>,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerSection {
    /// `name`: sent to clients in LoginOk (≤ 64 bytes; default `voice-relay`).
    pub name: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self { name: RelayConfig::default().server_name }
    }
}

/// `[listen]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ListenSection {
    /// `udp`: the media socket (default `0.0.0.0:7001`; its port is announced to clients in LoginOk).
    pub udp: SocketAddr,
    /// `control`: the TCP control listener (default `0.0.0.0:7000`).
    pub control: SocketAddr,
    /// `metrics`: the HTTP endpoint: Prometheus text at `GET /metrics`, liveness at `GET /healthz` (or `/health`; default
    /// `127.0.0.1:9100`: loopback only).
    pub metrics: SocketAddr,
    /// `metrics_enabled`: whether to serve metrics and health at all (default true).
    pub metrics_enabled: bool,
    /// `udp_threads`: threads running the UDP socket loop, 1–64 (default 1; more than 1 needs Linux:
    /// `SO_REUSEPORT`, see `voice_relay::driver::Server::with_udp_threads`).
    pub udp_threads: usize,
    /// `idle_poll_ms`: while no audio flows, read UDP every this many ms instead of waking per datagram (default
    /// 20; 0 = always wake per datagram; see `voice_relay::driver::IdlePoll`).
    pub idle_poll_ms: u64,
}

impl Default for ListenSection {
    fn default() -> Self {
        Self {
            udp: SocketAddr::from(([0, 0, 0, 0], 7001)),
            control: SocketAddr::from(([0, 0, 0, 0], 7000)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 9100)),
            metrics_enabled: true,
            udp_threads: 1,
            idle_poll_ms: 20,
        }
    }
}

/// `[limits]`. Defaults are those of [`RelayConfig::default`]; units are in the key names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitsSection {
    /// Most live sessions ([`RelayConfig::max_sessions`]).
    pub max_sessions: usize,
    /// Most rooms, configured and ad-hoc ([`RelayConfig::max_rooms`]).
    pub max_rooms: usize,
    /// Most whisper lists per session ([`RelayConfig::max_whisper_lists`]).
    pub max_whisper_lists: usize,
    /// AUDIO_UP packets/s per session ([`RelayConfig::packets_per_s`]).
    pub packets_per_s: u32,
    /// AUDIO_UP packet burst ([`RelayConfig::packet_burst`]).
    pub packet_burst: u32,
    /// AUDIO_UP bytes/s per session ([`RelayConfig::bytes_per_s`]).
    pub bytes_per_s: u32,
    /// AUDIO_UP byte burst, ≥ 1200 ([`RelayConfig::byte_burst`]).
    pub byte_burst: u32,
    /// Control messages/s per connection ([`RelayConfig::control_per_s`]).
    pub control_per_s: u32,
    /// Control message burst ([`RelayConfig::control_burst`]).
    pub control_burst: u32,
    /// Chat messages kept per room ([`RelayConfig::chat_history`]).
    pub chat_history: usize,
    /// Chat bytes kept per room ([`RelayConfig::chat_history_bytes`]).
    pub chat_history_bytes: usize,
    /// Resume grace in seconds, ≤ 65535 ([`RelayConfig::resume_grace`]).
    pub resume_grace_s: u64,
    /// Binding idle timeout in seconds ([`RelayConfig::binding_idle_timeout`]).
    pub binding_idle_timeout_s: u64,
    /// Control connection idle timeout in seconds ([`RelayConfig::control_idle_timeout`]).
    pub control_idle_timeout_s: u64,
    /// Speaking timeout in milliseconds ([`RelayConfig::speaking_timeout`]).
    pub speaking_timeout_ms: u64,
    /// Bitrate hint period in milliseconds ([`RelayConfig::hint_interval`]).
    pub hint_interval_ms: u64,
    /// Housekeeping period in milliseconds ([`RelayConfig::housekeeping_interval`]).
    pub housekeeping_interval_ms: u64,
    /// Seconds a connection has to log in, whatever it sends meanwhile ([`RelayConfig::login_timeout`]; default 10).
    pub login_timeout_s: u64,
    /// Connections not logged in yet, in total; beyond, new ones are closed at once (default 128; keep it well
    /// under the file descriptor limit). See `voice_relay::driver::ConnLimits`.
    pub prelogin_connections: usize,
    /// Connections not logged in yet from one address (IPv6: one /64; default 8).
    pub prelogin_per_ip: usize,
    /// New connections per second from one address (default 5; burst `accept_burst_per_ip`); beyond, closed at once.
    pub accepts_per_s_per_ip: u32,
    /// Burst of new connections from one address (default 20).
    pub accept_burst_per_ip: u32,
    /// Password checks (argon2id) running at once, each on its own thread (default 0: one per core). See
    /// `voice_relay::driver::AuthPool`.
    pub auth_workers: usize,
    /// Password checks waiting, per worker (default 4); beyond, a login is refused at once (`RATE_LIMITED`).
    pub auth_queue_per_worker: usize,
    /// Password checks running or waiting for one address (IPv6: one /64; default 4).
    pub auth_per_ip: usize,
    /// Failed logins in a row one account may have before it backs off (default 5). See
    /// `voice_relay::driver::LoginBackoff`.
    pub login_backoff_account_free: u32,
    /// Failed logins one address may have before it backs off (default 20).
    pub login_backoff_ip_free: u32,
    /// The longest backoff wait, seconds (default 60; the first is 1 s, doubling with each failure).
    pub login_backoff_max_s: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let d = RelayConfig::default();
        let ms = |t: Duration| u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        Self {
            max_sessions: d.max_sessions,
            max_rooms: d.max_rooms,
            max_whisper_lists: d.max_whisper_lists,
            packets_per_s: d.packets_per_s,
            packet_burst: d.packet_burst,
            bytes_per_s: d.bytes_per_s,
            byte_burst: d.byte_burst,
            control_per_s: d.control_per_s,
            control_burst: d.control_burst,
            chat_history: d.chat_history,
            chat_history_bytes: d.chat_history_bytes,
            resume_grace_s: d.resume_grace.as_secs(),
            binding_idle_timeout_s: d.binding_idle_timeout.as_secs(),
            control_idle_timeout_s: d.control_idle_timeout.as_secs(),
            speaking_timeout_ms: ms(d.speaking_timeout),
            hint_interval_ms: ms(d.hint_interval),
            housekeeping_interval_ms: ms(d.housekeeping_interval),
            login_timeout_s: d.login_timeout.as_secs(),
            prelogin_connections: ConnLimits::default().prelogin_total,
            prelogin_per_ip: ConnLimits::default().prelogin_per_ip,
            accepts_per_s_per_ip: ConnLimits::default().accepts_per_s_per_ip,
            accept_burst_per_ip: ConnLimits::default().accept_burst_per_ip,
            auth_workers: 0,
            auth_queue_per_worker: 4,
            auth_per_ip: AuthPool::default().per_ip,
            login_backoff_account_free: LoginBackoff::default().account_free,
            login_backoff_ip_free: LoginBackoff::default().ip_free,
            login_backoff_max_s: LoginBackoff::default().max.as_secs(),
        }
    }
}

impl LimitsSection {
    /// The driver's limits on connections not logged in.
    #[must_use]
    pub fn conn_limits(&self) -> ConnLimits {
        ConnLimits {
            prelogin_total: self.prelogin_connections,
            prelogin_per_ip: self.prelogin_per_ip,
            accepts_per_s_per_ip: self.accepts_per_s_per_ip,
            accept_burst_per_ip: self.accept_burst_per_ip,
        }
    }

    /// The driver's password-check pool (`auth_workers` 0: one per core).
    #[must_use]
    pub fn auth_pool(&self) -> AuthPool {
        let workers = if self.auth_workers == 0 { AuthPool::default().workers } else { self.auth_workers };
        AuthPool { workers, queue: workers.saturating_mul(self.auth_queue_per_worker), per_ip: self.auth_per_ip }
    }

    /// The driver's login backoff.
    #[must_use]
    pub fn login_backoff(&self) -> LoginBackoff {
        LoginBackoff {
            account_free: self.login_backoff_account_free,
            ip_free: self.login_backoff_ip_free,
            max: Duration::from_secs(self.login_backoff_max_s),
            ..LoginBackoff::default()
        }
    }
}

/// Voice settings shared by `[[rooms]]` entries and `[adhoc]` (the room's [`ChannelConfig`]).
macro_rules! voice_fields {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty = $d:expr,)* }) => {
        $(#[$m])*
        $vis struct $name {
            $($(#[$fm])* pub $f: $t,)*
            /// `max_users`: most members (0 = unlimited, at most 512).
            pub max_users: u16,
            /// `allow_voice`: members may send audio (false = chat-only; default true).
            pub allow_voice: bool,
            /// `bitrate_bps`: target Opus bitrate, 6000–510000 (default 32000).
            pub bitrate_bps: u32,
            /// `frame_ms`: 10, 20, 40 or 60 (default 20).
            pub frame_ms: u8,
            /// `channels`: 1 or 2 (default 1).
            pub channels: u8,
            /// `fec`: Opus in-band FEC (default true).
            pub fec: bool,
            /// `dtx`: Opus DTX (default true).
            pub dtx: bool,
        }
        impl Default for $name {
            fn default() -> Self {
                let c = ChannelConfig::default();
                Self {
                    $($f: $d,)*
                    max_users: c.max_users,
                    allow_voice: c.allow_voice,
                    bitrate_bps: c.bitrate_bps,
                    frame_ms: c.frame_ms,
                    channels: c.channels,
                    fec: c.fec,
                    dtx: c.dtx,
                }
            }
        }
        impl $name {
            /// The voice settings as the protocol's [`ChannelConfig`].
            #[must_use]
            pub fn channel_config(&self) -> ChannelConfig {
                ChannelConfig {
                    bitrate_bps: self.bitrate_bps,
                    frame_ms: self.frame_ms,
                    channels: self.channels,
                    fec: self.fec,
                    dtx: self.dtx,
                    allow_voice: self.allow_voice,
                    max_users: self.max_users,
                }
            }
        }
    };
}

voice_fields! {
    /// One `[[rooms]]` entry: a room that exists from the start and is never removed.
    #[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    #[non_exhaustive]
    pub struct RoomSection {
        /// `name`: 1–64 bytes, unique (required).
        name: String = String::new(),
        /// `password`: needed to join (≤ 128 bytes; default none).
        password: Option<String> = None,
    }
}

voice_fields! {
    /// `[adhoc]`: rooms created when a client joins an unknown name.
    #[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    #[non_exhaustive]
    pub struct AdhocSection {
        /// `allowed`: whether joining an unknown room creates it (default true).
        allowed: bool = true,
        /// `linger_s`: an empty ad-hoc room is removed after this many seconds (default 300).
        linger_s: u64 = RelayConfig::default().adhoc_linger.as_secs(),
    }
}

/// One `[[users]]` entry: a password user.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UserSection {
    /// `name`: the login name (1–64 bytes, unique).
    pub name: String,
    /// `password_hash`: an argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), as made by
    /// [`hash_password`](crate::hash_password).
    pub password_hash: String,
    /// `display_name`: shown to other members (default: the login name).
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `[auth]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthSection {
    /// `[auth.jwt]`: accept JWTs signed by the app's backend (default: off).
    pub jwt: Option<JwtSection>,
}

/// `[auth.jwt]`: HS256 tokens signed with a secret shared with the app's backend.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtSection {
    /// `secret`: the HS256 shared secret, at least 32 bytes (required).
    pub secret: String,
    /// `issuer`: if set, the token must carry an `iss` claim equal to it.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `audience`: if set, the token must carry an `aud` claim that contains it.
    #[serde(default)]
    pub audience: Option<String>,
    /// `leeway_s`: clock skew tolerated on `exp` and `nbf`, ≤ 3600 (default 30).
    #[serde(default = "default_leeway")]
    pub leeway_s: u64,
}

fn default_leeway() -> u64 {
    30
}

impl std::fmt::Debug for JwtSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSection")
            .field("secret", &"…")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_s", &self.leeway_s)
            .finish()
    }
}

impl Config {
    /// Reads and checks the file at `path` (at most [`MAX_CONFIG_BYTES`]).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        use std::io::Read;
        let path = path.as_ref();
        let read = |source| ConfigError::Read { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(read)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(read)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: path.to_path_buf() });
        }
        Self::from_toml_str(&text)
    }

    /// Parses and checks a configuration from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| validate::parse_error(text, &e))?;
        validate::check(&config).map_err(|v| validate::locate(text, v))?;
        Ok(config)
    }

    /// The [`RelayConfig`] these settings describe (`udp_port` is `listen.udp`'s port).
    #[must_use]
    pub fn relay_config(&self) -> RelayConfig {
        let l = &self.limits;
        let rooms = if self.rooms.is_empty() {
            RelayConfig::default().rooms
        } else {
            self.rooms
                .iter()
                .map(|r| RoomConfig { name: r.name.clone(), config: r.channel_config(), password: r.password.clone() })
                .collect()
        };
        RelayConfig {
            server_name: self.server.name.clone(),
            udp_port: self.listen.udp.port(),
            resume_grace: Duration::from_secs(l.resume_grace_s),
            binding_idle_timeout: Duration::from_secs(l.binding_idle_timeout_s),
            control_idle_timeout: Duration::from_secs(l.control_idle_timeout_s),
            login_timeout: Duration::from_secs(l.login_timeout_s),
            speaking_timeout: Duration::from_millis(l.speaking_timeout_ms),
            packets_per_s: l.packets_per_s,
            packet_burst: l.packet_burst,
            bytes_per_s: l.bytes_per_s,
            byte_burst: l.byte_burst,
            rooms,
            allow_adhoc_rooms: self.adhoc.allowed,
            adhoc_config: self.adhoc.channel_config(),
            adhoc_linger: Duration::from_secs(self.adhoc.linger_s),
            chat_history: l.chat_history,
            chat_history_bytes: l.chat_history_bytes,
            control_per_s: l.control_per_s,
            control_burst: l.control_burst,
            max_sessions: l.max_sessions,
            max_rooms: l.max_rooms,
            max_whisper_lists: l.max_whisper_lists,
            hint_interval: Duration::from_millis(l.hint_interval_ms),
            housekeeping_interval: Duration::from_millis(l.housekeeping_interval_ms),
        }
    }

    /// Applies this configuration to a running server (`voice-server` does it on SIGHUP): users and tokens (the
    /// authenticator, for later logins), rooms, and the relay's control-plane limits and timeouts, without ending a
    /// session (see `voice_relay::Relay::reconfigure` for what stays: the audio rate limits, a room's
    /// `allow_voice`, the listen addresses and TLS, the verification pool and pre-login limits). Fails, changing
    /// nothing, if the server is not running or refuses the relay settings.
    pub async fn reload(&self, handle: &voice_relay::driver::ReloadHandle) -> Result<(), ConfigError> {
        let refused = |reason: String| ConfigError::Invalid { key: "(reload)".into(), line: 0, column: 0, reason };
        let auth = std::sync::Arc::new(self.authenticator()?);
        match handle.reconfigure(self.relay_config()).await {
            None => return Err(refused("the server is not running".into())),
            Some(Err(e)) => return Err(refused(e.to_string())),
            Some(Ok(())) => {}
        }
        if !handle.set_authenticator(auth).await {
            return Err(refused("the server is not running".into()));
        }
        Ok(())
    }

    /// The authenticator these settings describe: password users from `[[users]]` (if any) and JWTs if
    /// `[auth.jwt]` is set. With neither, every login is refused.
    ///
    /// Fails only on a user whose hash does not parse, which [`from_toml_str`](Self::from_toml_str) has already
    /// checked (so only for a `Config` built or changed by hand).
    pub fn authenticator(&self) -> Result<CombinedAuthenticator, ConfigError> {
        let mut passwords = PasswordFileAuthenticator::new();
        for (i, u) in self.users.iter().enumerate() {
            let display = u.display_name.clone().unwrap_or_else(|| u.name.clone());
            passwords =
                passwords.with_user(&u.name, &u.password_hash, display).map_err(|reason| ConfigError::Invalid {
                    key: format!("users[{i}].password_hash"),
                    line: 0,
                    column: 0,
                    reason: reason.to_string(),
                })?;
        }
        let jwt = self.auth.jwt.as_ref().map(|j| {
            JwtAuthenticator::new(j.secret.as_bytes())
                .with_issuer(j.issuer.clone())
                .with_audience(j.audience.clone())
                .with_leeway(Duration::from_secs(j.leeway_s))
        });
        Ok(CombinedAuthenticator::new((!self.users.is_empty()).then_some(passwords), jwt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_path_prefers_the_flag_then_the_env_value() {
        let flag = Some(PathBuf::from("/a.toml"));
        let env = Some(OsString::from("/b.toml"));
        assert_eq!(config_path_from(flag.clone(), env.clone()), flag);
        assert_eq!(config_path_from(None, env), Some(PathBuf::from("/b.toml")));
        assert_eq!(config_path_from(None, Some(OsString::new())), None);
        assert_eq!(config_path_from(None, None), None);
    }
}
