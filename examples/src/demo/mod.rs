//! The `demo` (the README's first command): a relay (the real `voice_relay::driver::Server`) and three headless
//! clients (`voice_client::Client`) on loopback, generated speech through the whole stack — capture → Opus encode →
//! seal → UDP → relay fan-out → jitter buffer → decode → mix — with a realistic network condition applied by each
//! client's network conditioner (`Client::set_network`, both ways), each listener's audio written to a WAV file, and
//! a short report.
//!
//! The three talk in turns (each slot: a 5 ms marker, one sentence — espeak-ng's voices if it is installed, else
//! generated speech — and 0.3 s of silence), so every listener's WAV holds the other two one after the other, and
//! each heard turn gives one mouth-to-ear latency (marker captured → its onset played, on the process clock; see
//! [`crate::bots::audio`]), one correlation of what was said with what was heard, and its part of the PESQ-WB score
//! ([`listen`]) set beside what libopus alone delivers for the same speech. The clients run the path a user's
//! would: noise suppression on the microphone, Opus with the relay's FEC hints, the adaptive jitter buffer.

pub mod listen;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use voice_client::{
    AudioFormat, Client, ClientConfig, ConditionerConfig, ConditionerStats, Event, MediaConfig, SessionConfig,
    SessionStats, TalkMode,
};
use voice_proto::control::Credential;

use crate::bots::audio::{
    Clock, MARKER_SAMPLES, RATE_HZ, Recording, ScriptedAudio, TalkScript, first_onsets, turn_with_marker,
};
use crate::bots::local::LocalRelay;
use crate::bots::summary::Stat;

/// The talkers.
const NAMES: [&str; 3] = ["alice", "bob", "carol"];
/// Generated speech per turn (when espeak-ng is not installed).
const SPEECH_SAMPLES: usize = RATE_HZ * 9 / 10;
/// Silence after each turn before the next talker starts.
const TURN_GAP: usize = RATE_HZ * 3 / 10;
/// A turn heard later than this counts as missed.
const MATCH_WINDOW: Duration = Duration::from_secs(1);
/// Correlation window, samples (20 ms).
const CORRELATION_WINDOW: usize = RATE_HZ / 50;
/// How far each window's alignment may move from the previous one's, samples (±5 ms: the jitter buffer's
/// time-stretching shifts the heard speech by up to a pitch period at a time).
const CORRELATION_SLACK: usize = RATE_HZ / 200;

/// Command line of `demo`.
#[derive(Clone, Debug, Parser)]
#[command(name = "demo", version, about = "Relay + three clients on loopback: speech through the whole voice stack")]
pub struct Args {
    /// Talk time, seconds (rounded up to whole rounds of three 1.2 s turns).
    #[arg(long, default_value_t = 10.8)]
    pub seconds: f64,
    /// Where the WAV files go.
    #[arg(long, default_value = "target/demo")]
    pub out: PathBuf,
    /// Packet loss client → client, % (half on each leg: client → relay and relay → client).
    #[arg(long, default_value_t = 2.0)]
    pub loss_pct: f64,
    /// One-way network latency client → client, ms (half on each leg).
    #[arg(long, default_value_t = 30)]
    pub latency_ms: u64,
    /// Network jitter client → client, ms (σ of each leg's extra delay is this / √2).
    #[arg(long, default_value_t = 8)]
    pub jitter_ms: u64,
    /// Seed of the speech and of the network conditions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Leave the microphone signal as it is (no noise suppression before the encoder).
    #[arg(long)]
    pub no_noise_suppression: bool,
    /// Where python3 finds the `pesq` package for the PESQ-WB score (`cargo xtask demo` installs it there).
    #[arg(long, env = "VOICE_PESQ_PATH")]
    pub pesq_path: Option<PathBuf>,
}

/// One speaker as heard by one listener.
#[derive(Clone, Debug)]
pub struct Pair {
    /// Who spoke.
    pub speaker: &'static str,
    /// Who listened.
    pub listener: &'static str,
    /// Turns spoken.
    pub turns: usize,
    /// Turns heard.
    pub heard: usize,
    /// Mean mouth-to-ear latency of the heard turns, ms.
    pub latency_ms: f64,
    /// Mean correlation of said vs heard speech over the heard turns.
    pub correlation: f64,
}

