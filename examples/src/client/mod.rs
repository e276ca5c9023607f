//! The `voice-client` binary's glue: command line and bookmarks → [`voice_client::Client`], then either the terminal
//! UI ([`crate::tui`]) or a headless loop that prints events as lines (escaped) and takes commands on stdin, and
//! ends in words, with a failure status, when the login is refused or the server cannot be reached.

mod bookmark;
mod headless;
mod probe;
pub(crate) mod reach;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use voice_client::{Client, ClientConfig, ConditionerConfig, FileAudio, MediaConfig, SessionConfig, TalkMode};
use voice_proto::control::Credential;
use voice_proto::{PublicId, WhisperTarget};

use crate::bookmarks::{BookmarkTls, Bookmarks};

pub(crate) use probe::{Probe, probe};

/// Where the audio dumper (F5) writes its WAVs, relative to the working directory.
pub const DUMP_DIR: &str = "voice-dump";

/// Command line of `voice-client`.
#[derive(Debug, Parser)]
#[command(name = "voice-client", version, about = "Terminal voice client (headless with --input/--output)")]
pub struct Args {
    /// Control address of the server, HOST:PORT (default: the bookmark's, else 127.0.0.1:7000).
    #[arg(long)]
    pub server: Option<String>,
    /// User name (default: the bookmark's nickname, else $USER).
    #[arg(long)]
    pub user: Option<String>,
    /// Password (or the VOICE_PASSWORD environment variable; or the bookmark's, if it stores one).
    #[arg(long, env = "VOICE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A JWT from your app's backend instead of a password.
    #[arg(long, conflicts_with = "password")]
    pub token: Option<String>,
    /// Room to join once logged in (default: the first room of the list).
    #[arg(long)]
    pub room: Option<String>,
    /// Use the saved bookmark NAME (bookmarks file in your config directory).
    #[arg(long, value_name = "NAME")]
    pub bookmark: Option<String>,
    /// Save the server, port and nickname as bookmark NAME (add --save-password to keep the password too).
    #[arg(long, value_name = "NAME")]
    pub save_bookmark: Option<String>,
    /// With --save-bookmark: also store the password (in clear, in a file only you can read).
    #[arg(long, requires = "save_bookmark")]
    pub save_password: bool,
    /// A WAV file used as the microphone (played in real time). Implies --headless unless --tui.
    #[arg(long, value_name = "WAV")]
    pub input: Option<PathBuf>,
    /// Write what is played to this WAV file. Implies --headless unless --tui.
    #[arg(long, value_name = "WAV")]
    pub output: Option<PathBuf>,
    /// No terminal UI: print events as lines, read commands (`/chat TEXT`, `/mute`, `/quit`, …) on stdin.
    #[arg(long)]
    pub headless: bool,
    /// The terminal UI even with --input/--output.
    #[arg(long, conflicts_with = "headless")]
    pub tui: bool,
    /// How speech is sent (default: push-to-talk in the UI, continuous when headless with --input).
    #[arg(long, value_enum)]
    pub talk: Option<Talk>,
    /// Headless: stop after this many seconds (default: run until `/quit` on stdin or the session ends).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Headless: give up (exit with an error) when the server cannot be reached for this many seconds, at start or
    /// after the connection dropped. The terminal UI keeps trying and says why it cannot connect.
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub give_up_after: f64,
    /// Sound card to record from (a name from --list-devices; default: the system default). Needs the `cpal`
    /// feature.
    #[arg(long, value_name = "NAME")]
    pub input_device: Option<String>,
    /// Sound card to play to (default: the system default). Needs the `cpal` feature.
    #[arg(long, value_name = "NAME")]
    pub output_device: Option<String>,
    /// Lists the sound cards and exits. Needs the `cpal` feature.
    #[arg(long)]
    pub list_devices: bool,
    /// Cancel the echo of what is played (for loudspeakers instead of a headset). Needs the `aec` feature.
    #[arg(long)]
    pub echo_cancellation: bool,
    /// Suppress background noise in the microphone signal (RNNoise-style, before the encoder).
    #[arg(long)]
    pub noise_suppression: bool,
    /// Voice activation threshold, 0–1 (speech probability a 16 ms window needs; default 0.5). Lower catches quiet
    /// speech, higher ignores more noise.
    #[arg(long, value_name = "SCORE")]
    pub vad_threshold: Option<f32>,
    /// Network conditioner: drop this share of this client's datagrams, each way, in percent (testing).
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    pub loss: f64,
    /// Network conditioner: add this one-way latency to this client's datagrams, each way, ms (testing).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency_ms: u64,
    /// Network conditioner: normally distributed extra delay with this standard deviation, each way, ms (testing).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub jitter_ms: u64,
    /// Network conditioner: hold back this share of datagrams by 3 frames so later ones overtake them, percent.
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    pub reorder: f64,
    /// Connect to the control port over TLS, checking the server's certificate against the public (Mozilla) roots.
    #[arg(long)]
    pub tls: bool,
    /// Connect over TLS trusting only this PEM file's CA certificate(s), e.g. the server's self-signed one.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// With TLS: the name the server's certificate must carry (default: the host of --server).
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
}

