//! `voice-server`: the voice relay (UDP audio) and its control server (TCP), with metrics and health over HTTP —
//! [`voice_server::Server`] around the relay core and drivers of `voice-relay` — configured from a TOML file.
//!
//! ```text
//! voice-server [--config FILE]        # or ARS_CONFIG_PATH=FILE; without either, every option has its default
//! voice-server hash-password          # reads a password on stdin, prints the argon2id hash for the config's users
//! voice-server gen-cert HOSTNAME…     # writes cert.pem and key.pem: a self-signed certificate for development
//! ```
//!
//! It prints where it listens, serves Prometheus metrics and health over HTTP when the config names a metrics
//! address, and shuts down gracefully on Ctrl-C or SIGTERM: every client gets a Goodbye (`SHUTTING_DOWN`) before
//! the sockets close. SIGHUP reloads the config file (users, rooms, limits) without dropping a session. Logs go to stderr (`RUST_LOG` filters them; default `info`). Errors are printed as sentences
//! and the exit status is 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use voice_relay::driver::ShutdownHandle;
use voice_relay::{Relay, SystemRng};
use voice_server::{CONFIG_PATH_ENV, Config, ConfigError, Server, config_path_from};

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voice-server: {}", sentence(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes as one line, each cause once: errors that print their cause themselves are not
/// followed by it again.
fn sentence(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain().map(ToString::to_string) {
        if out.contains(&cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out
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
    /// Writes a self-signed TLS certificate and its key for development or a first deployment: clients trust it
    /// with `--ca-cert CERT`. On the internet, prefer a certificate from a public CA.
    GenCert(GenCert),
}

/// `voice-server gen-cert`.
#[derive(Debug, clap::Args)]
struct GenCert {
    /// Host names and IP addresses clients use to reach the server (e.g. `voice.example.com 192.0.2.7`).
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,
    /// Where to write the certificate (PEM).
    #[arg(long, value_name = "FILE", default_value = "cert.pem")]
    cert: PathBuf,
    /// Where to write the private key (PEM; readable by its owner only).
    #[arg(long, value_name = "FILE", default_value = "key.pem")]
    key: PathBuf,
    /// Days the certificate is valid (1–3650).
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

/// Runs `voice-server` with `args` until Ctrl-C or SIGTERM.
fn run(args: Args) -> Result<()> {
    match args.command {
        Some(Command::HashPassword) => return hash_password(),
        Some(Command::GenCert(g)) => return gen_cert(&g),
        None => {}
    }
    let path = config_path_from(args.config, std::env::var_os(CONFIG_PATH_ENV));
    let config = match &path {
        Some(p) => Config::from_path(p).map_err(|e| match e {
            // These name the file already.
            e @ (ConfigError::Read { .. } | ConfigError::TooLarge { .. }) => anyhow::Error::new(e),
            e => anyhow::Error::new(e).context(format!("config file {}", p.display())),
        })?,
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
        println!("  metrics (HTTP) http://{m}/metrics  (health: http://{m}/healthz)");
    }
    let signals = Signals::install().context("listening for Ctrl-C, SIGTERM and SIGHUP")?;
    println!("ready (Ctrl-C or SIGTERM stops; SIGHUP reloads the config file)");
    let (stop, reload) = (server.shutdown_handle(), server.reload_handle());
    let running = server.spawn().context("starting the relay thread")?;
    signals.wait(&stop, &running, &|| reload_config(path.as_deref(), &reload))?;
    tracing::info!("shutting down: telling clients");
    let relay = running.join().map_err(|_| anyhow::anyhow!("relay thread panicked"))?.context("relay")?;
    let c = relay.counters();
    println!("stopped: {} audio packets forwarded, {} datagrams dropped", c.audio_forwarded, c.dropped_total());
    Ok(())
}

/// Ctrl-C and SIGTERM, listened for from before the server says it is ready: a signal right after "ready" stops
/// it gracefully instead of killing it.
struct Signals {
    rt: tokio::runtime::Runtime,
    /// SIGINT, SIGTERM and SIGHUP.
    #[cfg(unix)]
    unix: (tokio::signal::unix::Signal, tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

/// SIGHUP: reads the config file again and applies it without dropping a session ([`Config::reload`]); a file
/// that does not load or apply changes nothing and is reported.
async fn reload_config(path: Option<&std::path::Path>, reload: &voice_relay::driver::ReloadHandle) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: no config file to reload (--config or {CONFIG_PATH_ENV})");
        return;
    };
    let loaded = Config::from_path(path);
    let applied = match loaded {
        Ok(config) => config.reload(reload).await.map(|()| config),
        Err(e) => Err(e),
    };
    match applied {
        Ok(config) => {
            tracing::info!("SIGHUP: {} reloaded", path.display());
            println!("reloaded {}: {} users, {} rooms", path.display(), config.users.len(), config.rooms.len());
        }
        Err(e) => tracing::error!("SIGHUP: {} not reloaded, the running configuration stays: {e}", path.display()),
    }
}

impl Signals {
    fn install() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        #[cfg(unix)]
        let unix = {
            use tokio::signal::unix::{SignalKind, signal};
            let _runtime = rt.enter();
            (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?, signal(SignalKind::hangup())?)
        };
        Ok(Self {
            rt,
            #[cfg(unix)]
            unix,
        })
    }

    /// Blocks until Ctrl-C / SIGTERM (then asks the relay to shut down) or until the relay thread ends by itself;
    /// runs `reload` on each SIGHUP.
    fn wait<F: std::future::Future<Output = ()>>(
        self,
        stop: &ShutdownHandle,
        running: &std::thread::JoinHandle<Result<Relay, voice_server::Error>>,
        reload: &dyn Fn() -> F,
    ) -> Result<()> {
        #[cfg(unix)]
        let (rt, (mut int, mut term, mut hup)) = (self.rt, self.unix);
        #[cfg(not(unix))]
        let rt = self.rt;
        rt.block_on(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
            loop {
                #[cfg(unix)]
                let (int_recv, term_recv, hup_recv) = (int.recv(), term.recv(), hup.recv());
                #[cfg(not(unix))]
                let (int_recv, term_recv, hup_recv) = (
                    async { tokio::signal::ctrl_c().await.ok() },
                    std::future::pending::<Option<()>>(),
                    std::future::pending::<Option<()>>(),
                );
                tokio::select! {
                    _ = int_recv => { tracing::info!("Ctrl-C"); break; }
                    _ = term_recv => { tracing::info!("SIGTERM"); break; }
                    Some(()) = hup_recv => reload().await,
                    _ = tick.tick() => if running.is_finished() { break; },
                }
            }
            stop.shutdown();
        });
        Ok(())
    }
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

/// `voice-server gen-cert`: a self-signed certificate and key, written where asked, and how to use them.
fn gen_cert(g: &GenCert) -> Result<()> {
    #[allow(clippy::disallowed_methods, reason = "the program dates the certificate: one read of the clock")]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let made = voice_server::tls::self_signed(&g.names, g.days, now)?;
    write_new(&g.cert, &made.cert_pem, g.force, 0o644)?;
    write_new(&g.key, &made.key_pem, g.force, 0o600)?;
    let (cert, key) = (g.cert.display(), g.key.display());
    println!("wrote {cert}: a self-signed certificate for {} (valid until {})", g.names.join(", "), made.not_after);
    println!("wrote {key}: its private key (keep it secret)");
    println!("server config:  [tls]  cert = {:?}  key = {:?}", cert.to_string(), key.to_string());
    let host = g.names.first().map_or("HOSTNAME", String::as_str);
    println!("clients:        voice-client --ca-cert {cert} --server {host}:7000 …");
    Ok(())
}

/// Writes `text` to a new file at `path` (`force`: or over an existing one) with Unix permissions `mode`.
fn write_new(path: &std::path::Path, text: &str, force: bool, mode: u32) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!("{} exists already (--force replaces it)", path.display())
        }
        _ => anyhow::Error::new(e).context(format!("cannot write {}", path.display())),
    })?;
    // An existing file keeps its permissions when truncated: set them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    }
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
