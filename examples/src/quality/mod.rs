//! `voice-quality` (`cargo xtask quality`): what a listener hears, scored as a listener would be served.
//!
//! For each network condition of a matrix it starts the real relay (`voice_relay::driver::Server`) and two real
//! clients (`voice_client::Client`, headless, in-memory devices paced like sound cards) on loopback: a talker that
//! speaks ~45 s of speech (espeak-ng's voices when `espeak-ng` is installed, generated speech otherwise) and a
//! listener whose path from the relay runs through a loopback proxy ([`netem`]) that applies the condition's loss,
//! latency and jitter to the relay's audio and logs which packets it delivered. What the listener played is scored
//! with PESQ-WB against what was said; in the same run the same speech goes through libopus alone ([`mod@reference`]:
//! the room's bitrate, FEC at the measured loss when there is loss, exactly the frames the listener never received
//! dropped, FEC/PLC as a perfect receiver would use them), and is scored the same way. The report is the table of
//! both scores and their ratio per condition, plus concealment, FEC, late packets and the playout delay, as text
//! and JSON.

pub mod netem;
pub mod reference;
pub mod score;
pub mod speech;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde::Serialize;
use voice_client::{Client, ClientConfig, MediaConfig, SessionConfig, SessionStats, TalkMode};
use voice_proto::control::{ChannelConfig, Credential};
use voice_relay::RoomConfig;

use crate::bots::audio::{Clock, RATE_HZ, ScriptedAudio, TalkScript, first_onsets, turn_with_marker};
use crate::bots::local::LocalRelay;
use crate::demo::wait_media;
use netem::{Impairment, Netem};
use reference::{FRAME, RefSettings};

/// Silence between the start marker and the speech, samples (300 ms).
const LEAD_SILENCE: usize = RATE_HZ * 3 / 10;
/// Target length of a scored segment (8 s).
const SEGMENT: usize = RATE_HZ * 8;

/// Command line of `voice-quality`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "voice-quality",
    version,
    about = "Speech through the real relay and clients under a matrix of network conditions, scored with PESQ-WB \
             against offline libopus with the same lost packets"
)]
pub struct Args {
    /// Speech per condition, seconds.
    #[arg(long, default_value_t = 45.0)]
    pub seconds: f64,
    /// Conditions to run (comma-separated): clean, loss2, loss5, loss10, burst5, jitter10, jitter20, jitter40,
    /// loaded. Default: all.
    #[arg(long, value_delimiter = ',')]
    pub conditions: Vec<String>,
    /// The room's bitrate, bit/s.
    #[arg(long, default_value_t = 32_000)]
    pub bitrate: u32,
    /// Where the WAV files and the JSON report go.
    #[arg(long, default_value = "target/quality")]
    pub out: PathBuf,
    /// Speech source: `auto` (espeak-ng if installed, else generated), `espeak`, `generated`.
    #[arg(long, default_value = "auto")]
    pub speech: String,
    /// Run every condition with this many busy processes competing for the CPU (a loaded machine: e.g. one per
    /// core); the `loaded` condition always has one per core.
    #[arg(long, default_value_t = 0)]
    pub busy: usize,
    /// Seed of the network impairments and the generated speech.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Instead of running the matrix: score WAV files, `--score SAID.wav HEARD.wav [MORE.wav…]` — PESQ-WB of each
    /// later file against the first (aligned segment by segment), e.g. a trace replay's output
    /// (`cargo run -p voice-sim --example replay -- TRACE.csv --audio SAID.wav --out HEARD.wav`).
    #[arg(long, num_args = 2.., value_name = "WAV")]
    pub score: Vec<PathBuf>,
    /// Where python3 finds the `pesq` package (PYTHONPATH); `cargo xtask quality` installs it in target/tools/pesq.
    #[arg(long, env = "VOICE_PESQ_PATH")]
    pub pesq_path: Option<PathBuf>,
}

/// Busy processes (`sh` spinning), one per asked core, at normal priority; killed when dropped.
struct Busy(Vec<std::process::Child>);