/// What the demo measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// The network condition, in words.
    pub condition: String,
    /// Talk time, s.
    pub talk_s: f64,
    /// Per (speaker, listener).
    pub pairs: Vec<Pair>,
    /// Mouth-to-ear latency over all heard turns, ms.
    pub latency_ms: Stat,
    /// Turns not heard.
    pub missed: usize,
    /// Mean correlation over all heard turns.
    pub correlation: f64,
    /// PESQ-WB of the heard turns, and of the same speech through libopus alone.
    pub listening: listen::Listening,
    /// Where the speech came from.
    pub speech: String,
    /// Audio packets sent (all talkers) during the talk.
    pub sent: u64,
    /// Deliveries expected (each packet to both other clients).
    pub expected: u64,
    /// Audio packets received.
    pub received: u64,
    /// 100 × (1 − received / expected).
    pub loss_pct: f64,
    /// Frames concealed by PLC at the receivers.
    pub plc_frames: u64,
    /// Frames recovered from FEC.
    pub fec_recovered: u64,
    /// Packets that came too late for playout.
    pub late: u64,
    /// Mean send bitrate of the talkers, bit/s.
    pub bitrate_bps: f64,
    /// Mean UDP round-trip time client ↔ relay, ms.
    pub udp_rtt_ms: f64,
    /// Mean jitter-buffer playout delay at the end of the talk, over (listener, speaker) pairs, ms.
    pub jitter_buffer_ms: f64,
    /// What the clients' network conditioners did, summed over the three clients.
    pub netem: NetemStats,
    /// WAV files written.
    pub wavs: Vec<PathBuf>,
}

