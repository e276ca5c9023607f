//! The `voice-server` binary's glue: config → relay → driver → signals. Everything it runs lives in `voice-relay`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use voice_relay::driver::{Server, ShutdownHandle};
use voice_relay::{Authenticator, MemoryAuthenticator, Relay, RelayConfig, SystemRng};

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

/// What the server needs from its configuration.
struct Settings {
    relay: RelayConfig,
    udp: SocketAddr,
    tcp: SocketAddr,
    metrics: Option<SocketAddr>,
    auth: Box<dyn Authenticator + Send>,
}

fn settings(_path: Option<PathBuf>) -> Result<Settings> {
    Ok(Settings {
        relay: RelayConfig::default(),
        udp: "0.0.0.0:7001".parse()?,
        tcp: "0.0.0.0:7000".parse()?,
        metrics: None,
        auth: Box::new(MemoryAuthenticator::new()),
    })
}

/// Runs `voice-server` with `args` until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> Result<()> {
    if let Some(Command::HashPassword) = args.command {
        anyhow::bail!("hash-password is not available yet");
    }
    let s = settings(args.config)?;
    let unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let relay = Relay::new(s.relay, s.auth, Box::new(SystemRng::new()), Instant::now(), u64::try_from(unix_ms)?)
        .context("relay settings")?;
    let server = Server::bind(relay, s.udp, s.tcp).context("binding the sockets")?;
    println!("voice-server {} listening", env!("CARGO_PKG_VERSION"));
    println!("  control (TCP)  {}", server.tcp_addr());
    println!("  audio (UDP)    {}", server.udp_addr());
    if let Some(m) = s.metrics {
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
