//! Metrics for operators: [`MetricsHandle`] snapshots of the running relay, and the minimal HTTP/1.1 endpoint that
//! serves them in the Prometheus text format at `GET /metrics`.
//!
//! The endpoint reads one request of at most [`MAX_REQUEST_BYTES`] (within [`REQUEST_TIMEOUT`]), answers it and
//! closes the connection; at most [`MAX_METRICS_CONNECTIONS`] are served at once (more wait in the listen queue).
//! It takes a snapshot through the core task's command queue (a copy of the counters and of the histogram) and
//! renders it on its own task, so a scrape costs the core task one small copy.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::control::Cmd;
use crate::counters::Counters;
use crate::metrics::{LatencyHistogram, render_prometheus};

/// Largest HTTP request the metrics endpoint reads; a longer one is answered `431` and closed.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// How long the metrics endpoint waits for a whole request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Metrics connections served at once.
const MAX_METRICS_CONNECTIONS: usize = 8;

/// The running relay's counters and the driver's forward-latency histogram and UDP totals at one moment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// The relay core's counters.
    pub counters: Counters,
    /// Time from each datagram batch's receive to the `sendmmsg` that sent each datagram it caused.
    pub forward_latency: LatencyHistogram,
    /// Datagrams received on the UDP socket.
    pub datagrams_received: u64,
    /// Datagrams handed to the kernel.
    pub datagrams_sent: u64,
    /// Datagrams the kernel refused to send.
    pub send_errors: u64,
}

impl MetricsSnapshot {
    /// The snapshot in the Prometheus text format: [`render_prometheus`] plus the driver's UDP totals
    /// (`voice_relay_udp_datagrams_total{op="recv|send|send_error"}`).
    #[must_use]
    pub fn render_prometheus(&self) -> String {
        let mut out = render_prometheus(&self.counters, &self.forward_latency);
        out.push_str(
            "# HELP voice_relay_udp_datagrams_total Datagrams through the driver's UDP socket.\n\
             # TYPE voice_relay_udp_datagrams_total counter\n",
        );
        for (op, v) in
            [("recv", self.datagrams_received), ("send", self.datagrams_sent), ("send_error", self.send_errors)]
        {
            out.push_str(&format!("voice_relay_udp_datagrams_total{{op=\"{op}\"}} {v}\n"));
        }
        out
    }
}

/// Takes [`MetricsSnapshot`]s of a running [`super::Server`] ([`super::Server::metrics_handle`]). Cheap to clone;
/// does not keep the server alive.
#[derive(Clone, Debug)]
pub struct MetricsHandle(mpsc::WeakSender<Cmd>);

impl MetricsHandle {
    pub(super) fn new(cmds: mpsc::WeakSender<Cmd>) -> Self {
        Self(cmds)
    }

    /// A snapshot, answered by the core task between two turns of its loop; `None` once the server has ended (or
    /// before it runs, the request then waits for it to start).
    pub async fn snapshot(&self) -> Option<MetricsSnapshot> {
        let cmds = self.0.upgrade()?;
        let (reply, rx) = oneshot::channel();
        cmds.send(Cmd::Metrics { reply }).await.ok()?;
        drop(cmds);
        rx.await.ok().map(|b| *b)
    }
}

/// Accepts metrics connections until `stop` turns true.
pub(super) async fn serve(listener: TcpListener, handle: MetricsHandle, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_METRICS_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = super::stopped(&mut stop) => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &handle)).await;
            drop(permit);
        });
    }
}

/// What the request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics,
    NotFound,
    BadMethod,
    TooLarge,
    Malformed,
}

/// Reads the request head (up to the blank line) and classifies its request line.
async fn read_request(stream: &mut TcpStream) -> Request {
    let mut buf = Vec::with_capacity(512);
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if buf.len() >= MAX_REQUEST_BYTES {
            return Request::TooLarge;
        }
        let mut chunk = [0u8; 512];
        let want = chunk.len().min(MAX_REQUEST_BYTES - buf.len());
        match stream.read(&mut chunk[..want]).await {
            Ok(0) | Err(_) => return Request::Malformed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    classify(&buf)
}

fn classify(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.trim_ascii().split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Request::Malformed;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Request::Malformed;
    }
    if method != b"GET" {
        return Request::BadMethod;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if path == b"/metrics" { Request::Metrics } else { Request::NotFound }
}

async fn answer(mut stream: TcpStream, handle: &MetricsHandle) {
    let (status, body) = match read_request(&mut stream).await {
        Request::Metrics => match handle.snapshot().await {
            Some(s) => ("200 OK", s.render_prometheus()),
            None => ("503 Service Unavailable", "relay stopped\n".to_owned()),
        },
        Request::NotFound => ("404 Not Found", "try /metrics\n".to_owned()),
        Request::BadMethod => ("405 Method Not Allowed", "GET only\n".to_owned()),
        Request::TooLarge => ("431 Request Header Fields Too Large", "request too large\n".to_owned()),
        Request::Malformed => ("400 Bad Request", "bad request\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).await.is_ok() && stream.write_all(body.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_classified() {
        assert_eq!(classify(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Request::Metrics);
        assert_eq!(classify(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Request::Metrics);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(classify(b"POST /metrics HTTP/1.1\r\n\r\n"), Request::BadMethod);
        assert_eq!(classify(b"GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(classify(b"\xff\xfe\r\n\r\n"), Request::Malformed);
        assert_eq!(classify(b""), Request::Malformed);
    }
}