/// Runs the demo.
pub fn run(args: &Args) -> Result<Report> {
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600]");
    }
    if !(0.0..=100.0).contains(&args.loss_pct) {
        bail!("--loss-pct must be in [0, 100]");
    }
    let leg = ConditionerConfig {
        loss: 1.0 - (1.0 - args.loss_pct / 100.0).sqrt(),
        latency: Duration::from_millis(args.latency_ms) / 2,
        jitter: Duration::from_millis(args.jitter_ms).div_f64(std::f64::consts::SQRT_2),
        ..ConditionerConfig::default()
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let (sentences, speech_source) =
        crate::quality::speech::sentences(NAMES.len(), args.seed, SPEECH_SAMPLES, &args.out)?;
    let slot = sentences.iter().map(Vec::len).max().unwrap_or(SPEECH_SAMPLES) + MARKER_SAMPLES + TURN_GAP;
    let cycle = slot * NAMES.len();
    let cycles = (args.seconds * RATE_HZ as f64 / cycle as f64 - 1e-6).ceil().max(1.0) as usize;
    let talk = Duration::from_secs_f64((cycle * cycles) as f64 / RATE_HZ as f64);

    let users: Vec<(String, String)> = NAMES.iter().map(|n| ((*n).into(), format!("{n}-password"))).collect();
    let relay = LocalRelay::start(&users, &["demo".into()])?;

    let clock = Arc::new(Clock::default());
    let mut clients = Vec::new();
    for (k, (user, password)) in users.iter().enumerate() {
        let script = TalkScript { cycle, offset: k * slot, turn: Arc::new(turn_with_marker(&sentences[k])), cycles };
        let audio = ScriptedAudio::new(Arc::clone(&clock), Some(script.clone()), true);
        let recording = audio.recording();
        let session = SessionConfig::new(relay.tcp, user.clone(), Credential::Password(password.clone()))
            .with_room("demo")
            .with_talk_mode(TalkMode::PushToTalk);
        let mut media = MediaConfig::default();
        media.capture.noise_suppression = !args.no_noise_suppression;
        let config = ClientConfig { session, media, audio: Box::new(audio), seed: k as u64, tls: None };
        let client = Client::connect(config).with_context(|| format!("starting {user}"))?;
        // Each client's conditioner impairs its own datagrams both ways, so a talker's packet crosses two legs:
        // the talker's way out and the listener's way in.
        client.set_network(leg).context("network conditions")?;
        clients.push((client, script, recording));
    }
    tracing::debug!("clients started");
    for (k, (client, ..)) in clients.iter().enumerate() {
        wait_media(client).with_context(|| format!("{} joining", NAMES[k]))?;
    }

    tracing::debug!("media ready");
    // Nobody sends audio yet: read the counters, then hold every push-to-talk key from shortly before the schedule
    // starts until it is over (and the last packets had time to arrive), so the counts match.
    let before: Vec<SessionStats> = clients.iter().map(|c| c.0.stats()).collect();
    let origin = Instant::now() + Duration::from_millis(300);
    for (c, ..) in &clients {
        c.set_ptt(true).context("a client stopped")?;
    }
    clock.start(origin);
    std::thread::sleep(origin.saturating_duration_since(Instant::now()));
    let end = origin + talk + Duration::from_millis(600);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100).min(end.saturating_duration_since(Instant::now())));
        for (c, ..) in &clients {
            while c.try_event().is_some() {}
        }
    }
    for (c, ..) in &clients {
        c.set_ptt(false).context("a client stopped")?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let after: Vec<SessionStats> = clients.iter().map(|c| c.0.stats()).collect();
    let netem_stats = clients.iter().fold(NetemStats::default(), |mut t, (c, ..)| {
        let n = c.network_stats();
        t.up = add(t.up, n.up);
        t.down = add(t.down, n.down);
        t
    });
    let mut heard = Vec::new();
    for (client, script, recording) in clients {
        client.shutdown().context("stopping a client")?;
        let rec = std::mem::take(&mut *recording.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        heard.push((script, rec));
    }
    tracing::debug!("clients stopped");
    relay.stop();
    tracing::debug!("relay stopped");

    let mut report = measure(&heard, &before, &after);
    report.speech = speech_source;
    let matched: Vec<Vec<Vec<Option<usize>>>> = heard
        .iter()
        .map(|(_, said)| {
            heard
                .iter()
                .map(|(_, listener)| {
                    first_onsets(&said.markers, &listener.onsets, MATCH_WINDOW)
                        .into_iter()
                        .map(|o| o.and_then(|i| listener.onset_samples.get(i).copied()))
                        .collect()
                })
                .collect()
        })
        .collect();
    report.listening = listen::score(&heard, &matched, 32_000, &args.out, args.pesq_path.as_deref())?;
    report.condition = format!(
        "{}% loss, {} ms latency, {} ms jitter client → client (each leg, in the clients' conditioners: {:.2}% loss, {} ms, σ {:.1} ms)",
        args.loss_pct,
        args.latency_ms,
        args.jitter_ms,
        leg.loss * 100.0,
        leg.latency.as_millis(),
        leg.jitter.as_secs_f64() * 1e3
    );
    report.talk_s = talk.as_secs_f64();
    report.netem = netem_stats;
    for (k, (script, rec)) in heard.iter().enumerate() {
        let said = args.out.join(format!("{}-said.wav", NAMES[k]));
        let samples: Vec<f32> = (0..cycle * cycles).map(|n| script.sample(n)).collect();
        voice_client::write_wav(&said, AudioFormat::MONO_48K, &samples)
            .with_context(|| format!("writing {}", said.display()))?;
        let path = args.out.join(format!("{}-heard.wav", NAMES[k]));
        voice_client::write_wav(&path, AudioFormat::MONO_48K, &rec.played)
            .with_context(|| format!("writing {}", path.display()))?;
        report.wavs.extend([said, path]);
    }
    Ok(report)
}

/// What the network conditioners did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetemStats {
    /// Clients → relay (every client's way out).
    pub up: ConditionerStats,
    /// Relay → clients (every client's way in).
    pub down: ConditionerStats,
}

