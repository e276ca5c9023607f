//! `voice-server`: the voice relay (UDP audio) and its control server (TCP) — `voice_relay::driver::Server` around
//! the sans-IO `voice_relay::Relay` — configured from a TOML file.
//!
//! ```text
//! voice-server [--config FILE]        # or ARS_CONFIG_PATH=FILE; without either, every option has its default
//! voice-server hash-password          # reads a password on stdin, prints the argon2id hash for the config's users
//! ```
//!
//! It prints where it listens, serves Prometheus metrics over HTTP when the config names a metrics address, and shuts
//! down gracefully on Ctrl-C or SIGTERM: every client gets a Goodbye (`SHUTTING_DOWN`) before the sockets close.
//! Logs go to stderr (`RUST_LOG` filters them; default `info`).

use std::process::ExitCode;

use clap::Parser;
use voice_examples::server::{Args, run};

fn main() -> ExitCode {
    voice_examples::init_logging("info");
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voice-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
