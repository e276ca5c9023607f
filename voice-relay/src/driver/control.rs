//! The control side of the driver: the TCP accept loop and one task per connection.
//!
//! A connection task only moves bytes: what it reads goes to the core task as [`Cmd::Bytes`] (the core keeps the
//! per-connection reassembly buffer and calls `Relay::handle_control_bytes`); what the core sends it
//! ([`Out::Frame`], already encoded) it writes; [`Out::Close`] (or the core dropping its sender) ends it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::prelogin::{PreLogin, PreLoginSlot, Taken};
use crate::loglimit::LogLimiter;
use crate::relay::ConnId;

/// Output queue of one connection (frames waiting to be written), in messages. A connection that lets it fill up
/// (a client that does not read) is closed by the core.
pub(crate) const CONN_QUEUE: usize = 256;

/// First pause after a failed `accept`; it doubles with each failure in a row up to [`ACCEPT_ERROR_PAUSE_MAX`].
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// Longest pause after failed `accept`s in a row.
pub(crate) const ACCEPT_ERROR_PAUSE_MAX: Duration = Duration::from_secs(1);

/// The pause after an `accept` failure, given the previous one (`None`: the last accept succeeded).
pub(crate) fn accept_pause(previous: Option<Duration>) -> Duration {
    previous.map_or(ACCEPT_ERROR_PAUSE, |p| p.saturating_mul(2).min(ACCEPT_ERROR_PAUSE_MAX))
}

/// Commands from the control tasks to the core task.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A connection was accepted; `tx` is its output queue. `slot` counts it among the connections not logged in
    /// until the core drops it (login, or close).
    Opened { conn: ConnId, tx: mpsc::Sender<Out>, peer: SocketAddr, slot: PreLoginSlot },
    /// Bytes read from a connection.
    Bytes { conn: ConnId, bytes: BytesMut },
    /// The peer closed the connection, or reading / writing failed.
    Closed { conn: ConnId },
    /// A credential checked on the verification pool (`super::auth::Verifier`).
    Authenticated { id: crate::AuthId, result: Result<crate::UserInfo, crate::AuthError> },
    /// A snapshot of the counters, for the metrics endpoint or a [`super::MetricsHandle`].
    Metrics { reply: tokio::sync::oneshot::Sender<Box<super::MetricsSnapshot>> },
    /// What the UDP threads share with the core task, for a snapshot that asks them for fresh copies first.
    Shared { reply: tokio::sync::oneshot::Sender<std::sync::Arc<super::Shared>> },
    /// Replace the authenticator (a configuration reload: [`super::ReloadHandle`]).
    SetAuthenticator(NewAuthenticator),
    /// Apply a new relay configuration ([`super::ReloadHandle::reconfigure`]).
    Reconfigure { config: Box<crate::RelayConfig>, reply: tokio::sync::oneshot::Sender<Result<(), crate::Error>> },
}

/// An authenticator on its way to the core task.
pub(crate) struct NewAuthenticator(pub(crate) Arc<dyn crate::Authenticator>);

impl std::fmt::Debug for NewAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewAuthenticator")
    }
}

/// Output from the core task to one connection task.
#[derive(Debug)]
pub(crate) enum Out {
    /// An encoded frame to write.
    Frame(Bytes),
    /// Close after writing everything before this.
    Close,
}

/// What the accept loop needs besides the listener.
pub(crate) struct Accept {
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) cmds: mpsc::Sender<Cmd>,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) prelogin: PreLogin,
    pub(crate) stats: Arc<super::DriverStats>,
}

#[allow(clippy::disallowed_methods, reason = "the driver owns the clock: log lines are limited per window")]
fn now() -> Instant {
    Instant::now()
}

