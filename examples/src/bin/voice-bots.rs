//! `voice-bots`: the load test — N headless clients in R rooms streaming speech through the real codec, against an
//! in-process loopback relay (default) or `--server HOST:PORT`. Progress on stderr, a JSON summary on stdout. The
//! logic lives in `voice_examples::bots`.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = voice_examples::bots::Args::parse();
    let summary = voice_examples::bots::run(&args)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
