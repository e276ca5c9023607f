//! The `voice-bots` load test: N headless [`voice_client::Client`]s in R rooms, a few talkers per room streaming
//! speech through the real Opus codec, against a relay started in this process on loopback (default) or a server
//! given by address. Prints a progress line on stderr and a JSON [`Summary`] at the end.
//!
//! Why only a few talkers per room (default 2): every listener decodes every talker of its room, so with 100 bots in
//! rooms of 10 and everyone talking the process would run 900 Opus decoders at 50 frames/s (on top of the relay) and
//! measure its own CPU starvation instead of the relay. Two talkers per room (the usual case in a conversation) gives
//! 180 decoded streams and 20 encoders, which two cores carry, while the relay still forwards to every member.
//!
//! Talkers take turns (a round-robin of 1 s slots per room: marker + 0.7 s of speech + silence), so each listener's
//! output has clean turn onsets, and the mouth-to-ear latency of every turn is measured by the shared-clock method of
//! [`audio`]: all bots live in one process, so "captured" and "played" instants are on the same clock.

pub mod audio;
pub mod local;
pub mod summary;

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use voice_client::{Client, ClientConfig, Event, MediaConfig, SessionConfig, SessionStats, TalkMode};
use voice_proto::control::Credential;

use self::audio::{Clock, RATE_HZ, Recording, ScriptedAudio, TalkScript, turn_with_marker};
use self::local::LocalRelay;
pub use self::summary::Summary;
use crate::words::{connect_failure, ended, refused};

/// Length of one talker's slot in a room's round-robin.
const SLOT: Duration = Duration::from_millis(1_000);
/// Speech per turn (the rest of the slot is silence, so the next turn's onset is clean).
const SPEECH: Duration = Duration::from_millis(700);
/// After the talkers release their keys: time for the last packets to arrive before the counters are read.
const DRAIN: Duration = Duration::from_millis(500);
/// How long connecting and joining may take, for all bots together.
const CONNECT_BOUND: Duration = Duration::from_secs(60);

/// Command line of `voice-bots`.
#[derive(Clone, Debug, Parser)]
#[command(name = "voice-bots", version, about = "Load test: headless voice clients talking in rooms")]
pub struct Args {
    /// Number of bots.
    #[arg(long, default_value_t = 100)]
    pub bots: usize,
    /// Number of rooms (bots are spread round-robin).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Talk time, seconds (rounded up to whole round-robin cycles).
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Talkers per room (the others only listen); each listener decodes every talker of its room.
    #[arg(long, default_value_t = 2)]
    pub talkers_per_room: usize,
    /// Server control address HOST:PORT; without it a relay is started in this process on loopback.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// Bot user names are PREFIX0, PREFIX1, ... (must exist on an external server).
    #[arg(long, default_value = "bot")]
    pub user_prefix: String,
    /// Password of every bot user.
    #[arg(long, default_value = "bot-password", env = "VOICE_BOTS_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Room names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "bots")]
    pub room_prefix: String,
    /// Speech WAV used by the talkers (any rate/channels; first channel, resampled to 48 kHz); default: generated
    /// speech-like audio, different for every talker.
    #[arg(long, value_name = "FILE")]
    pub wav: Option<PathBuf>,
    /// Seed of the generated speech and of the clients.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// UDP threads of the in-process relay (SO_REUSEPORT sockets, Linux; its CPU figure covers them all).
    #[arg(long, default_value_t = 1)]
    pub relay_udp_threads: usize,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Give up (with an error) when no bot has logged in this many seconds after the first failed connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub give_up_after: f64,
}

/// One bot.
struct Bot {
    room: usize,
    talker: bool,
    client: Client,
    recording: Arc<Mutex<Recording>>,
    ready: bool,
}