fn add(a: ConditionerStats, b: ConditionerStats) -> ConditionerStats {
    ConditionerStats {
        pushed: a.pushed + b.pushed,
        dropped: a.dropped + b.dropped,
        reordered: a.reordered + b.reordered,
        delivered: a.delivered + b.delivered,
    }
}

/// Waits (20 s at most) until `client` can send and receive audio.
pub(crate) fn wait_media(client: &Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match client.next_event(Duration::from_millis(100)) {
            Some(Event::MediaReady) => return Ok(()),
            Some(Event::Closed { reason }) => match reason {
                Some((code, message)) => bail!("{}", crate::words::ended(code, &message)),
                None => bail!("the client stopped"),
            },
            Some(Event::ConnectFailed(reason)) => bail!("could not connect: {reason}"),
            _ => {}
        }
    }
    bail!("no media path within 20 s")
}

/// Latency, correlation and packet figures from the recordings and the stats before/after the talk.
fn measure(heard: &[(TalkScript, Recording)], before: &[SessionStats], after: &[SessionStats]) -> Report {
    let mut pairs = Vec::new();
    let (mut all_lat, mut all_corr, mut missed) = (Vec::new(), Vec::new(), 0);
    for (s, (script, said)) in heard.iter().enumerate() {
        for (l, (_, listener)) in heard.iter().enumerate() {
            if l == s {
                continue;
            }
            let matched = first_onsets(&said.markers, &listener.onsets, MATCH_WINDOW);
            let (mut lat, mut corr) = (Vec::new(), Vec::new());
            for (m, o) in said.markers.iter().zip(&matched) {
                let Some(i) = *o else {
                    missed += 1;
                    continue;
                };
                lat.push((listener.onsets[i] - *m).as_secs_f64() * 1e3);
                if let Some(c) = tracked_correlation(&script.turn, &listener.played, listener.onset_samples[i]) {
                    corr.push(c);
                }
            }
            let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
            pairs.push(Pair {
                speaker: NAMES[s],
                listener: NAMES[l],
                turns: said.markers.len(),
                heard: lat.len(),
                latency_ms: mean(&lat),
                correlation: mean(&corr),
            });
            all_lat.extend(lat);
            all_corr.extend(corr);
        }
    }
    let (mut sent, mut received, mut plc, mut fec, mut late, mut bitrate, mut rtt) = (0, 0, 0, 0, 0, 0.0, 0.0);
    let mut delays: Vec<f64> =
        after.iter().flat_map(|a| &a.speakers).map(|sp| sp.current_delay.as_secs_f64() * 1e3).collect();
    for (b, a) in before.iter().zip(after) {
        sent += a.packets_sent.saturating_sub(b.packets_sent);
        bitrate += f64::from(a.send_bitrate_bps) / after.len() as f64;
        rtt += a.udp_rtt.unwrap_or_default().as_secs_f64() * 1e3 / after.len() as f64;
        for sp in &a.speakers {
            let e = b.speakers.iter().find(|x| x.id == sp.id);
            received += sp.packets.saturating_sub(e.map_or(0, |e| e.packets));
            plc += sp.concealed.saturating_sub(e.map_or(0, |e| e.concealed));
            fec += sp.fec_recovered.saturating_sub(e.map_or(0, |e| e.fec_recovered));
            late += sp.late.saturating_sub(e.map_or(0, |e| e.late));
        }
    }
    let expected = sent * (heard.len() as u64 - 1);
    let correlation = if all_corr.is_empty() { 0.0 } else { all_corr.iter().sum::<f64>() / all_corr.len() as f64 };
    Report {
        condition: String::new(),
        talk_s: 0.0,
        pairs,
        latency_ms: Stat::of(&mut all_lat),
        missed,
        correlation,
        listening: listen::Listening::default(),
        speech: String::new(),
        sent,
        expected,
        received,
        loss_pct: if expected == 0 { 0.0 } else { (100.0 * (1.0 - received as f64 / expected as f64)).max(0.0) },
        plc_frames: plc,
        fec_recovered: fec,
        late,
        bitrate_bps: bitrate,
        udp_rtt_ms: rtt,
        jitter_buffer_ms: Stat::of(&mut delays).mean,
        netem: NetemStats::default(),
        wavs: Vec::new(),
    }
}

