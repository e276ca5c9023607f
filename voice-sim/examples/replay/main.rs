//! Trace replay: plays a packet-arrival trace through the jitter buffer and prints one JSON object per policy.
//!
//! ```text
//! cargo run --release -p voice-sim --example replay -- TRACE.csv [--policy adaptive|fixed:40]...
//! cargo run --release -p voice-sim --example replay -- --generate spike5-l2 --seed 7 [--packets 15000]
//!     [--drift-ppm 1000] [--policy ...]
//! ```
//!
//! Without `--policy`, both `adaptive` and `fixed:40` are run. TRACE.csv has the header `seq,send_ms,arrival_ms`
//! (arrival -1 = lost). Models for `--generate`: clean, clean-spike, gamma30-ge5, pareto30-l2, spike5-l2,
//! ar1-30-l1, and the listening-test conditions jitter10, jitter20, jitter40 (30 ms + Gaussian jitter, no loss),
//! loss2, loss5, loss10 (random loss, no jitter) and jitter20-loss5. The replay model and its assumptions (FEC in every packet, stretch applied in full) are described in
//! `voice_sim` and repeated in each JSON object. `--seq-offset N` shifts sequence numbers (e.g. to cross the
//! 64-bit wrap). `--write-trace PATH` saves the (generated) trace as CSV; `--dump-frames PATH` writes every played
//! frame (`seq,slot_ms,delay_ms`) to `PATH.<policy>.csv`. `--tune key=value` overrides an adaptive tuning knob
//! (experiments only).
//!
//! `--audio SPEECH.wav --out HEARD.wav [--reference-out REF.wav]` also plays speech through the trace with real
//! Opus and voice-codec's playback pipeline, under the first policy (see `audio.rs`): listen to it, or score it
//! with `cargo xtask quality --score SPEECH.wav HEARD.wav REF.wav` (PESQ-WB).

use std::time::Duration;

use voice_jitter::Config;
use voice_jitter::Policy;
use voice_sim::{self as sim, Model, TraceSpec};

mod audio;

fn usage() -> ! {
    eprintln!(
        "usage: replay (TRACE.csv | --generate MODEL --seed N [--packets N] [--drift-ppm X]) \
         [--policy adaptive|fixed:MS]... [--seq-offset N] [--write-trace PATH] [--dump-frames PATH] \
         [--tune key=value]... [--audio SPEECH.wav --out HEARD.wav [--reference-out REF.wav]]"
    );
    std::process::exit(2);
}

