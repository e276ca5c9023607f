//! `demo`, the README's first command (`cargo xtask demo`): a relay and three headless clients on loopback, speech
//! through the whole stack under a realistic network condition, WAV files and a short report. The logic lives in
//! `voice_examples::demo`.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> anyhow::Result<()> {
    voice_examples::init_logging("warn");
    let args = voice_examples::demo::Args::parse();
    println!("demo: voice relay + alice, bob and carol on loopback, talking in turns for ~{:.0} s ...", args.seconds);
    let report = voice_examples::demo::run(&args)?;
    println!("{report}");
    Ok(())
}