/// How alike said and heard speech are: the mean, over the 20 ms windows of `said` that carry sound, of the
/// normalized correlation with `heard`, each window aligned within ±5 ms of the previous window's alignment
/// (starting at `onset`, where the heard turn begins). `None` if nothing could be compared.
fn tracked_correlation(said: &[f32], heard: &[f32], onset: usize) -> Option<f64> {
    let mut shift = onset as i64; // heard index − said index
    let mut sum = 0.0;
    let mut windows = 0;
    for start in (0..said.len().saturating_sub(CORRELATION_WINDOW)).step_by(CORRELATION_WINDOW) {
        let w = &said[start..start + CORRELATION_WINDOW];
        if w.iter().map(|x| x * x).sum::<f32>() < 1e-3 * CORRELATION_WINDOW as f32 {
            continue; // a pause: nothing to compare
        }
        let from = start as i64 + shift - CORRELATION_SLACK as i64;
        let Ok(from) = usize::try_from(from) else { continue };
        let to = (from + CORRELATION_WINDOW + 2 * CORRELATION_SLACK).min(heard.len());
        if to < from + CORRELATION_WINDOW {
            break;
        }
        let (c, lag) = voice_sim::audio::best_correlation(w, &heard[from..to], 2 * CORRELATION_SLACK);
        if c.is_finite() {
            sum += f64::from(c);
            windows += 1;
            shift += lag as i64 - CORRELATION_SLACK as i64;
        }
    }
    (windows > 0).then(|| sum / f64::from(windows))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "network      {}", self.condition)?;
        writeln!(
            f,
            "talk         {:.1} s, three talkers in turns ({}; noise suppression, Opus 20 ms frames)",
            self.talk_s, self.speech
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "mouth-to-ear mean {:.0} ms, p50 {:.0} ms, max {:.0} ms over {} heard turns ({} missed)",
            l.mean,
            l.p50,
            l.max,
            self.pairs.iter().map(|p| p.heard).sum::<usize>(),
            self.missed
        )?;
        writeln!(
            f,
            "packets      {} sent, {} of {} expected received: loss {:.1}% (conditioners dropped {} up, {} down)",
            self.sent, self.received, self.expected, self.loss_pct, self.netem.up.dropped, self.netem.down.dropped
        )?;
        writeln!(
            f,
            "concealment  {} PLC frames (slots whose packet was lost or not there in time), {} FEC recoveries, {} late packets",
            self.plc_frames, self.fec_recovered, self.late
        )?;
        writeln!(
            f,
            "bitrate      {:.1} kb/s per talker (sent); UDP RTT to the relay {:.1} ms; jitter buffer delay {:.0} ms",
            self.bitrate_bps / 1e3,
            self.udp_rtt_ms,
            self.jitter_buffer_ms
        )?;
        match (&self.listening.heard, &self.listening.reference, &self.listening.note) {
            (Some(h), Some(r), _) => writeln!(
                f,
                "PESQ-WB      heard {h:.2}, the same speech through libopus alone {r:.2} (ratio {:.2}; 1 = bad, 4.6 = perfect)",
                h / r
            )?,
            (_, _, Some(note)) => writeln!(f, "PESQ-WB      not measured: {note}")?,
            _ => writeln!(f, "PESQ-WB      not measured: no turn could be aligned")?,
        }
        writeln!(
            f,
            "speech       correlation said vs heard {:.2} (20 ms windows, aligned ±5 ms; mean over turns)",
            self.correlation
        )?;
        for p in &self.pairs {
            writeln!(
                f,
                "  {:>5} → {:<5} heard {}/{} turns, {:.0} ms, correlation {:.2}",
                p.speaker, p.listener, p.heard, p.turns, p.latency_ms, p.correlation
            )?;
        }
        write!(f, "wav files   ")?;
        for w in &self.wavs {
            write!(f, " {}", w.display())?;
        }
        Ok(())
    }
}