impl Busy {
    fn start(n: usize) -> Self {
        let children = (0..n)
            .filter_map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        Self(children)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One network condition of the matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Condition {
    /// Short name.
    pub name: String,
    /// In words.
    pub description: String,
    #[serde(skip)]
    impairment: Impairment,
    /// Busy processes competing for the CPU during the run (one per core for `loaded`).
    pub busy_processes: usize,
}

/// Every condition the harness knows.
#[must_use]
pub fn matrix() -> Vec<Condition> {
    let ms = Duration::from_millis;
    let c = |name: &str, description: &str, impairment: Impairment| Condition {
        name: name.into(),
        description: description.into(),
        impairment,
        busy_processes: 0,
    };
    let loss = |p: f64| Impairment { loss: p, ..Impairment::default() };
    let jitter = |s: u64| Impairment { latency: ms(30), jitter: ms(s), ..Impairment::default() };
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    vec![
        c("clean", "clean link", Impairment::default()),
        c("loss2", "2 % random loss", loss(0.02)),
        c("loss5", "5 % random loss", loss(0.05)),
        c("loss10", "10 % random loss", loss(0.10)),
        c(
            "burst5",
            "5 % bursty loss (Gilbert-Elliott, mean burst 3 packets)",
            Impairment { burst: Some(3.0), ..loss(0.05) },
        ),
        c("jitter10", "30 ms latency, jitter σ 10 ms, no loss", jitter(10)),
        c("jitter20", "30 ms latency, jitter σ 20 ms, no loss", jitter(20)),
        c("jitter40", "30 ms latency, jitter σ 40 ms, no loss", jitter(40)),
        Condition {
            busy_processes: cores,
            ..c("loaded", "clean link, one busy process per core competing for the CPU", Impairment::default())
        },
    ]
}

/// What one condition measured.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The condition.
    pub condition: Condition,
    /// PESQ-WB of what the listener heard (mean over segments).
    pub pesq_stack: f64,
    /// PESQ-WB of offline libopus with the same lost packets.
    pub pesq_reference: f64,
    /// `pesq_stack / pesq_reference`.
    pub ratio: f64,
    /// Per-segment scores, stack.
    pub segments_stack: Vec<Option<f64>>,
    /// Per-segment scores, reference.
    pub segments_reference: Vec<Option<f64>>,
    /// Audio packets the relay sent toward the listener during the speech.
    pub packets: usize,
    /// Of those, dropped by the network.
    pub lost: usize,
    /// Frames the listener concealed (PLC).
    pub concealed: u64,
    /// Concealed frames as a share of the frames played, %.
    pub concealed_pct: f64,
    /// Frames the listener recovered from FEC.
    pub fec_recovered: u64,
    /// Packets that arrived too late to play.
    pub late: u64,
    /// Frames the reference recovered from FEC / concealed.
    pub reference_fec: usize,
    /// Frames the reference concealed.
    pub reference_plc: usize,
    /// Mouth-to-ear of the start marker, ms.
    pub marker_latency_ms: Option<f64>,
    /// Playout delay of each scored segment (heard − said, on the process clock), ms: mean and max.
    pub segment_delay_ms: (f64, f64),
    /// The talker's send bitrate at the end, bit/s.
    pub send_bitrate_bps: u32,
    /// 1-minute load average before the condition started.
    pub load_before: Option<f64>,
    /// 1-minute load average when the talk ended.
    pub load_after: Option<f64>,
}

/// Runs the harness: every asked condition in turn, then the table.
pub fn run(args: &Args) -> Result<Vec<Outcome>> {
    if args.score.is_empty() && !(args.seconds >= 9.0 && args.seconds <= 600.0) {
        bail!("--seconds must be in [9, 600] (PESQ segments are 8 s)");
    }
    if !score::pesq_available(args.pesq_path.as_deref()) {
        bail!(
            "python3 cannot import `pesq` and `numpy`{}: run `cargo xtask quality` (it installs them into \
             target/tools/pesq), or `python3 -m pip install pesq numpy` and pass --pesq-path",
            args.pesq_path.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default()
        );
    }
    if !args.score.is_empty() {
        score_files(args)?;
        return Ok(Vec::new());
    }
    let all = matrix();
    let chosen: Vec<Condition> = if args.conditions.is_empty() {
        all
    } else {
        let mut v = Vec::new();
        for name in &args.conditions {
            let Some(c) = all.iter().find(|c| &c.name == name) else {
                bail!(
                    "unknown condition `{name}`; known: {}",
                    all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                );
            };
            v.push(c.clone());
        }
        v
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let (speech, source) = speech::make(&args.speech, args.seconds, args.seed, &args.out)?;
    eprintln!("speech: {source}, {:.1} s", speech.len() as f64 / RATE_HZ as f64);
    let mut script = turn_with_marker(&vec![0.0; LEAD_SILENCE]);
    let speech_start = script.len();
    script.extend_from_slice(&speech);
    script.extend(std::iter::repeat_n(0.0, RATE_HZ / 2));
    voice_client::write_wav(&args.out.join("said.wav"), voice_client::AudioFormat::MONO_48K, &script)?;
    let segs = score::segments(&script, speech_start, SEGMENT);
    let mut outcomes = Vec::new();
    for condition in chosen {
        eprintln!("condition {}: {} …", condition.name, condition.description);
        let outcome =
            run_condition(args, &condition, &script, &segs).with_context(|| format!("condition {}", condition.name))?;
        eprintln!(
            "  PESQ-WB stack {:.2}, offline Opus {:.2}, ratio {:.2}; concealed {} ({:.2} %), FEC {}, late {}",
            outcome.pesq_stack,
            outcome.pesq_reference,
            outcome.ratio,
            outcome.concealed,
            outcome.concealed_pct,
            outcome.fec_recovered,
            outcome.late
        );
        outcomes.push(outcome);
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "speech": source,
        "seconds": speech.len() as f64 / RATE_HZ as f64,
        "bitrate_bps": args.bitrate,
        "conditions": outcomes,
    }))?;
    let path = args.out.join("quality.json");
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    Ok(outcomes)
}