/// Talk modes on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Talk {
    /// Push-to-talk: nothing is sent unless the talk key is down.
    Ptt,
    /// Voice activation.
    Vox,
    /// Always send (bots, tests).
    Continuous,
}

impl From<Talk> for TalkMode {
    fn from(t: Talk) -> Self {
        match t {
            Talk::Ptt => TalkMode::PushToTalk,
            Talk::Vox => TalkMode::VoiceActivation,
            Talk::Continuous => TalkMode::Continuous,
        }
    }
}

/// What a build without sound cards says, on the terminal UI's screen and on stderr when headless.
pub const NO_SOUND: &str = "no sound: this voice-client was built without sound card support (the `cpal` feature), so \
     the microphone is silent and nothing is played. To talk, build it with: cargo build --release -p voice-examples \
     --features cpal (needs libasound2-dev)";

/// [`NO_SOUND`] when it applies: a build without `cpal`, and no WAV files named.
#[must_use]
pub fn sound_note(args: &Args) -> Option<&'static str> {
    (!cfg!(feature = "cpal") && args.input.is_none() && args.output.is_none()).then_some(NO_SOUND)
}

/// Sound cards (feature `cpal`) unless WAV files are named; WAV files (or silence, see [`sound_note`]) otherwise.
fn audio_backend(args: &Args) -> Result<Box<dyn voice_client::AudioBackend>> {
    let files = args.input.is_some() || args.output.is_some();
    #[cfg(feature = "cpal")]
    if !files {
        let audio = voice_client::CpalAudio::new(args.input_device.as_deref(), args.output_device.as_deref())
            .context("opening the sound cards (--input/--output WAV files work without one)")?;
        return Ok(Box::new(audio));
    }
    let _ = files;
    if let Some(out) = &args.output {
        let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir.filter(|d| !d.is_dir()) {
            bail!("--output {}: there is no directory {}", out.display(), dir.display());
        }
    }
    let audio = FileAudio::new(args.input.clone(), args.output.clone()).with_context(|| match &args.input {
        Some(p) => format!("--input {}", p.display()),
        None => "audio files".into(),
    })?;
    Ok(Box::new(audio))
}

/// Prints the sound cards (`--list-devices`).
fn list_devices() -> Result<()> {
    #[cfg(feature = "cpal")]
    {
        let (inputs, outputs) = voice_client::device_names().context("listing sound cards")?;
        println!("inputs:  {}", inputs.join(", "));
        println!("outputs: {}", outputs.join(", "));
        Ok(())
    }
    #[cfg(not(feature = "cpal"))]
    bail!("built without the `cpal` feature (cargo build -p voice-examples --features cpal; needs libasound2-dev)")
}

/// Starts a [`Client`] for `user` on `server` with the audio backend and room of `args`.
fn connect(
    args: &Args,
    (server, host, tls): (SocketAddr, &str, Option<&BookmarkTls>),
    user: &str,
    credential: Credential,
    mode: TalkMode,
) -> Result<Client> {
    let mut session = SessionConfig::new(server, user, credential).with_talk_mode(mode);
    if let Some(room) = &args.room {
        session = session.with_room(room.clone());
    }
    let audio = audio_backend(args)?;
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seed = u64::from(std::process::id()) ^ u64::try_from(clock.as_nanos() & u128::from(u64::MAX)).unwrap_or(0);
    let media = media_config(args)?;
    let network = network_config(args)?;
    let tls = bookmark::control_tls(tls, host)?;
    let config = ClientConfig { session, media, audio, seed, tls };
    let client = Client::connect(config).context("starting the client")?;
    if let Some(network) = network {
        client.set_network(network).context("network conditioner")?;
    }
    Ok(client)
}

/// The audio processing the command line asks for.
fn media_config(args: &Args) -> Result<MediaConfig> {
    let mut media = MediaConfig::default();
    media.capture.echo_cancellation = args.echo_cancellation;
    media.capture.noise_suppression = args.noise_suppression;
    if let Some(t) = args.vad_threshold {
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            bail!("--vad-threshold must be between 0 and 1, not {t}");
        }
        media.vad.threshold = t;
    }
    Ok(media)
}

