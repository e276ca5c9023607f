//! The `voice-server` binary's glue: config → relay → driver → signals. Everything it runs lives in `voice-relay`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use voice_relay::config::{CONFIG_PATH_ENV, Config, config_path_from};
use voice_relay::driver::{Server, ShutdownHandle};
use voice_relay::{Relay, SystemRng};

/// Command line of `voice-server`.
#[derive(Debug, Parser)]
#[command(name = "voice-server", version, about = "Voice relay (UDP) and control server (TCP)")]
pub struct Args {
    /// TOML config file (every option has a default). Falls back to the `ARS_CONFIG_PATH` environment variable.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands of `voice-server`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reads a password on stdin and prints its argon2id hash, for the `users` table of the config.
    HashPassword,
}

/// Runs `voice-server` with `args` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> Result<()> {
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
    let server = Server::from_config(&config).context("starting the relay")?;
    println!("voice-server {} listening", env!("CARGO_PKG_VERSION"));
    println!("  control (TCP)  {}", server.tcp_addr());
    match &config.tls.cert {
        Some(cert) => println!("  control TLS    certificate {}", cert.display()),
        None => tracing::warn!("no [tls] in the config: control connections (passwords, chat) are not encrypted"),
    }
    println!("  audio (UDP)    {}", server.udp_addr());
    if let Some(m) = server.metrics_addr() {
        println!("  metrics (HTTP) http://{m}/metrics");
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
    running: &std::thread::JoinHandle<Result<Relay, voice_relay::DriverError>>,
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
    let hash = voice_relay::config::hash_password(password, &mut SystemRng::new())?;
    println!("{hash}");
    Ok(())
}
