//! The JSON summary of a `voice-bots` run, computed from the bots' statistics and audio recordings.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use voice_client::SessionStats;
use voice_relay::driver::MetricsSnapshot;

use super::Args;
use super::audio::{Recording, match_onsets};

/// A marker heard later than this after its capture counts as missed.
const MATCH_WINDOW: Duration = Duration::from_millis(1_000);

/// What a run measured. Counters are deltas over the talk period (after every bot joined).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Bots (all of them joined and bound their UDP path before the talk period).
    pub bots: usize,
    /// Rooms.
    pub rooms: usize,
    /// Talkers per room.
    pub talkers_per_room: usize,
    /// Server used.
    pub server: String,
    /// Length of the talk period, s.
    pub talk_s: f64,
    /// Packet counts.
    pub packets: Packets,
    /// Mouth-to-ear latency, measured per talk turn and listener.
    pub latency: Latency,
    /// Jitter-buffer playout delay of every (listener, speaker) pair, sampled once a second, ms.
    pub jitter_buffer_delay_ms: Stat,
    /// UDP round-trip time client ↔ relay at the end, over bots, ms.
    pub udp_rtt_ms: Stat,
    /// Concealment at the receivers.
    pub concealment: Concealment,
    /// Mean send bitrate of the talkers at the end (Opus payload + headers), bit/s.
    pub talker_bitrate_bps: f64,
    /// CPU use.
    pub cpu: Cpu,
    /// The in-process relay's own counters, if it ran here.
    pub relay: Option<RelayFigures>,
}

/// Packet counts over the talk period.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Packets {
    /// Audio packets sent by the talkers.
    pub sent: u64,
    /// Deliveries expected: each packet to every other member of its room.
    pub expected: u64,
    /// Audio packets received by the listeners (all speakers).
    pub received: u64,
    /// 100 × (1 − received / expected), clamped at 0.
    pub loss_pct: f64,
    /// Gaps in sequence numbers seen by the jitter buffers.
    pub jitter_buffer_lost: u64,
    /// Packets that arrived too late to be played.
    pub late: u64,
}

/// Mouth-to-ear latency.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// How it is measured.
    pub definition: &'static str,
    /// Turns heard (one per turn per listener).
    pub samples: usize,
    /// Turns not heard within 1 s (their onset was lost or masked).
    pub missed: usize,
    /// Statistics, ms.
    pub ms: Stat,
}

/// Mean, percentiles and maximum.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Stat {
    /// Statistics of `values` (sorted in place); zeros if empty.
    pub fn of(values: &mut [f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let q = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Self { mean: values.iter().sum::<f64>() / values.len() as f64, p50: q(0.5), p99: q(0.99), max: q(1.0) }
    }
}

/// Concealment at the receivers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Concealment {
    /// Frames synthesized by packet-loss concealment (PLC).
    pub plc_frames: u64,
    /// Frames recovered from the next packet's in-band FEC.
    pub fec_recovered: u64,
}

/// CPU use over the talk period, in % of one core.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cpu {
    /// This whole process (bots, and the relay if it runs in-process).
    pub process_pct: Option<f64>,
    /// The bots only (process minus relay thread).
    pub bots_pct: Option<f64>,
    /// The relay threads (in-process relay only; with one UDP thread, one core is its ceiling).
    pub relay_pct: Option<f64>,
    /// How it was measured.
    pub note: &'static str,
}

/// The in-process relay's figures over the talk period.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RelayFigures {
    /// Datagrams received on its UDP socket.
    pub datagrams_received: u64,
    /// Datagrams it sent.
    pub datagrams_sent: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Its forward latency (batch receive → send), p99, µs.
    pub forward_p99_us: Option<f64>,
}

/// What [`Summary::compute`] reads.
pub(super) struct Inputs<'a> {
    pub args: &'a Args,
    pub server: String,
    pub room_size: &'a [usize],
    /// (room, talker, recording) per bot, in the same order as `before` and `after`.
    pub bots: &'a [(usize, bool, Recording)],
    pub before: &'a [SessionStats],
    pub after: &'a [SessionStats],
    pub jb_delays_ms: &'a mut Vec<f64>,
    pub wall: Duration,
    pub talk: Duration,
}

