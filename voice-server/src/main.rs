//! `voice-server`: the voice relay (UDP audio) and its control server (TCP), with metrics and health over HTTP —
//! [`voice_server::Server`] around the relay core and drivers of `voice-relay` — configured from a TOML file.
//!
//! ```text
//! voice-server [--config FILE]        # or ARS_CONFIG_PATH=FILE; without either, every option has its default
//! voice-server hash-password          # reads a password on stdin, prints the argon2id hash for the config's users
//! ```
//!
//! It prints where it listens, serves Prometheus metrics and health over HTTP when the config names a metrics
//! address, and shuts down gracefully on Ctrl-C or SIGTERM: every client gets a Goodbye (`SHUTTING_DOWN`) before
//! the sockets close. Logs go to stderr (`RUST_LOG` filters them; default `info`). Errors are printed as sentences
//! and the exit status is 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use voice_relay::driver::ShutdownHandle;
use voice_relay::{Relay, SystemRng};
use voice_server::{CONFIG_PATH_ENV, Config, Server, config_path_from};

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voice-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr with `tracing`; `RUST_LOG` filters (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// Command line of `voice-server`.
#[derive(Debug, Parser)]
#[command(name = "voice-server", version, about = "Voice relay (UDP) and control server (TCP)")]
struct Args {
    /// TOML config file (every option has a default). Falls back to the `ARS_CONFIG_PATH` environment variable.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// What to do instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands of `voice-server`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Reads a password on stdin and prints its argon2id hash, for the `users` table of the config.
    HashPassword,
}

/// Runs `voice-server` with `args` until Ctrl-C or SIGTERM.
fn run(args: Args) -> Result<()> {
    if let Some(Command::HashPassword) = args.command {
        return hash_password();
    }
    let path = config_path_from(args.config, std::env::var_os(CONFIG_PATH_ENV));
    let config = match &path {
        Some(p) => Config::from_path(p).with_context(|| format!("config file {}", p.display()))?,
        None => Config::default(),
    };
    match &path {
        Some(p) => tracing::info!("config: {}", p.display()),
        None => tracing::info!("no config file (--config or {CONFIG_PATH_ENV}): every option at its default"),
    }
    if config.users.is_empty() && config.auth.jwt.is_none() {
        tracing::warn!("no [[users]] and no [auth.jwt] in the config: nobody can log in");
    }
    let server = Server::from_config(&config).context("starting the server")?;
    println!("voice-server {} listening", env!("CARGO_PKG_VERSION"));
    println!("  control (TCP)  {}", server.tcp_addr());
    match &config.tls.cert {
        Some(cert) => println!("  control TLS    certificate {}", cert.display()),
        None => tracing::warn!("no [tls] in the config: control connections (passwords, chat) are not encrypted"),
    }
    println!("  audio (UDP)    {}", server.udp_addr());
    if let Some(m) = server.metrics_addr() {
        println!("  metrics (HTTP) http://{m}/metrics  (health: http://{m}/health)");
    }
    println!("ready (Ctrl-C or SIGTERM stops)");
    let stop = server.shutdown_handle();
    let running = server.spawn().context("starting the relay thread")?;
    wait_for_signal(&stop, &running)?;
    tracing::info!("shutting down: telling clients");
    let relay = running.join().map_err(|_| anyhow::anyhow!("relay thread panicked"))?.context("relay")?;
    let c = relay.counters();
    println!("stopped: {} audio packets forwarded, {} datagrams dropped", c.audio_forwarded, c.dropped_total());
    Ok(())
}

/// Blocks until Ctrl-C / SIGTERM (then asks the relay to shut down) or until the relay thread ends by itself.
fn wait_for_signal(
    stop: &ShutdownHandle,
    running: &std::thread::JoinHandle<Result<Relay, voice_server::Error>>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            #[cfg(unix)]
            let term_recv = term.recv();
            #[cfg(not(unix))]
            let term_recv = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => { tracing::info!("Ctrl-C"); break; }
                _ = term_recv => { tracing::info!("SIGTERM"); break; }
                _ = tick.tick() => if running.is_finished() { break; },
            }
        }
        stop.shutdown();
        Ok::<_, anyhow::Error>(())
    })
}

/// `voice-server hash-password`: one line of stdin → an argon2id PHC string on stdout.
fn hash_password() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!password.is_empty(), "empty password (give it on stdin)");
    let hash = voice_server::hash_password(password, &mut SystemRng::new())?;
    println!("{hash}");
    Ok(())
}
