//! The `voice-client` binary's glue: command line and bookmarks → [`voice_client::Client`], then either the terminal
//! UI ([`crate::tui`]) or a headless loop that prints events as lines and takes commands on stdin.

use std::io::BufRead;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use voice_client::{
    Bookmark, BookmarkTls, Bookmarks, Client, ClientConfig, ConditionerConfig, ControlTls, Event, FileAudio,
    MediaConfig, SessionConfig, TalkMode,
};
use voice_proto::control::Credential;
use voice_proto::{PublicId, WhisperTarget};

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

/// What `Args` resolve to, bookmarks applied.
struct Resolved {
    server: SocketAddr,
    /// The host part of the server address as given (the default TLS server name).
    host: String,
    /// TLS settings: the command line's, else the bookmark's.
    tls: Option<BookmarkTls>,
    user: String,
    credential: Credential,
}

fn resolve(args: &Args) -> Result<Resolved> {
    let path = Bookmarks::default_path();
    let bookmark = match (&args.bookmark, &path) {
        (Some(name), Some(p)) => {
            let marks = Bookmarks::load(p).with_context(|| format!("bookmarks {}", p.display()))?;
            Some(marks.get(name).cloned().with_context(|| format!("no bookmark named {name:?} in {}", p.display()))?)
        }
        (Some(_), None) => bail!("no config directory for bookmarks on this system"),
        (None, _) => None,
    };
    let server_text = match (&args.server, &bookmark) {
        (Some(s), _) => s.clone(),
        (None, Some(b)) => format!("{}:{}", b.host, b.port),
        (None, None) => "127.0.0.1:7000".into(),
    };
    let (server, host) = server_addr(&server_text)?;
    let tls = tls_settings(args, bookmark.as_ref().and_then(|b| b.tls.clone()))?;
    let user = args
        .user
        .clone()
        .or_else(|| bookmark.as_ref().map(|b| b.nickname.clone()))
        .or_else(|| std::env::var("USER").ok())
        .context("no user name: give --user")?;
    let credential = match (&args.token, &args.password, bookmark.as_ref().and_then(|b| b.password.clone())) {
        (Some(t), _, _) => Credential::Token(t.clone()),
        (None, Some(p), _) => Credential::Password(p.clone()),
        (None, None, Some(p)) => Credential::Password(p),
        (None, None, None) => bail!("no credential: give --password (or VOICE_PASSWORD) or --token"),
    };
    if let (Some(name), Some(p)) = (&args.save_bookmark, &path) {
        let mut marks = if p.exists() { Bookmarks::load(p)? } else { Bookmarks::default() };
        let (host, port) = server_text.rsplit_once(':').context("server as HOST:PORT")?;
        let mut mark = Bookmark::new(name.clone(), host, port.parse().context("server port")?, user.clone());
        mark.tls.clone_from(&tls);
        if let (true, Credential::Password(pw)) = (args.save_password, &credential) {
            mark = mark.with_password(pw.clone());
        }
        marks.upsert(mark);
        marks.save(p).with_context(|| format!("saving bookmarks to {}", p.display()))?;
        eprintln!("bookmark {name:?} saved in {}", p.display());
    }
    Ok(Resolved { server, host, user, credential, tls })
}