/// `--score SAID HEARD…`: prints PESQ-WB of each HEARD against SAID.
fn score_files(args: &Args) -> Result<()> {
    let read = |p: &Path| -> Result<Vec<f32>> {
        let (format, x) = voice_client::read_wav(p).with_context(|| format!("reading {}", p.display()))?;
        if format.rate_hz != 48_000 {
            bail!("{}: {} Hz; the scorer takes 48 kHz WAVs", p.display(), format.rate_hz);
        }
        Ok(x.chunks(usize::from(format.channels.max(1))).map(|c| c[0]).collect())
    };
    let said = read(&args.score[0])?;
    let segs = score::segments(&said, 0, SEGMENT);
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (k, path) in args.score[1..].iter().enumerate() {
        let heard = read(path)?;
        let (pairs, _) = score::write_pairs(&args.out, &format!("score{k}"), &said, &segs, &heard, 0, heard.len())?;
        let scores = score::pesq(&pairs, args.pesq_path.as_deref())?;
        let s: Vec<f64> = scores.iter().flatten().copied().collect();
        let mean = if s.is_empty() { f64::NAN } else { s.iter().sum::<f64>() / s.len() as f64 };
        let each: Vec<String> = scores.iter().map(|x| x.map_or("-".into(), |v| format!("{v:.2}"))).collect();
        println!(
            "{}: PESQ-WB {mean:.2} over {} of {} segments ({})",
            path.display(),
            s.len(),
            segs.len(),
            each.join(", ")
        );
    }
    Ok(())
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn run_condition(args: &Args, condition: &Condition, script: &[f32], segs: &[(usize, usize)]) -> Result<Outcome> {
    let load_before = load_average();
    let users =
        vec![("talker".to_string(), "talker-pw".to_string()), ("listener".to_string(), "listener-pw".to_string())];
    let room =
        ChannelConfig { bitrate_bps: args.bitrate, frame_ms: 20, fec: true, dtx: false, ..ChannelConfig::default() };
    // The relay stands in for a server on another machine: started from a thread at real-time priority, its
    // threads inherit the policy, so other work on this machine delays it no more than it would a remote server.
    let rooms = vec![RoomConfig::new("quality").with_config(room)];
    let relay = std::thread::scope(|s| {
        s.spawn(|| {
            let _ = voice_client::raise_current_thread_priority();
            LocalRelay::start_rooms(&users, rooms)
        })
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the relay's starting thread panicked")))
    })?;
    let seed = args.seed.wrapping_mul(1_000).wrapping_add(condition.name.len() as u64);
    let netem = Netem::start(relay.tcp, relay.udp, condition.impairment, seed)?;

    let clock = Arc::new(Clock::default());
    let talk_script = TalkScript { cycle: script.len(), offset: 0, turn: Arc::new(script.to_vec()), cycles: 1 };
    let talker_audio = ScriptedAudio::new(Arc::clone(&clock), Some(talk_script), false);
    let talker_rec = talker_audio.recording();
    let listener_audio = ScriptedAudio::new(Arc::clone(&clock), None, true);
    let listener_rec = listener_audio.recording();
    let connect = |user: &str, pw: &str, server, audio: ScriptedAudio, mode, seed| {
        let session = SessionConfig::new(server, user.to_string(), Credential::Password(pw.to_string()))
            .with_room("quality")
            .with_talk_mode(mode);
        Client::connect(ClientConfig {
            session,
            media: MediaConfig::default(),
            audio: Box::new(audio),
            seed,
            tls: None,
        })
        .with_context(|| format!("starting {user}"))
    };
    let listener = connect("listener", "listener-pw", netem.tcp, listener_audio, TalkMode::PushToTalk, 2)?;
    let talker = connect("talker", "talker-pw", relay.tcp, talker_audio, TalkMode::Continuous, 1)?;
    wait_media(&listener).context("listener joining")?;
    wait_media(&talker).context("talker joining")?;

    let busy = Busy::start(condition.busy_processes.max(args.busy));
    let before = listener.stats();
    // VOICE_QUALITY_TRACE=1: the listener's jitter buffer every 100 ms (debugging).
    let trace = std::env::var_os("VOICE_QUALITY_TRACE").is_some();
    let origin = Instant::now() + Duration::from_millis(500);
    clock.start(origin);
    let end = origin + Duration::from_secs_f64(script.len() as f64 / RATE_HZ as f64) + Duration::from_secs(1);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())));
        while listener.try_event().is_some() {}
        while talker.try_event().is_some() {}
        if trace {
            for sp in listener.stats().speakers {
                eprintln!(
                    "  listener: delay {:?} target {:?} depth {} concealed {} fec {} late {} jitter {:?}",
                    sp.current_delay, sp.target_delay, sp.depth, sp.concealed, sp.fec_recovered, sp.late, sp.jitter
                );
            }
        }
    }
    let load_after = load_average();
    drop(busy);
    let after = listener.stats();
    let send_bitrate_bps = talker.stats().send_bitrate_bps;
    talker.shutdown().context("stopping the talker")?;
    listener.shutdown().context("stopping the listener")?;
    let log = netem.stop();
    relay.stop();

    let take = |r: &std::sync::Mutex<crate::bots::audio::Recording>| {
        std::mem::take(&mut *r.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    };
    let (said, heard) = (take(&talker_rec), take(&listener_rec));
    let dir = args.out.join(&condition.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    voice_client::write_wav(&dir.join("heard.wav"), voice_client::AudioFormat::MONO_48K, &heard.played)?;

    // Which packets the listener never got, mapped onto the offline encoding's frames.
    let first_ts = log.first().map_or(0, |e| e.timestamp);
    let observed: Vec<(i64, usize, bool)> = log
        .iter()
        .map(|e| (i64::from(e.timestamp.wrapping_sub(first_ts) as i32) / FRAME as i64, e.payload_len, e.delivered))
        .collect();
    let lost_count = observed.iter().filter(|o| !o.2).count();
    let loss_pct = if observed.is_empty() { 0.0 } else { 100.0 * lost_count as f64 / observed.len() as f64 };
    let fec_loss_pct = if lost_count == 0 { 0 } else { loss_pct.ceil().clamp(1.0, 100.0) as u8 };
    let settings = RefSettings { bitrate_bps: args.bitrate, fec_loss_pct };
    let sizes: Vec<(i64, usize)> = observed.iter().map(|o| (o.0, o.1)).collect();
    let (lead, offset) = reference::match_phase(script, &sizes, settings)?;
    let mut signal = vec![0.0f32; lead];
    signal.extend_from_slice(script);
    let packets = reference::encode(&signal, settings)?;
    let lost_frames: std::collections::HashSet<i64> = observed.iter().filter(|o| !o.2).map(|o| o.0).collect();
    let lost: Vec<bool> = (0..packets.len()).map(|k| lost_frames.contains(&(k as i64 + offset))).collect();
    let (decoded, reference_fec, reference_plc) = reference::decode(&packets, &lost, fec_loss_pct > 0)?;
    voice_client::write_wav(&dir.join("reference.wav"), voice_client::AudioFormat::MONO_48K, &decoded)?;

    // Score both against the script.
    let (stack_pairs, starts) = score::write_pairs(&dir, "stack", script, segs, &heard.played, 0, heard.played.len())?;
    let (ref_pairs, _) =
        score::write_pairs(&dir, "reference", script, segs, &decoded, 0, decoded.len().min(RATE_HZ * 2))?;
    let segments_stack = score::pesq(&stack_pairs, args.pesq_path.as_deref())?;
    let segments_reference = score::pesq(&ref_pairs, args.pesq_path.as_deref())?;
    let mean = |v: &[Option<f64>]| {
        let s: Vec<f64> = v.iter().flatten().copied().collect();
        if s.is_empty() { 0.0 } else { s.iter().sum::<f64>() / s.len() as f64 }
    };
    let (pesq_stack, pesq_reference) = (mean(&segments_stack), mean(&segments_reference));

    // Latency: the start marker, and each segment's alignment on the process clock.
    let marker_latency_ms = said.markers.first().and_then(|&m| {
        let i = first_onsets(&[m], &heard.onsets, Duration::from_secs(2))[0]?;
        Some((heard.onsets[i] - m).as_secs_f64() * 1e3)
    });
    let mut delays = Vec::new();
    if let (Some(&m), Some(&o), Some(&oi)) = (said.markers.first(), heard.onsets.first(), heard.onset_samples.first()) {
        // Sample s of the script was captured at m + (s - one 10 ms chunk) / rate (m: the end of the marker's chunk); heard sample i played at
        // o + (i - oi) / rate.
        for (&(s, _), at) in segs.iter().zip(&starts) {
            let Some(i) = *at else { continue };
            let said_at =
                m.checked_add(Duration::from_secs_f64(s.saturating_sub(RATE_HZ / 100) as f64 / RATE_HZ as f64));
            let heard_at = o.checked_add(Duration::from_secs_f64(i.saturating_sub(oi) as f64 / RATE_HZ as f64));
            if let (Some(a), Some(b)) = (said_at, heard_at) {
                delays.push(b.saturating_duration_since(a).as_secs_f64() * 1e3);
            }
        }
    }
    let seg_delay = if delays.is_empty() {
        (0.0, 0.0)
    } else {
        (delays.iter().sum::<f64>() / delays.len() as f64, delays.iter().copied().fold(0.0, f64::max))
    };
    let (concealed, fec_recovered, late, played) = speaker_delta(&before, &after);
    Ok(Outcome {
        condition: condition.clone(),
        pesq_stack,
        pesq_reference,
        ratio: if pesq_reference > 0.0 { pesq_stack / pesq_reference } else { 0.0 },
        segments_stack,
        segments_reference,
        packets: observed.len(),
        lost: lost_count,
        concealed,
        concealed_pct: if played == 0 { 0.0 } else { 100.0 * concealed as f64 / played as f64 },
        fec_recovered,
        late,
        reference_fec,
        reference_plc,
        marker_latency_ms,
        segment_delay_ms: seg_delay,
        send_bitrate_bps,
        load_before,
        load_after,
    })
}

/// (concealed, FEC, late, frames played or concealed) of the listener's one remote speaker between two snapshots.
fn speaker_delta(before: &SessionStats, after: &SessionStats) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for sp in &after.speakers {
        let b = before.speakers.iter().find(|x| x.id == sp.id);
        let d = |f: fn(&voice_client::SpeakerStats) -> u64| f(sp).saturating_sub(b.map_or(0, f));
        t.0 += d(|s| s.concealed);
        t.1 += d(|s| s.fec_recovered);
        t.2 += d(|s| s.late);
        t.3 += d(|s| s.packets) + d(|s| s.concealed);
    }
    t
}

/// The report as a Markdown table.
#[must_use]
pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "| condition | PESQ-WB stack | offline Opus | ratio | lost | concealed | FEC | late | marker m2e ms | delay mean / max ms | load before / after |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {} / {} | {} ({:.2} %) | {} | {} | {} | {:.0} / {:.0} | {} / {} |\n",
            o.condition.name,
            o.pesq_stack,
            o.pesq_reference,
            o.ratio,
            o.lost,
            o.packets,
            o.concealed,
            o.concealed_pct,
            o.fec_recovered,
            o.late,
            o.marker_latency_ms.map_or("-".into(), |m| format!("{m:.0}")),
            o.segment_delay_ms.0,
            o.segment_delay_ms.1,
            o.load_before.map_or("-".into(), |l| format!("{l:.2}")),
            o.load_after.map_or("-".into(), |l| format!("{l:.2}")),
        ));
    }
    s
}
