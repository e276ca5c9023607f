//! Metrics for operators: [`MetricsHandle`] takes snapshots of the running relay ([`MetricsSnapshot`]) through the
//! core task's command queue (a copy of the counters and of the histogram), so a scrape costs the core task one
//! small copy; [`MetricsSnapshot::render_prometheus`] renders one in the Prometheus text format on the caller's
//! task. Serving them over HTTP is the server application's business (the `voice-server` crate).

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