/// Resolves `HOST:PORT` to its first address; also returns the host as given (brackets of an IPv6 literal
/// removed), the default name for TLS.
fn server_addr(text: &str) -> Result<(SocketAddr, String)> {
    let server = text
        .to_socket_addrs()
        .with_context(|| format!("server address {text:?}"))?
        .next()
        .with_context(|| format!("{text:?} resolves to no address"))?;
    let host = text.rsplit_once(':').map_or(text, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    Ok((server, host.to_string()))
}

/// The TLS settings to use (`None`: plain TCP): the command line's (`--tls`, `--ca-cert`; the CA path made
/// absolute, so a saved bookmark works from any directory), else `saved` (a bookmark's), with `--tls-name`
/// applied either way. `--tls-name` alone is an error rather than silently ignored.
fn tls_settings(args: &Args, saved: Option<BookmarkTls>) -> Result<Option<BookmarkTls>> {
    let tls = if args.tls || args.ca_cert.is_some() {
        let ca_cert = args.ca_cert.as_deref().map(std::path::absolute).transpose().context("--ca-cert")?;
        Some(BookmarkTls { ca_cert, name: None })
    } else {
        saved
    };
    let Some(mut tls) = tls else {
        if args.tls_name.is_some() {
            bail!("--tls-name needs --tls, --ca-cert or a bookmark saved with TLS");
        }
        return Ok(None);
    };
    if args.tls_name.is_some() {
        tls.name.clone_from(&args.tls_name);
    }
    Ok(Some(tls))
}

/// The TLS settings for what the login form shows: [`tls_settings`] with the highlighted bookmark's, if the form
/// still shows its server.
fn form_tls(args: &Args, f: &crate::tui::login::LoginForm) -> Result<Option<BookmarkTls>> {
    let saved = f.bookmarks.get(f.cursor).filter(|b| b.server == f.server).and_then(|b| b.tls.clone());
    tls_settings(args, saved)
}

/// The client side of `tls` (`None`: plain TCP): the certificate must carry `tls.name`, else `host`; it is checked
/// against `tls.ca_cert` if set, else the public roots.
fn control_tls(tls: Option<&BookmarkTls>, host: &str) -> Result<Option<ControlTls>> {
    let Some(tls) = tls else { return Ok(None) };
    let name = tls.name.as_deref().unwrap_or(host);
    Ok(Some(match &tls.ca_cert {
        Some(ca) => ControlTls::with_ca_file(name, ca)?,
        None => ControlTls::public_roots(name)?,
    }))
}

/// Sound cards (feature `cpal`) unless WAV files are named; WAV files (or silence) otherwise.
fn audio_backend(args: &Args) -> Result<Box<dyn voice_client::AudioBackend>> {
    let files = args.input.is_some() || args.output.is_some();
    #[cfg(feature = "cpal")]
    if !files {
        let audio = voice_client::CpalAudio::new(args.input_device.as_deref(), args.output_device.as_deref())
            .context("opening the sound cards (--input/--output WAV files work without one)")?;
        return Ok(Box::new(audio));
    }
    if !files {
        eprintln!("voice-client: built without the `cpal` feature: no sound card; silent microphone, nothing played");
    }
    Ok(Box::new(FileAudio::new(args.input.clone(), args.output.clone()).context("audio files")?))
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
    let tls = control_tls(tls, host)?;
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
    let headless = args.headless || (!args.tui && (args.input.is_some() || args.output.is_some()));
    let default_mode = if headless && args.input.is_some() { Talk::Continuous } else { Talk::Ptt };
    let mode: TalkMode = args.talk.unwrap_or(default_mode).into();
    if !headless {
        return run_tui(&args, mode);
    }
    let limit = args.seconds.map(Duration::try_from_secs_f64).transpose().context("--seconds")?;
    let r = resolve(&args)?;
    let client = connect(&args, (r.server, &r.host, r.tls.as_ref()), &r.user, r.credential, mode)?;
    let result = headless_loop(&client, limit, args.room.is_none());
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
/// when the command line names a server (or bookmark) and a credential.
fn run_tui(args: &Args, mode: TalkMode) -> Result<()> {
    let path = Bookmarks::default_path();
    let marks = match &path {
        Some(p) if p.exists() => Bookmarks::load(p).with_context(|| format!("bookmarks {}", p.display()))?,
        _ => Bookmarks::default(),
    };
    let mut form = crate::tui::login::LoginForm {
        bookmarks: marks
            .entries
            .iter()
            .map(|b| crate::tui::login::BookmarkRow {
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
    let connect_form = |f: &crate::tui::login::LoginForm| -> Result<Client> {
        let (server, host) = server_addr(&f.server)?;
        let credential = match (&args.token, f.password.is_empty()) {
            (Some(t), true) => Credential::Token(t.clone()),
            _ => Credential::Password(f.password.clone()),
        };
        let tls = form_tls(args, f)?;
        connect(args, (server, &host, tls.as_ref()), &f.user, credential, mode)
    };
    let save = |f: &crate::tui::login::LoginForm| -> Result<String> {
        let p = path.as_ref().context("no config directory for bookmarks on this system")?;
        let mut marks = if p.exists() { Bookmarks::load(p)? } else { Bookmarks::default() };
        let (host, port) = f.server.rsplit_once(':').context("server as HOST:PORT")?;
        let mut mark = Bookmark::new(host, host, port.parse().context("server port")?, f.user.clone());
        mark.tls = form_tls(args, f)?;
        marks.upsert(mark);
        marks.save(p).with_context(|| format!("saving bookmarks to {}", p.display()))?;
        Ok(format!("bookmark {host:?} saved in {}", p.display()))
    };
    crate::tui::term::run(form, auto, mode, &connect_form, &save)
}

/// Lines on stdin, read on their own thread (a closed stdin just ends the stream).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Headless: one line per event on stdout (`joined`, `member-joined`, `chat`, …); commands on stdin.
fn headless_loop(client: &Client, limit: Option<Duration>, join_first_room: bool) -> Result<()> {
    let start = Instant::now();
    let lines = stdin_lines();
    let mut names = std::collections::HashMap::<PublicId, String>::new();
    let mut joined = false;
    loop {
        if limit.is_some_and(|l| start.elapsed() >= l) {
            return Ok(());
        }
        while let Ok(line) = lines.try_recv() {
            if !headless_command(client, line.trim())? {
                return Ok(());
            }
        }
        let Some(event) = client.next_event(Duration::from_millis(20)) else { continue };
        match event {
            Event::LoggedIn { public_id, server_name } => println!("logged-in id={} server={server_name}", public_id.0),
            Event::RoomList(rooms) => {
                let list: Vec<_> = rooms.iter().map(|r| format!("{}({})", r.name, r.members)).collect();
                println!("rooms {}", list.join(" "));
                if join_first_room && !joined {
                    if let Some(first) = rooms.first() {
                        client.join(&first.name, None)?;
                    }
                }
            }
            Event::Joined { room, members, .. } => {
                joined = true;
                for m in &members {
                    names.insert(m.id, m.name.clone());
                }
                let list: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
                println!("joined {room} members={}", list.join(","));
            }
            Event::MediaReady => println!("media-ready"),
            Event::Left => println!("left"),
            Event::MemberJoined(m) => {
                println!("member-joined {}", m.name);
                names.insert(m.id, m.name);
            }
            Event::MemberLeft(id) => {
                println!("member-left {}", names.remove(&id).unwrap_or_else(|| id.0.to_string()));
            }
            Event::MemberUpdated(m) => println!("member-updated {} muted={} deafened={}", m.name, m.muted, m.deafened),
            Event::Speaking { id, speaking } => {
                let name = names.get(&id).map_or_else(|| id.0.to_string(), Clone::clone);
                println!("speaking {name} {}", if speaking { "on" } else { "off" });
            }
            Event::Chat { from_name, text, history, .. } => {
                println!("chat{} {from_name}: {text}", if history { "-history" } else { "" });
            }
            Event::ServerError { code, message } => println!("error {} {message}", code.0),
            Event::RequestRefused(why) => println!("refused {why}"),
            Event::ConnectionLost => println!("connection-lost"),
            Event::ConnectFailed(why) => println!("connect-failed {why}"),
            Event::Resumed => println!("resumed"),
            Event::Closed { reason } => {
                println!("closed {}", reason.map_or_else(String::new, |(c, m)| format!("{} {m}", c.0)));
                return Ok(());
            }
            _ => {}
        }
    }
}

/// One stdin command; `false` to quit. Plain text is sent as chat.
fn headless_command(client: &Client, line: &str) -> Result<bool> {
    let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
    match cmd {
        "" => {}
        "/quit" => return Ok(false),
        "/chat" => client.send_chat(rest)?,
        "/mute" => client.set_muted(true)?,
        "/unmute" => client.set_muted(false)?,
        "/deafen" => client.set_deafened(true)?,
        "/undeafen" => client.set_deafened(false)?,
        "/talk" => client.set_ptt(true)?,
        "/stop" => client.set_ptt(false)?,
        "/join" => client.join(rest, None)?,
        "/leave" => client.leave()?,
        _ if cmd.starts_with('/') => println!("error unknown command {cmd}"),
        _ => client.send_chat(line)?,
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("voice-client").chain(line.iter().copied())).expect("valid arguments")
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

    #[test]
    fn tls_settings_merge_the_command_line_and_the_bookmark() {
        assert_eq!(tls_settings(&args(&[]), None).unwrap(), None, "plain TCP by default");
        assert!(tls_settings(&args(&["--tls-name", "x"]), None).is_err(), "--tls-name alone is refused");
        let saved = BookmarkTls { ca_cert: Some("/etc/ca.pem".into()), name: Some("old".into()) };
        let renamed = tls_settings(&args(&["--tls-name", "new"]), Some(saved.clone())).unwrap().unwrap();
        assert_eq!((renamed.ca_cert, renamed.name.as_deref()), (saved.ca_cert.clone(), Some("new")));
        assert_eq!(tls_settings(&args(&[]), Some(saved.clone())).unwrap(), Some(saved.clone()), "the bookmark's");
        let public = tls_settings(&args(&["--tls"]), Some(saved)).unwrap().unwrap();
        assert_eq!(public, BookmarkTls::default(), "the command line wins: public roots, the host's name");
        let ca = tls_settings(&args(&["--ca-cert", "rel/ca.pem"]), None).unwrap().unwrap();
        assert!(ca.ca_cert.is_some_and(|p| p.is_absolute() && p.ends_with("rel/ca.pem")), "saved absolute");
    }
}
