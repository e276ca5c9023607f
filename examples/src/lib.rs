//! Shared code of the example binaries: thin glue that assembles the voice crates.
//!
//! * [`server`] — the `voice-server` binary: config file → `voice_relay` core and tokio driver → signals.
//! * [`protodemo`] — the `demo` binary for now: a loopback round trip of the wire protocol (hello/bind, sealed audio,
//!   in-place relay rewrite and zero-copy fan-out, replay window) through the real `voice_relay::Relay` core, with
//!   real UDP sockets on 127.0.0.1. It is replaced by the full-stack demo when the client crate lands.
#![forbid(unsafe_code)]

pub mod bots;
pub mod protodemo;
pub mod server;
pub mod tui;

/// Logs to stderr with `tracing`; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}
