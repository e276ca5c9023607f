//! `voice-quality` (`cargo xtask quality`): speech through the real relay and clients under a matrix of network
//! conditions, scored with PESQ-WB against offline libopus with the same lost packets. The logic lives in
//! `voice_examples::quality`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    voice_examples::init_logging("warn");
    let args = voice_examples::quality::Args::parse();
    match voice_examples::quality::run(&args) {
        Ok(outcomes) if outcomes.is_empty() => ExitCode::SUCCESS,
        Ok(outcomes) => {
            println!("{}", voice_examples::quality::table(&outcomes));
            println!("JSON report: {}", args.out.join("quality.json").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("voice-quality: {e:#}");
            ExitCode::FAILURE
        }
    }
}