/// The network conditions the command line asks for (applied to this client's datagrams both ways); `None`
/// when it asks for none.
fn network_config(args: &Args) -> Result<Option<ConditionerConfig>> {
    for (flag, pct) in [("--loss", args.loss), ("--reorder", args.reorder)] {
        if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
            bail!("{flag} must be a percentage between 0 and 100, not {pct}");
        }
    }
    if args.loss == 0.0 && args.latency_ms == 0 && args.jitter_ms == 0 && args.reorder == 0.0 {
        return Ok(None);
    }
    Ok(Some(ConditionerConfig {
        loss: args.loss / 100.0,
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        reorder: args.reorder / 100.0,
        reorder_delay: Duration::from_millis(60),
    }))
}

/// Runs `voice-client` with `args`.
pub fn run(args: Args) -> Result<()> {
    if args.list_devices {
        return list_devices();
    }
    if !cfg!(feature = "cpal") && (args.input_device.is_some() || args.output_device.is_some()) {
        bail!("--input-device/--output-device need the `cpal` feature");
    }
    if !(args.give_up_after.is_finite() && args.give_up_after > 0.0) {
        bail!("--give-up-after must be a positive number of seconds, not {}", args.give_up_after);
    }
    let headless = args.headless || (!args.tui && (args.input.is_some() || args.output.is_some()));
    let default_mode = if headless && args.input.is_some() { Talk::Continuous } else { Talk::Ptt };
    let mode: TalkMode = args.talk.unwrap_or(default_mode).into();
    if !headless {
        return run_tui(&args, mode);
    }
    if let Some(note) = sound_note(&args) {
        eprintln!("voice-client: {note}");
    }
    let limit = args.seconds.map(Duration::try_from_secs_f64).transpose().context("--seconds")?;
    let give_up = Duration::try_from_secs_f64(args.give_up_after).context("--give-up-after")?;
    let r = bookmark::resolve(&args, Bookmarks::default_path().as_deref())?;
    let client = connect(&args, (r.server, &r.host, r.tls.as_ref()), &r.user, r.credential, mode)?;
    let reach = reach::Reach::new(Instant::now(), r.server, r.tls.is_some(), give_up);
    let result = headless::run(&client, limit, headless::Headless::new(reach, args.room.is_none()));
    let stats = client.stats();
    client.shutdown().context("stopping the client")?;
    println!(
        "stats sent={} speakers={} received={} lost={} concealed={} fec={}",
        stats.packets_sent,
        stats.speakers.len(),
        stats.speakers.iter().map(|s| s.packets).sum::<u64>(),
        stats.speakers.iter().map(|s| s.lost).sum::<u64>(),
        stats.speakers.iter().map(|s| s.concealed).sum::<u64>(),
        stats.speakers.iter().map(|s| s.fec_recovered).sum::<u64>(),
    );
    result
}

/// The terminal UI: the login screen lists the bookmarks and is filled from the command line; it connects at once
/// when the command line names a server (or bookmark) and a credential. `--save-bookmark` saves what it connects
/// with.
fn run_tui(args: &Args, mode: TalkMode) -> Result<()> {
    use crate::tui::login::{BookmarkRow, LoginForm};
    let saver = bookmark::Saver { path: Bookmarks::default_path() };
    let marks = match &saver.path {
        Some(p) if p.exists() => Bookmarks::load(p).with_context(|| format!("bookmarks {}", p.display()))?,
        _ => Bookmarks::default(),
    };
    let mut form = LoginForm {
        bookmarks: marks
            .entries
            .iter()
            .map(|b| BookmarkRow {
                name: b.name.clone(),
                server: format!("{}:{}", b.host, b.port),
                user: b.nickname.clone(),
                password: b.password.clone(),
                tls: b.tls.clone(),
            })
            .collect(),
        ..Default::default()
    };
    if let Some(i) = args.bookmark.as_ref().map(|n| form.bookmarks.iter().position(|b| &b.name == n)) {
        form.pick(i.with_context(|| format!("no bookmark named {:?}", args.bookmark))?);
    } else if !form.bookmarks.is_empty() {
        form.pick(0);
    }
    if let Some(s) = &args.server {
        form.server.clone_from(s);
    } else if form.server.is_empty() {
        form.server = "127.0.0.1:7000".into();
    }
    if let Some(u) = args.user.clone().or_else(|| (form.user.is_empty()).then(|| std::env::var("USER").ok()).flatten())
    {
        form.user = u;
    }
    if let Some(p) = &args.password {
        form.password.clone_from(p);
    }
    let auto =
        (args.server.is_some() || args.bookmark.is_some()) && (!form.password.is_empty() || args.token.is_some());
    let connect_form = |f: &LoginForm| -> Result<crate::tui::term::Started> {
        let (server, host) = bookmark::server_addr(&f.server)?;
        let credential = match (&args.token, f.password.is_empty()) {
            (Some(t), true) => Credential::Token(t.clone()),
            _ => Credential::Password(f.password.clone()),
        };
        let tls = bookmark::form_tls(args, f)?;
        let client = connect(args, (server, &host, tls.as_ref()), &f.user, credential, mode)?;
        let note = saver.on_connect(args, f).unwrap_or_else(|e| Some(format!("bookmark not saved: {e:#}")));
        Ok(crate::tui::term::Started { client, server, tls: tls.is_some(), note })
    };
    let save = |f: &LoginForm| saver.save_form(args, f);
    let start = crate::tui::term::Start { form, auto, mode, notice: sound_note(args) };
    crate::tui::term::run(start, &connect_form, &save)
}

