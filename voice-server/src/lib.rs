//! # voice-server — the voice stack's server application
//!
//! What it is: the application around the relay. [`voice_relay`] holds the sans-IO relay core and its tokio
//! drivers; this crate turns a TOML file into a running server ([`Server::from_config`]) and holds what an
//! operator configures:
//!
//! * [`Config`] — the configuration file (`--config FILE` or `ARS_CONFIG_PATH`, [`config_path_from`]); every key
//!   has a default, a bad file is reported by key and line ([`ConfigError`]). `server.example.toml` beside this
//!   crate documents every key;
//! * [`auth`] — the authenticators: argon2id password users ([`PasswordFileAuthenticator`], hashes made with
//!   [`hash_password`]) and HS256 JWTs from the app's backend ([`JwtAuthenticator`]), both at once
//!   ([`CombinedAuthenticator`]). The relay core never checks a credential: it asks its driver, which runs these
//!   (argon2id on a bounded verification pool; tokens inline, their expiry checked against the login's time);
//! * [`http`] — metrics (Prometheus text) and health over HTTP, on axum, bounded in connections, bytes and time;
//! * [`tls`] — what clients will think of the configured certificate (logged at start), and self-signed
//!   certificates for development (`voice-server gen-cert`);
//! * [`Server`] — the composition of all of it, and the `voice-server` binary (`voice-server --config FILE`,
//!   `voice-server hash-password`, `voice-server gen-cert`).
//!
//! What it is not: a library of protocol or relay logic (that is `voice-proto` and `voice-relay`), nor a client
//! (`voice-client`). Persistence, an admin API, a browser bridge, server-side mixing and clustering are not here
//! yet; this crate is where they are meant to plug in.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! use bytes::BytesMut;
//! use voice_proto::control::{ClientMessage, Credential, Message, ServerMessage, decode_frame};
//! use voice_server::{Config, Server, hash_password_with_params};
//!
//! // One password user. (Cheap argon2id costs keep the example fast; use `hash_password` for real users.)
//! let hash = hash_password_with_params("hunter2", 64, 1, &mut voice_relay::SystemRng::new())?;
//! let config = Config::from_toml_str(&format!(
//!     "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n\
//!      [[users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n"
//! ))?;
//! let server = Server::from_config(&config)?;
//! let (control, stop) = (server.tcp_addr(), server.shutdown_handle());
//! let running = server.spawn()?;
//!
//! // A client logs in on the control connection; the password is checked off the relay's task.
//! let mut tcp = std::net::TcpStream::connect(control)?;
//! let mut out = BytesMut::new();
//! let credential = Credential::Password("hunter2".into());
//! ClientMessage::Login { user: "alice".into(), credential, client: "doc".into() }.encode(&mut out)?;
//! tcp.write_all(&out)?;
//! let mut buf = BytesMut::new();
//! let reply = loop {
//!     if let Some(frame) = decode_frame(&mut buf)? {
//!         break ServerMessage::decode(&frame)?;
//!     }
//!     let mut chunk = [0u8; 1024];
//!     let n = tcp.read(&mut chunk)?;
//!     assert!(n > 0, "the server closed the connection");
//!     buf.extend_from_slice(&chunk[..n]);
//! };
//! assert!(matches!(reply, Some(ServerMessage::LoginOk { .. })), "{reply:?}");
//!
//! stop.shutdown();
//! let relay = running.join().expect("server thread")?;
//! assert_eq!(relay.counters().logins, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod app;
pub mod auth;
pub mod config;
mod error;
pub mod http;
pub mod tls;

pub use app::Server;
pub use auth::{
    CombinedAuthenticator, JwtAuthenticator, PasswordFileAuthenticator, hash_password, hash_password_with_params,
};
pub use config::{CONFIG_PATH_ENV, Config, config_path_from};
pub use error::{ConfigError, Error};