impl Summary {
    pub(super) fn compute(i: Inputs<'_>) -> Self {
        let mut packets = Packets::default();
        let mut concealment = Concealment::default();
        let mut bitrates = Vec::new();
        for (k, &(room, talker, _)) in i.bots.iter().enumerate() {
            let (b, a) = (&i.before[k], &i.after[k]);
            if talker {
                let sent = a.packets_sent.saturating_sub(b.packets_sent);
                packets.sent += sent;
                packets.expected += sent * (i.room_size[room].saturating_sub(1)) as u64;
                bitrates.push(f64::from(a.send_bitrate_bps));
            }
            let earlier: HashMap<_, _> = b.speakers.iter().map(|s| (s.id, s)).collect();
            for s in &a.speakers {
                let d = |f: fn(&voice_client::SpeakerStats) -> u64| {
                    f(s).saturating_sub(earlier.get(&s.id).map_or(0, |e| f(e)))
                };
                packets.received += d(|x| x.packets);
                packets.jitter_buffer_lost += d(|x| x.lost);
                packets.late += d(|x| x.late);
                concealment.plc_frames += d(|x| x.concealed);
                concealment.fec_recovered += d(|x| x.fec_recovered);
            }
        }
        if packets.expected > 0 {
            packets.loss_pct = (100.0 * (1.0 - packets.received as f64 / packets.expected as f64)).max(0.0);
        }
        // Latency: every talker's turns, at every other member of its room.
        let mut latencies = Vec::new();
        let mut missed = 0;
        for (t, (room, talker, rec)) in i.bots.iter().enumerate() {
            if !talker {
                continue;
            }
            for (l, (r, _, listener)) in i.bots.iter().enumerate() {
                if l == t || r != room {
                    continue;
                }
                let (lat, m) = match_onsets(&rec.markers, &listener.onsets, MATCH_WINDOW);
                latencies.extend(lat.iter().map(|d| d.as_secs_f64() * 1e3));
                missed += m;
            }
        }
        let mut rtts: Vec<f64> = i.after.iter().filter_map(|s| s.udp_rtt).map(|d| d.as_secs_f64() * 1e3).collect();
        let _ = i.wall;
        Self {
            bots: i.bots.len(),
            rooms: i.args.rooms,
            talkers_per_room: i.args.talkers_per_room,
            server: i.server,
            talk_s: i.talk.as_secs_f64(),
            packets,
            latency: Latency {
                definition: "capture instant of each turn's marker (its 10 ms chunk pushed into the microphone ring) \
                             to the instant its onset is played (speaker chunk popped + offset), same process clock",
                samples: latencies.len(),
                missed,
                ms: Stat::of(&mut latencies),
            },
            jitter_buffer_delay_ms: Stat::of(i.jb_delays_ms),
            udp_rtt_ms: Stat::of(&mut rtts),
            concealment,
            talker_bitrate_bps: if bitrates.is_empty() {
                0.0
            } else {
                bitrates.iter().sum::<f64>() / bitrates.len() as f64
            },
            cpu: Cpu::default(),
            relay: None,
        }
    }

    /// Fills in the CPU figures from the clocks read at the start and the end of the talk period.
    pub(super) fn set_cpu(
        &mut self,
        wall: Duration,
        before: (Option<Duration>, Option<Duration>),
        after: (Option<Duration>, Option<Duration>),
        in_process: bool,
    ) {
        let pct = |a: Option<Duration>, b: Option<Duration>| {
            Some(100.0 * a?.saturating_sub(b?).as_secs_f64() / wall.as_secs_f64().max(1e-9))
        };
        let process = pct(after.0, before.0);
        let relay = pct(after.1, before.1);
        self.cpu = Cpu {
            process_pct: process,
            relay_pct: relay,
            bots_pct: match (process, relay) {
                (Some(p), Some(r)) => Some((p - r).max(0.0)),
                (p, None) if !in_process => p,
                _ => None,
            },
            note: if in_process {
                "getrusage(RUSAGE_SELF) for the process; /proc/self/task/<tid>/stat of the relay threads (voice-relay, voice-relay-*)"
            } else {
                "getrusage(RUSAGE_SELF) for the bots; the external server's CPU is not measured here"
            },
        };
    }

    /// Fills in the relay's figures (deltas between two snapshots).
    pub(super) fn set_relay(&mut self, before: &MetricsSnapshot, after: &MetricsSnapshot) {
        let hist = after.forward_latency.since(&before.forward_latency);
        self.relay = Some(RelayFigures {
            datagrams_received: after.datagrams_received.saturating_sub(before.datagrams_received),
            datagrams_sent: after.datagrams_sent.saturating_sub(before.datagrams_sent),
            send_errors: after.send_errors.saturating_sub(before.send_errors),
            forward_p99_us: hist.quantile(0.99).map(|d| d.as_secs_f64() * 1e6),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Stat;

    #[test]
    fn stat_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stat::of(&mut v);
        assert_eq!((s.p50, s.p99, s.max), (50.0, 99.0, 100.0));
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert_eq!(Stat::of(&mut []).max, 0.0);
    }
}
