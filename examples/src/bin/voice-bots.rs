//! `voice-bots`: the load test — N headless clients in R rooms streaming speech through the real codec, against an
//! in-process loopback relay (default) or `--server HOST:PORT`. Progress on stderr, a JSON summary on stdout. The
//! logic lives in `voice_examples::bots`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = voice_examples::bots::Args::parse();
    let summary =
        voice_examples::bots::run(&args).and_then(|s| serde_json::to_string_pretty(&s).map_err(anyhow::Error::from));
    match summary {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("voice-bots: {}", voice_examples::sentence(&e));
            ExitCode::FAILURE
        }
    }
}
