//! The control side of the driver: the TCP accept loop and one task per connection.
//!
//! A connection task only moves bytes: what it reads goes to the core task as [`Cmd::Bytes`] (the core keeps the
//! per-connection reassembly buffer and calls `Relay::handle_control_bytes`); what the core sends it
//! ([`Out::Frame`], already encoded) it writes; [`Out::Close`] (or the core dropping its sender) ends it.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::relay::ConnId;

/// Output queue of one connection (frames waiting to be written), in messages. A connection that lets it fill up
/// (a client that does not read) is closed by the core.
pub(crate) const CONN_QUEUE: usize = 256;

/// Pause after a failed `accept`.
const ACCEPT_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Commands from the control tasks to the core task.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// A connection was accepted; `tx` is its output queue.
    Opened { conn: ConnId, tx: mpsc::Sender<Out> },
    /// Bytes read from a connection.
    Bytes { conn: ConnId, bytes: BytesMut },
    /// The peer closed the connection, or reading / writing failed.
    Closed { conn: ConnId },
    /// A credential checked on the blocking pool (`super::auth::Verifier`).
    Authenticated { id: crate::AuthId, result: Result<crate::UserInfo, crate::AuthError> },
    /// A snapshot of the counters, for the metrics endpoint or a [`super::MetricsHandle`].
    Metrics { reply: tokio::sync::oneshot::Sender<Box<super::MetricsSnapshot>> },
}

/// Output from the core task to one connection task.
#[derive(Debug)]
pub(crate) enum Out {
    /// An encoded frame to write.
    Frame(Bytes),
    /// Close after writing everything before this.
    Close,
}

/// Accepts connections until `stop` turns true; each gets a fresh [`ConnId`] and its own task. With `tls`, the
/// task first completes the TLS handshake (within [`super::TLS_HANDSHAKE_TIMEOUT`]); only then does the core hear
/// of the connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    cmds: mpsc::Sender<Cmd>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_id = 1u64;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = super::stopped(&mut stop) => return,
        };
        // Accept errors concern one connection attempt. Some (too many open files) repeat until resources free
        // up, so pause briefly instead of spinning.
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a control connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
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
                tokio::spawn(connection(conn, stream, cmds));
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                tokio::spawn(async move {
                    match tokio::time::timeout(super::TLS_HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => connection(conn, stream, cmds).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// One control connection (plain TCP or TLS): tells the core it opened, then reads into a buffer and forwards the
/// bytes, and writes what the core sends.
async fn connection<S>(conn: ConnId, stream: S, cmds: mpsc::Sender<Cmd>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, mut rx) = mpsc::channel(CONN_QUEUE);
    if cmds.send(Cmd::Opened { conn, tx }).await.is_err() {
        return; // the core task is gone
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        tokio::select! {
            biased;
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