fn parse_policy(s: &str) -> Option<Policy> {
    if s == "adaptive" {
        return Some(Policy::Adaptive);
    }
    let ms = s.strip_prefix("fixed:")?.parse::<u64>().ok()?;
    Some(Policy::Fixed { delay: Duration::from_millis(ms) })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut model = None;
    let mut seed = 1u64;
    let mut packets = 15_000usize;
    let mut drift_ppm = 0.0;
    let mut policies: Vec<String> = Vec::new();
    let mut seq_offset = 0u64;
    let mut tuning = voice_jitter::Tuning::default();
    let mut dump_frames: Option<String> = None;
    let mut write_trace: Option<String> = None;
    let (mut audio_in, mut audio_out, mut reference_out): (Option<String>, Option<String>, Option<String>) =
        (None, None, None);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--policy" => policies.push(value()),
            "--generate" => model = Some(Model::from_name(&value()).unwrap_or_else(|| usage())),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage()),
            "--packets" => packets = value().parse().unwrap_or_else(|_| usage()),
            "--drift-ppm" => drift_ppm = value().parse().unwrap_or_else(|_| usage()),
            "--seq-offset" => seq_offset = value().parse().unwrap_or_else(|_| usage()),
            "--dump-frames" => dump_frames = Some(value()),
            "--write-trace" => write_trace = Some(value()),
            "--audio" => audio_in = Some(value()),
            "--out" => audio_out = Some(value()),
            "--reference-out" => reference_out = Some(value()),
            "--tune" => {
                let kv = value();
                let (k, v) = kv.split_once('=').unwrap_or_else(|| usage());
                let v: f64 = v.parse().unwrap_or_else(|_| usage());
                match k {
                    "quantile" => tuning.quantile = v,
                    "forget" => tuning.forget = v,
                    "wait_quantile" => tuning.wait_quantile = v,
                    "peak_decay" => tuning.peak_decay = v,
                    "peak_weight" => tuning.peak_weight = v,
                    "margin_ms" => tuning.margin_ms = v,
                    "wait_fec_ms" => tuning.wait_fec_ms = v,
                    "wait_gap_ms" => tuning.wait_gap_ms = v,
                    "wait_gap_chance" => tuning.wait_gap_chance = v,
                    "wait_empty_ms" => tuning.wait_empty_ms = v,
                    "max_shrink" => tuning.max_shrink = v,
                    "max_expand" => tuning.max_expand = v,
                    "deadband_ms" => tuning.deadband_ms = v,
                    "fec_after_wait" => tuning.fec_after_wait = v,
                    "fec_quantile" => tuning.fec_quantile = v,
                    "lossless_quantile" => tuning.lossless_quantile = v,
                    "loss_ref" => tuning.loss_ref = v,
                    "high_cap" => tuning.high_cap = v,
                    "warmup_packets" => tuning.warmup_packets = v,
                    "initial_delay_ms" => tuning.initial_delay_ms = v,
                    "pre_expand_ahead" => tuning.pre_expand_ahead = v,
                    "fec_on_rate" => tuning.fec_on_rate = v,
                    "pre_expand_risk" => tuning.pre_expand_risk = v,
                    "max_pre_expand" => tuning.max_pre_expand = v,
                    "gentle_shrink" => tuning.gentle_shrink = v,
                    "fast_shrink_ms" => tuning.fast_shrink_ms = v,
                    "rate_alpha" => tuning.rate_alpha = v,
                    "align_start" => tuning.align_start = v,
                    "idle_slot" => tuning.idle_slot = v,
                    _ => usage(),
                }
            }
            "-h" | "--help" => usage(),
            _ if !a.starts_with("--") && path.is_none() => path = Some(a),
            _ => usage(),
        }
    }
    let (trace, name) = match (path, model) {
        (Some(p), None) => {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
                eprintln!("{p}: {e}");
                std::process::exit(1)
            });
            let trace = sim::parse_csv(&text).unwrap_or_else(|e| {
                eprintln!("{p}: {e}");
                std::process::exit(1)
            });
            let name = std::path::Path::new(&p).file_stem().map_or(p.clone(), |s| s.to_string_lossy().into_owned());
            (trace, name)
        }
        (None, Some(m)) => {
            let spec = TraceSpec { model: m, seed, packets, drift_ppm };
            (sim::generate(&spec), format!("{}#seed={seed}#drift_ppm={drift_ppm}", m.name()))
        }
        _ => usage(),
    };
    if let Some(path) = &write_trace {
        let mut csv = String::from("seq,send_ms,arrival_ms\n");
        for p in &trace {
            csv.push_str(&format!("{},{:.3},{:.3}\n", p.seq, p.send_ms, p.arrival_ms.unwrap_or(-1.0)));
        }
        if let Err(e) = std::fs::write(path, csv) {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
    if policies.is_empty() {
        policies = vec!["adaptive".into(), "fixed:40".into()];
    }
    if let Some(speech) = &audio_in {
        let Some(out) = &audio_out else { usage() };
        let policy = parse_policy(&policies[0]).unwrap_or_else(|| usage());
        let mut config = Config::default().with_policy(policy);
        config.tuning = tuning;
        let rendered = audio::read_speech(std::path::Path::new(speech))
            .and_then(|s| audio::render(&trace, config, &s))
            .and_then(|r| {
                audio::write_wav(std::path::Path::new(out), &r.heard)?;
                if let Some(path) = &reference_out {
                    audio::write_wav(std::path::Path::new(path), &r.reference)?;
                }
                Ok(r)
            });
        match rendered {
            Ok(r) => {
                let stretch: Vec<String> =
                    r.stretch_by_5s.iter().map(|(a, d)| format!("+{}/-{}", a / 48, d / 48)).collect();
                eprintln!(
                    "audio ({}): {out} written, {:.1} s, {} slots concealed, {} from FEC{}; stretch per 5 s, ms: {}",
                    policies[0],
                    r.heard.len() as f64 / 48_000.0,
                    r.concealed,
                    r.fec,
                    reference_out
                        .as_ref()
                        .map(|p| format!("; libopus alone with the same losses: {p}"))
                        .unwrap_or_default(),
                    stretch.join(" ")
                )
            }
            Err(e) => {
                eprintln!("audio: {e}");
                std::process::exit(1)
            }
        }
    } else if audio_out.is_some() || reference_out.is_some() {
        usage();
    }
    for p in &policies {
        let policy = parse_policy(p).unwrap_or_else(|| usage());
        let mut config = Config::default().with_policy(policy);
        config.tuning = tuning;
        match sim::replay(&trace, config, seq_offset) {
            Ok(report) => {
                println!("{}", report.to_json(p, &name));
                if let Some(path) = &dump_frames {
                    // One file per policy: PATH.<policy>.csv with every played frame.
                    let mut csv = String::from("seq,slot_ms,delay_ms\n");
                    for f in &report.frames {
                        csv.push_str(&format!("{},{:.3},{:.3}\n", f.seq, f.slot_ms, f.delay_ms));
                    }
                    let file = format!("{path}.{}.csv", p.replace(':', "-"));
                    if let Err(e) = std::fs::write(&file, csv) {
                        eprintln!("{file}: {e}");
                        std::process::exit(1);
                    }
                }
            }
            Err(e) => {
                eprintln!("{p}: {e}");
                std::process::exit(1)
            }
        }
    }
}
