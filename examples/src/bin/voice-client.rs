//! `voice-client`: a terminal voice client — bookmarks, login, room list, members with speaking indicators, chat,
//! push-to-talk (default) or voice activation, per-user volume, whisper, and a debug overlay (F3) — over
//! `voice_client::Client`. With `--input WAV --output WAV` it runs headless: events as lines on stdout, commands on
//! stdin (`/chat TEXT`, `/mute`, `/deafen`, `/join ROOM`, `/quit`, …).
//!
//! ```text
//! voice-client --server 127.0.0.1:7000 --user alice --password …            # terminal UI
//! voice-client --user bob --password … --input speech.wav --output heard.wav --seconds 10   # headless
//! ```

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = voice_examples::client::Args::parse();
    match voice_examples::client::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voice-client: {}", voice_examples::sentence(&e));
            ExitCode::FAILURE
        }
    }
}