/// Accepts connections until `stop` turns true; each gets a fresh [`ConnId`] and its own task, if a pre-login
/// slot is free for it (otherwise it is closed at once). With TLS, the task first completes the handshake (within
/// [`super::TLS_HANDSHAKE_TIMEOUT`]); only then does the core hear of the connection.
pub(crate) async fn accept_loop(listener: TcpListener, a: Accept) {
    let Accept { tls, cmds, mut stop, prelogin, stats } = a;
    // Warnings are rate-limited: a flood writes a few lines per 10 s, then says how many it left out.
    let (mut accept_log, mut refused_log) = (LogLimiter::default(), LogLimiter::default());
    let tls_log = Arc::new(Mutex::new(LogLimiter::default()));
    let mut pause = None;
    let mut next_id = 1u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = super::stopped(&mut stop) => return,
        };
        // Accept errors concern one connection attempt. Some (too many open files) repeat until resources free
        // up, so pause, longer each time in a row, instead of spinning.
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                let p = accept_pause(pause);
                pause = Some(p);
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = accept_log.admit(now()) {
                    tracing::warn!(error = %e, left_out, pause_ms = p.as_millis(), "accepting a control connection failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(p) => {}
                    () = super::stopped(&mut stop) => return,
                }
                continue;
            }
        };
        pause = None;
        let slot = match prelogin.take(peer.ip(), now()) {
            Taken::Slot(slot) => slot,
            Taken::Evicted(slot) => {
                stats.prelogin_evicted.fetch_add(1, Ordering::Relaxed);
                slot
            }
            refused @ (Taken::Refused | Taken::RateLimited) => {
                stats.prelogin_refused.fetch_add(1, Ordering::Relaxed);
                if let Some(left_out) = refused_log.admit(now()) {
                    let why = if matches!(refused, Taken::RateLimited) {
                        "new connections from this address too fast"
                    } else {
                        "too many connections not logged in from this address"
                    };
                    tracing::warn!(%peer, left_out, "{why}: closed");
                }
                drop(stream);
                continue;
            }
        };
        tracing::debug!(%peer, "control connection accepted");
        let _ = stream.set_nodelay(true);
        let conn = ConnId(next_id);
        next_id += 1;
        if cmds.is_closed() {
            return; // the core task is gone
        }
        let cmds = cmds.clone();
        match &tls {
            None => {
                tokio::spawn(connection(conn, stream, cmds, peer, slot));
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let (tls_log, stats) = (Arc::clone(&tls_log), Arc::clone(&stats));
                tokio::spawn(async move {
                    let evicted = slot.evicted();
                    let handshake = tokio::time::timeout(super::TLS_HANDSHAKE_TIMEOUT, handshake);
                    let done = tokio::select! {
                        done = handshake => done,
                        () = evicted => return, // a newcomer took its place
                    };
                    let failed = match done {
                        Ok(Ok(stream)) => return connection(conn, stream, cmds, peer, slot).await,
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".to_owned(),
                    };
                    stats.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
                    let admit = tls_log.lock().unwrap_or_else(PoisonError::into_inner).admit(now());
                    if let Some(left_out) = admit {
                        tracing::warn!(%peer, error = %failed, left_out, "TLS handshake failed");
                    }
                });
            }
        }
    }
}

/// One control connection (plain TCP or TLS): tells the core it opened, then reads into a buffer and forwards the
/// bytes, and writes what the core sends.
async fn connection<S>(conn: ConnId, stream: S, cmds: mpsc::Sender<Cmd>, peer: SocketAddr, slot: PreLoginSlot)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, mut rx) = mpsc::channel(CONN_QUEUE);
    let evicted = slot.evicted();
    tokio::pin!(evicted);
    if cmds.send(Cmd::Opened { conn, tx, peer, slot }).await.is_err() {
        return; // the core task is gone
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        tokio::select! {
            biased;
            // Not logged in yet, and a newcomer took its place (see `super::prelogin`).
            () = &mut evicted => break,
            out = rx.recv() => match out {
                Some(Out::Frame(frame)) => {
                    if writer.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                // Close, or the core forgot this connection.
                Some(Out::Close) | None => break,
            },
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let bytes = buf.split();
                    if buf.capacity() < 1024 {
                        buf.reserve(4096);
                    }
                    // Waiting here is the backpressure on a client that sends faster than the core handles.
                    if cmds.send(Cmd::Bytes { conn, bytes }).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = writer.shutdown().await;
    // Harmless when the core closed the connection itself.
    let _ = cmds.send(Cmd::Closed { conn }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_in_a_row_pause_longer_up_to_a_second() {
        let mut pause = None;
        let pauses: Vec<_> = (0..10)
            .map(|_| {
                let p = accept_pause(pause);
                pause = Some(p);
                p.as_millis()
            })
            .collect();
        assert_eq!(pauses, [20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]);
        assert_eq!(accept_pause(None), ACCEPT_ERROR_PAUSE, "a success starts again");
    }
}