/// Runs the load test described by `args`; the progress goes to stderr unless `quiet`.
pub fn run(args: &Args) -> Result<Summary> {
    if args.bots == 0 || args.rooms == 0 || args.rooms > args.bots {
        bail!("need at least one bot and one room, and no more rooms than bots");
    }
    if !(args.seconds > 0.0 && args.seconds <= 24.0 * 3600.0) {
        bail!("--seconds must be positive (at most a day)");
    }
    let give_up = Duration::try_from_secs_f64(args.give_up_after)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--give-up-after must be a positive number of seconds")?;
    let users: Vec<(String, String)> =
        (0..args.bots).map(|i| (format!("{}{i}", args.user_prefix), args.password.clone())).collect();
    let rooms: Vec<String> = (0..args.rooms).map(|r| format!("{}-{r}", args.room_prefix)).collect();
    let (relay, server) = match &args.server {
        Some(s) => {
            let addr = s.to_socket_addrs().with_context(|| format!("server address {s}"))?.next();
            (None, addr.with_context(|| format!("{s} resolves to no address"))?)
        }
        None => {
            let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let r = LocalRelay::start_on(&users, &rooms, any, any, args.relay_udp_threads)?;
            let tcp = r.tcp;
            (Some(r), tcp)
        }
    };
    let room_size = |r: usize| (args.bots - r).div_ceil(args.rooms);
    let talkers = |r: usize| args.talkers_per_room.min(room_size(r));
    let cycle_s = SLOT.as_secs_f64() * args.talkers_per_room.max(1) as f64;
    let cycles = (args.seconds / cycle_s).ceil().max(1.0) as usize;
    let speech = SpeechSource::new(args.wav.as_deref(), args.seed)?;
    let clock = Arc::new(Clock::default());

    progress(args, format_args!("connecting {} bots to {server} ...", args.bots));
    let mut bots = Vec::with_capacity(args.bots);
    for (i, (user, password)) in users.iter().enumerate() {
        let (room, index_in_room) = (i % args.rooms, i / args.rooms);
        let talker = index_in_room < talkers(room);
        let script = talker.then(|| TalkScript {
            cycle: samples(SLOT) * talkers(room),
            offset: samples(SLOT) * index_in_room,
            turn: Arc::new(turn_with_marker(&speech.turn(i, samples(SPEECH)))),
            cycles,
        });
        let audio = ScriptedAudio::new(Arc::clone(&clock), script, false);
        let recording = audio.recording();
        let session = SessionConfig::new(server, user.clone(), Credential::Password(password.clone()))
            .with_room(rooms[room].clone())
            .with_talk_mode(TalkMode::PushToTalk);
        let config = ClientConfig {
            session,
            media: MediaConfig::default(),
            audio: Box::new(audio),
            seed: args.seed + i as u64,
            tls: None,
        };
        let client = Client::connect(config).with_context(|| format!("starting bot {user}"))?;
        bots.push(Bot { room, talker, client, recording, ready: false });
    }
    wait_ready(args, &mut bots, server, give_up)?;

    // Everyone is in and nobody sends audio yet: read the counters, then the talkers hold their push-to-talk key
    // from shortly before the schedule starts (on the shared clock) until it is over, so that every packet counted
    // as sent has had its chance to arrive when the counters are read again.
    let before: Vec<SessionStats> = bots.iter().map(|b| b.client.stats()).collect();
    let origin = Instant::now() + Duration::from_millis(200);
    set_ptt(&bots, true)?;
    clock.start(origin);
    std::thread::sleep(origin.saturating_duration_since(Instant::now()));
    let cpu_before = (local::process_cpu(), relay.as_ref().and_then(|_| local::thread_cpu("voice-relay")));
    let relay_before = relay.as_ref().and_then(LocalRelay::snapshot);
    let talk = Duration::from_secs_f64(cycle_s * cycles as f64);
    // The last turn's tail needs the path's latency to come out.
    let end = origin + talk + Duration::from_millis(500);
    let mut jb_delays_ms = Vec::new();
    let mut next_tick = origin;
    while Instant::now() < end {
        next_tick += Duration::from_secs(1);
        std::thread::sleep(next_tick.min(end).saturating_duration_since(Instant::now()));
        for b in &bots {
            while b.client.try_event().is_some() {}
        }
        let stats: Vec<SessionStats> = bots.iter().map(|b| b.client.stats()).collect();
        for s in &stats {
            jb_delays_ms.extend(s.speakers.iter().map(|sp| sp.current_delay.as_secs_f64() * 1e3));
        }
        let received: u64 = stats.iter().flat_map(|s| &s.speakers).map(|sp| sp.packets).sum();
        let elapsed = Instant::now().saturating_duration_since(origin).min(talk);
        progress(
            args,
            format_args!(
                "[{:>4.0}/{:.0} s] {} bots in {} rooms, {} packets received",
                elapsed.as_secs_f64(),
                talk.as_secs_f64(),
                bots.len(),
                args.rooms,
                received
            ),
        );
    }
    let wall = origin.elapsed();
    let cpu_after = (local::process_cpu(), relay.as_ref().and_then(|_| local::thread_cpu("voice-relay")));
    set_ptt(&bots, false)?;
    std::thread::sleep(DRAIN);
    let after: Vec<SessionStats> = bots.iter().map(|b| b.client.stats()).collect();
    let relay_after = relay.as_ref().and_then(LocalRelay::snapshot);
    if !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    let recordings: Vec<(usize, bool, Recording)> = bots
        .into_iter()
        .map(|b| {
            let _ = b.client.shutdown();
            let rec = std::mem::take(&mut *b.recording.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            (b.room, b.talker, rec)
        })
        .collect();
    if let Some(r) = relay {
        r.stop();
    }
    let mut summary = Summary::compute(summary::Inputs {
        args,
        server: if args.server.is_some() { server.to_string() } else { format!("in-process relay on {server}") },
        room_size: &(0..args.rooms).map(room_size).collect::<Vec<_>>(),
        bots: &recordings,
        before: &before,
        after: &after,
        jb_delays_ms: &mut jb_delays_ms,
        wall,
        talk,
    });
    summary.set_cpu(wall, cpu_before, cpu_after, args.server.is_none());
    if let (Some(a), Some(b)) = (&relay_before, &relay_after) {
        summary.set_relay(a, b);
    }
    Ok(summary)
}

/// Presses or releases the talkers' push-to-talk keys.
fn set_ptt(bots: &[Bot], down: bool) -> Result<()> {
    for b in bots.iter().filter(|b| b.talker) {
        b.client.set_ptt(down).context("a bot stopped")?;
    }
    Ok(())
}

fn samples(d: Duration) -> usize {
    (d.as_secs_f64() * RATE_HZ as f64) as usize
}

fn progress(args: &Args, line: std::fmt::Arguments<'_>) {
    if args.quiet {
        return;
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprint!("\r\x1b[2K{line}");
    } else {
        eprintln!("{line}");
    }
}

/// Waits until every bot's UDP path is up (bounded); fails, in words, with the reason the server gave if one is
/// refused, or when the server cannot be reached ([`Readiness`]).
fn wait_ready(args: &Args, bots: &mut [Bot], server: std::net::SocketAddr, give_up: Duration) -> Result<()> {
    let mut readiness = Readiness::new(Instant::now(), server, give_up);
    let mut ready = 0;
    while ready < bots.len() {
        for (i, b) in bots.iter_mut().enumerate().filter(|(_, b)| !b.ready) {
            while let Some(e) = b.client.try_event() {
                if e == Event::MediaReady {
                    b.ready = true;
                }
                readiness.on_event(Instant::now(), i, &e).map_err(anyhow::Error::msg)?;
            }
        }
        readiness.check(Instant::now(), ready, bots.len()).map_err(anyhow::Error::msg)?;
        let now_ready = bots.iter().filter(|b| b.ready).count();
        if now_ready != ready {
            ready = now_ready;
            progress(args, format_args!("{ready}/{} bots ready", bots.len()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    Ok(())
}

/// Whether the bots are getting in: the first refusal by the server ends the run (in words), and so does a server
/// that no bot reached within `give_up` of the first failed connection, or a start that takes longer than
/// [`CONNECT_BOUND`].
#[derive(Debug)]
struct Readiness {
    server: std::net::SocketAddr,
    give_up: Duration,
    started: Instant,
    first_failure: Option<(Instant, String)>,
    logged_in: bool,
}

impl Readiness {
    fn new(now: Instant, server: std::net::SocketAddr, give_up: Duration) -> Self {
        Self { server, give_up, started: now, first_failure: None, logged_in: false }
    }

    /// One event of bot `i`; an error (a sentence) when it ends the run.
    fn on_event(&mut self, now: Instant, i: usize, e: &Event) -> Result<(), String> {
        match e {
            Event::LoggedIn { .. } => self.logged_in = true,
            Event::ConnectFailed(why) => {
                self.first_failure.get_or_insert_with(|| (now, why.clone()));
            }
            Event::Closed { reason: Some((code, message)) } => {
                return Err(format!("bot {i}: {}", ended(*code, message)));
            }
            Event::Closed { reason: None } => return Err(format!("bot {i} stopped")),
            Event::ServerError { code, message } => return Err(format!("bot {i}: {}", refused(*code, message))),
            _ => {}
        }
        Ok(())
    }

    /// Whether to wait on at `now`, with `ready` of `total` bots ready.
    fn check(&self, now: Instant, ready: usize, total: usize) -> Result<(), String> {
        if let Some((at, why)) = &self.first_failure
            && !self.logged_in
            && now.saturating_duration_since(*at) >= self.give_up
        {
            let why = connect_failure(why, self.server, false);
            return Err(format!(
                "cannot reach the server: {why}; gave up after {} s (--give-up-after)",
                self.give_up.as_secs_f64()
            ));
        }
        if now.saturating_duration_since(self.started) > CONNECT_BOUND {
            return Err(format!(
                "only {ready} of {total} bots were ready (joined, UDP bound) within {CONNECT_BOUND:?}"
            ));
        }
        Ok(())
    }
}

/// Where talkers' speech comes from: a WAV file's, or generated.
enum SpeechSource {
    Wav(Vec<f32>),
    Generated(u64),
}

impl SpeechSource {
    fn new(wav: Option<&std::path::Path>, seed: u64) -> Result<Self> {
        let Some(path) = wav else { return Ok(Self::Generated(seed)) };
        let (format, samples) =
            voice_client::read_wav(path).with_context(|| format!("reading speech WAV {}", path.display()))?;
        let channels = usize::from(format.channels.max(1));
        let mono: Vec<f32> = samples.iter().step_by(channels).copied().collect();
        let speech = resample_linear(&mono, format.rate_hz, RATE_HZ as u32);
        if speech.len() < RATE_HZ / 10 {
            bail!("speech WAV {} is shorter than 100 ms", path.display());
        }
        Ok(Self::Wav(speech))
    }

    /// `len` samples of speech for talker `i` (different talkers get different speech).
    fn turn(&self, i: usize, len: usize) -> Vec<f32> {
        match self {
            Self::Generated(seed) => {
                voice_sim::audio::speech_like(len, seed.wrapping_mul(1_000).wrapping_add(i as u64))
            }
            Self::Wav(s) => (0..len).map(|k| s[(i * len + k) % s.len()]).collect(),
        }
    }
}

/// Linear-interpolation resampling (enough for a test signal).
fn resample_linear(input: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    if from_hz == to_hz || from_hz == 0 || input.is_empty() {
        return input.to_vec();
    }
    let ratio = f64::from(from_hz) / f64::from(to_hz);
    let n = (input.len() as f64 / ratio) as usize;
    (0..n)
        .map(|k| {
            let x = k as f64 * ratio;
            let i = x as usize;
            let frac = (x - i as f64) as f32;
            let a = input[i.min(input.len() - 1)];
            let b = input[(i + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_speech_wav_is_taken_as_mono_48k() {
        let path = std::env::temp_dir().join(format!("voice-bots-speech-{}.wav", std::process::id()));
        // 0.5 s of a 16 kHz stereo ramp: left channel rising, right channel zero.
        let stereo: Vec<f32> = (0..8_000).flat_map(|i| [i as f32 / 8_000.0, 0.0]).collect();
        voice_client::write_wav(&path, voice_client::AudioFormat { rate_hz: 16_000, channels: 2 }, &stereo).unwrap();
        let source = SpeechSource::new(Some(&path), 1).unwrap();
        let _ = std::fs::remove_file(&path);
        let SpeechSource::Wav(s) = source else { panic!("a WAV source") };
        assert_eq!(s.len(), 24_000);
        assert!(s.windows(2).all(|w| w[1] >= w[0]), "left channel, interpolated");
        let turn = SpeechSource::Wav(s).turn(1, 1_000);
        assert_eq!(turn.len(), 1_000);
        assert!(turn[0] > 0.0, "talker 1 starts further into the file");
    }

    #[test]
    fn generated_speech_differs_between_talkers() {
        let g = SpeechSource::new(None, 3).unwrap();
        assert_ne!(g.turn(0, 4_800), g.turn(1, 4_800));
        assert_eq!(g.turn(0, 4_800).len(), 4_800);
    }

    /// Against an unreachable server the bots used to wait a minute at "connecting…"; a refused login printed
    /// `Some((ErrorCode(3), …))`.
    #[test]
    fn unreachable_servers_and_refusals_end_the_wait_in_words() {
        let server: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let t0 = Instant::now();
        let mut r = Readiness::new(t0, server, Duration::from_secs(5));
        r.on_event(t0, 0, &Event::ConnectFailed("Connection refused (os error 111)".into())).unwrap();
        assert_eq!(r.check(t0 + Duration::from_secs(4), 0, 2), Ok(()));
        let why = r.check(t0 + Duration::from_secs(5), 0, 2).unwrap_err();
        assert!(why.starts_with("cannot reach the server: nothing listens at 127.0.0.1:9"), "{why}");
        let mut reached = Readiness::new(t0, server, Duration::from_secs(5));
        reached.on_event(t0, 0, &Event::ConnectFailed("Connection refused (os error 111)".into())).unwrap();
        reached
            .on_event(t0, 1, &Event::LoggedIn { public_id: voice_proto::PublicId(1), server_name: String::new() })
            .unwrap();
        assert_eq!(reached.check(t0 + Duration::from_secs(6), 1, 2), Ok(()), "one bot got in: the server is there");
        let refused = Event::Closed {
            reason: Some((voice_proto::control::ErrorCode::AUTH_FAILED, "authentication failed".into())),
        };
        let why = r.on_event(t0, 3, &refused).unwrap_err();
        assert!(why.starts_with("bot 3: the server refused the login: wrong user name, password or token"), "{why}");
        assert!(!why.contains("ErrorCode") && !why.contains("Some("), "{why}");
    }

    #[test]
    fn resampling_keeps_the_duration() {
        assert_eq!(resample_linear(&[0.0; 441], 44_100, 48_000).len(), 480);
        assert_eq!(resample_linear(&[1.0, 2.0], 48_000, 48_000), vec![1.0, 2.0]);
    }
}
