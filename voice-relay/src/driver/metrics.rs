//! Metrics for operators: [`MetricsHandle`] takes snapshots of the running relay ([`MetricsSnapshot`]) through the
//! core task's command queue (a copy of the counters and of the histogram), so a scrape costs the core task one
//! small copy; [`MetricsSnapshot::render_prometheus`] renders one in the Prometheus text format on the caller's
//! task. Serving them over HTTP is the server application's business (the `voice-server` crate).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::control::Cmd;
use crate::counters::Counters;
use crate::metrics::{LatencyHistogram, render_prometheus};

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
    /// Control connections closed at once because too many were not logged in ([`super::ConnLimits`]).
    pub prelogin_refused: u64,
    /// Connections not logged in that were closed to make room for a newcomer ([`super::ConnLimits`]).
    pub prelogin_evicted: u64,
    /// Failed accepts on the control listener (e.g. out of file descriptors).
    pub accept_errors: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake_failures: u64,
}

impl MetricsSnapshot {
    /// The snapshot in the Prometheus text format: [`render_prometheus`] plus what only the driver knows, each
    /// once: `voice_relay_udp_send_errors_total` (datagrams received and sent are the relay's
    /// `voice_relay_packets_total`), `voice_relay_prelogin_refused_total`, `voice_relay_prelogin_evicted_total`, `voice_relay_accept_errors_total` and
    /// `voice_relay_tls_handshake_failures_total`.
    #[must_use]
    pub fn render_prometheus(&self) -> String {
        let mut out = render_prometheus(&self.counters, &self.forward_latency);
        for (name, help, v) in [
            ("udp_send_errors_total", "UDP datagrams the kernel refused to send (dropped).", self.send_errors),
            (
                "prelogin_refused_total",
                "Control connections closed at once: too many not logged in, in total or from their address.",
                self.prelogin_refused,
            ),
            (
                "prelogin_evicted_total",
                "Connections not logged in closed to make room for a client from a less busy address.",
                self.prelogin_evicted,
            ),
            ("accept_errors_total", "Failed accepts on the control listener.", self.accept_errors),
            ("tls_handshake_failures_total", "TLS handshakes that failed or timed out.", self.tls_handshake_failures),
        ] {
            let _ = writeln!(out, "# HELP voice_relay_{name} {help}\n# TYPE voice_relay_{name} counter");
            let _ = writeln!(out, "voice_relay_{name} {v}");
        }
        out
    }
}

/// Longest a snapshot waits for the UDP threads' fresh copies (a thread stuck in a system call must not hold up
/// a scrape): then it shows what they copied last.
const COPY_WAIT: Duration = Duration::from_millis(200);

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
    ///
    /// The UDP threads copy their counters and latency histograms for the core task at most every few
    /// milliseconds while audio flows; a snapshot first asks each of them for a fresh copy and waits for the
    /// answers — at most one read timeout of an idle thread (20 ms), never more than 200 ms — so it shows
    /// everything the threads had done when it was asked.
    pub async fn snapshot(&self) -> Option<MetricsSnapshot> {
        let cmds = self.0.upgrade()?;
        let (reply, rx) = oneshot::channel();
        cmds.send(Cmd::Shared { reply }).await.ok()?;
        let shared = rx.await.ok()?;
        let request = shared.copy_request.fetch_add(1, Ordering::AcqRel) + 1;
        let answered = || shared.copied.iter().all(|c| c.0.load(Ordering::Acquire) >= request);
        let _ = tokio::time::timeout(COPY_WAIT, async {
            loop {
                let woken = shared.copies.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if answered() {
                    return;
                }
                woken.await;
            }
        })
        .await;
        let (reply, rx) = oneshot::channel();
        cmds.send(Cmd::Metrics { reply }).await.ok()?;
        drop(cmds);
        rx.await.ok().map(|b| *b)
    }
}