/// Carries out one UI command on the client.
pub(crate) fn apply(client: &Client, cmd: &crate::tui::Command) -> Result<()> {
    use crate::tui::Command as C;
    match cmd {
        C::Connect | C::SaveBookmark | C::Quit => {}
        C::Join(room) => client.join(room, None)?,
        C::Leave => client.leave()?,
        C::Chat(text) => client.send_chat(text)?,
        C::Talk(down) => client.set_ptt(*down)?,
        C::Mode(m) => client.set_talk_mode(match m {
            crate::tui::TalkMode::PushToTalk => TalkMode::PushToTalk,
            crate::tui::TalkMode::VoiceActivation => TalkMode::VoiceActivation,
        })?,
        C::Mute(m) => client.set_muted(*m)?,
        C::Deafen(d) => client.set_deafened(*d)?,
        C::Volume { id, volume } => client.set_volume(PublicId(*id), *volume)?,
        C::Whisper(ids) => {
            if ids.is_empty() {
                client.select_whisper_target(WhisperTarget::ROOM)?;
            } else {
                let ids: Vec<PublicId> = ids.iter().map(|i| PublicId(*i)).collect();
                client.set_whisper(WhisperTarget(1), &ids)?;
                client.select_whisper_target(WhisperTarget(1))?;
            }
        }
        C::Network(n) => client.set_network(ConditionerConfig {
            loss: f64::from(n.loss_pct) / 100.0,
            latency: Duration::from_millis(u64::from(n.latency_ms)),
            jitter: Duration::from_millis(u64::from(n.jitter_ms)),
            ..ConditionerConfig::default()
        })?,
        C::Dump(on) => client.set_dump(on.then(|| PathBuf::from(DUMP_DIR)))?,
    }
    Ok(())
}

/// `voice-client` with the arguments `line` (for tests).
#[cfg(test)]
fn test_args(line: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("voice-client").chain(line.iter().copied())).expect("valid arguments")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Args {
        test_args(line)
    }

    #[test]
    fn audio_and_network_switches_reach_the_configs() {
        let a = args(&["--noise-suppression", "--vad-threshold", "0.3", "--loss", "5", "--jitter-ms", "20"]);
        let media = media_config(&a).unwrap();
        assert!(media.capture.noise_suppression);
        assert!((media.vad.threshold - 0.3).abs() < 1e-6);
        let net = network_config(&a).unwrap().expect("conditions asked for");
        assert!((net.loss - 0.05).abs() < 1e-9);
        assert_eq!(net.jitter, Duration::from_millis(20));
        assert_eq!(network_config(&args(&[])).unwrap(), None, "a clean network unless asked");
        assert!(media_config(&args(&["--vad-threshold", "1.5"])).is_err());
        assert!(network_config(&args(&["--loss", "150"])).is_err());
    }

    /// A WAV file that cannot be used is named in the error.
    #[test]
    fn a_missing_wav_file_is_named() {
        let e = audio_backend(&args(&["--input", "/nonexistent/speech.wav"])).expect_err("refused");
        assert!(format!("{e:#}").contains("--input /nonexistent/speech.wav"), "{e:#}");
        let e = audio_backend(&args(&["--output", "/nonexistent/dir/heard.wav"])).expect_err("refused");
        assert!(format!("{e:#}").contains("/nonexistent/dir/heard.wav"), "{e:#}");
        assert!(audio_backend(&args(&["--output", "heard.wav"])).is_ok(), "the working directory exists");
    }

    /// A build without sound cards says so, and how to build with sound (the terminal UI shows it on screen).
    #[test]
    fn a_build_without_sound_says_how_to_get_it() {
        let note = sound_note(&args(&[]));
        assert_eq!(note.is_some(), !cfg!(feature = "cpal"));
        assert!(NO_SOUND.contains("--features cpal"));
        assert_eq!(sound_note(&args(&["--input", "x.wav"])), None, "WAV files need no sound card");
    }
}
