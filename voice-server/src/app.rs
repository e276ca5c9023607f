//! The composition: a [`Config`] becomes the relay core, its tokio driver with the configured authenticator and
//! TLS, and the HTTP endpoint ([`Server`]).

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use voice_relay::driver::{self, IdlePoll, MetricsHandle, ReloadHandle, ShutdownHandle};
use voice_relay::{DriverError, Relay, SystemRng};

use crate::config::Config;
use crate::error::Error;
use crate::http;

/// The whole server, bound and ready to [`run`](Self::run): the relay ([`Config::relay_config`]) on the tokio
/// driver with the configuration's authenticator ([`Config::authenticator`]; password checks on the driver's
/// bounded verification pool, tokens inline), the system random source, the idle poll and UDP threads of `[listen]`,
/// TLS if `[tls]` names a certificate, and the HTTP endpoint ([`crate::http`]) if `metrics_enabled`.
#[derive(Debug)]
pub struct Server {
    driver: driver::Server,
    http: Option<(std::net::TcpListener, SocketAddr)>,
}

impl Server {
    /// Binds everything `config` describes (port 0 picks a free port; see [`tcp_addr`](Self::tcp_addr) and the
    /// others). Reads the clock once, for the relay's chat timestamps.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        let l = &config.listen;
        let authenticator = config.authenticator()?;
        #[allow(clippy::disallowed_methods, reason = "the program gives the relay its epoch: one read of each clock")]
        let (now, unix_ms) = (Instant::now(), unix_ms(SystemTime::now()));
        let relay = Relay::new(config.relay_config(), Box::new(SystemRng::new()), now, unix_ms)?;
        let idle = (l.idle_poll_ms > 0)
            .then(|| IdlePoll { period: Duration::from_millis(l.idle_poll_ms), ..IdlePoll::default() });
        let limits = &config.limits;
        let mut server = driver::Server::bind(relay, authenticator, l.udp, l.control)
            .and_then(|s| s.with_idle_poll(idle).with_udp_threads(l.udp_threads))
            .map_err(|e| bind_error(e, config))?
            .with_conn_limits(limits.conn_limits())
            .with_auth_pool(limits.auth_pool())
            .with_login_backoff(limits.login_backoff());
        if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
            server = server.with_tls(driver::server_config_from_pem(cert, key)?);
            for problem in crate::tls::certificate_problems(cert, unix_ms / 1000) {
                tracing::warn!("{problem}");
            }
        }
        let http = if l.metrics_enabled {
            let listener = std::net::TcpListener::bind(l.metrics).map_err(|source| Error::Bind {
                what: "metrics (HTTP)",
                addr: l.metrics,
                source,
            })?;
            let setup = |source| Error::Metrics { addr: l.metrics, source };
            listener.set_nonblocking(true).map_err(setup)?;
            let local = listener.local_addr().map_err(setup)?;
            Some((listener, local))
        } else {
            None
        };
        Ok(Self { driver: server, http })
    }

    /// The bound UDP (audio) address.
    #[must_use]
    pub fn udp_addr(&self) -> SocketAddr {
        self.driver.udp_addr()
    }

    /// The bound TCP (control) address.
    #[must_use]
    pub fn tcp_addr(&self) -> SocketAddr {
        self.driver.tcp_addr()
    }

    /// The bound HTTP (metrics and health) address, if enabled.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(|h| h.1)
    }

    /// A handle that shuts the server down gracefully (clients get Goodbye `SHUTTING_DOWN`).
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.driver.shutdown_handle()
    }

    /// A handle that applies a new configuration to the running server without dropping a session (what
    /// `voice-server` does on SIGHUP: [`Config::reload`]).
    #[must_use]
    pub fn reload_handle(&self) -> ReloadHandle {
        self.driver.reload_handle()
    }

    /// A handle that takes snapshots of the running relay's counters (what `GET /metrics` serves).
    #[must_use]
    pub fn metrics_handle(&self) -> MetricsHandle {
        self.driver.metrics_handle()
    }

    /// Runs until shut down; returns the relay (e.g. for its counters). The HTTP endpoint runs as a task on the
    /// same runtime and ends with the relay.
    pub async fn run(self) -> Result<Relay, Error> {
        let http = match self.http {
            Some((listener, addr)) => {
                let listener =
                    tokio::net::TcpListener::from_std(listener).map_err(|source| Error::Metrics { addr, source })?;
                let router = http::router(self.driver.metrics_handle());
                Some(AbortOnDrop(tokio::spawn(http::serve(listener, router))))
            }
            None => None,
        };
        let relay = self.driver.run().await;
        drop(http);
        Ok(relay?)
    }

    /// Runs the server on a new thread named `voice-relay` with its own current-thread runtime; the thread ends,
    /// returning the relay, after a shutdown.
    pub fn spawn(self) -> Result<JoinHandle<Result<Relay, Error>>, Error> {
        std::thread::Builder::new()
            .name("voice-relay".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(Error::Runtime)?;
                rt.block_on(self.run())
            })
            .map_err(Error::Runtime)
    }
}

/// A driver's bind error with the configured address it concerns; other errors as they are.
fn bind_error(e: DriverError, config: &Config) -> Error {
    match e {
        DriverError::Bind { what: "udp", source, .. } => {
            Error::Bind { what: "audio (UDP)", addr: config.listen.udp, source }
        }
        DriverError::Bind { what: "tcp", source, .. } => {
            Error::Bind { what: "control (TCP)", addr: config.listen.control, source }
        }
        other => Error::Driver(other),
    }
}

/// Aborts the HTTP task (and so its connections) however [`Server::run`] ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Unix milliseconds at `t` (0 before 1970, which no real clock says).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
