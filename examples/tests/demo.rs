//! The demo in small: one round of turns (3.6 s of talk) through relay, impairment proxy and three clients on
//! loopback. Bounded by the talk time; asserts what load cannot break: turns are heard, the heard speech correlates
//! with the said speech, loss is near the injected 2 %, the injected 30 ms is a floor of the latency, WAVs exist.

use clap::Parser;
use voice_examples::demo::{Args, run};

#[test]
fn a_short_demo_carries_speech_through_the_whole_stack() {
    let out = std::env::temp_dir().join(format!("voice-demo-test-{}", std::process::id()));
    let out_arg = out.to_string_lossy().into_owned();
    let args = Args::parse_from(["demo", "--seconds", "3.6", "--out", &out_arg]);
    let r = run(&args).expect("demo runs");
    eprintln!("{r}");
    assert_eq!(r.pairs.len(), 6, "three listeners hear two speakers each");
    let heard: usize = r.pairs.iter().map(|p| p.heard).sum();
    assert!(heard >= 5, "{r}");
    assert!(r.correlation > 0.5, "{r}");
    assert!(r.received > 0 && r.loss_pct < 10.0, "{r}");
    assert!(r.netem.up.delivered > 0 && r.netem.down.delivered > 0, "traffic went through the conditioners: {r}");
    assert!(r.latency_ms.p50 >= 30.0, "the injected one-way latency is a floor: {r}");
    assert_eq!(r.wavs.len(), 6);
    for w in &r.wavs {
        let (_, samples) = voice_client::read_wav(w).expect("a WAV was written");
        assert!(!samples.is_empty(), "{}", w.display());
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    assert!(run(&Args::parse_from(["demo", "--seconds", "0"])).is_err());
    assert!(run(&Args::parse_from(["demo", "--loss-pct", "150"])).is_err());
}
