//! Shared code of the example binaries: thin glue that assembles the voice crates.
//!
//! * [`demo`] — the `demo` binary (the README's first command): relay + three clients on loopback, speech through
//!   the whole stack under a realistic network condition, WAV files and a report.
//! * [`bots`] — the `voice-bots` load test: N headless clients in R rooms, JSON summary.
//! * [`client`] and [`tui`] — the `voice-client` program: headless, or the terminal UI.
//! * [`words`] — what the programs print about what came from the network: escaped, and in words.
//! * [`quality`] — the `voice-quality` listening harness (`cargo xtask quality`): speech through the real relay and
//!   clients under a matrix of network conditions, PESQ-WB against offline libopus with the same lost packets.
#![allow(
    clippy::disallowed_methods,
    reason = "example programs (demo, client, bots, listening harness): they run in real time"
)]
#![forbid(unsafe_code)]

pub mod bookmarks;
pub mod bots;
pub mod client;
pub mod demo;
pub mod quality;
pub mod tui;
pub mod words;

/// `e` and its causes as one line, each cause once (an error that prints its cause itself is not followed by it
/// again): what the programs print before exiting with a failure.
#[must_use]
pub fn sentence(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if out.contains(&cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out
}

/// Logs to stderr with `tracing`; `RUST_LOG` filters (default: `default`, e.g. `warn` for the demo, whose report is
/// its output).
pub fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}
