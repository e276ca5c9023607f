//! Prometheus text exposition of the relay's [`Counters`] and of the driver's forward-latency histogram
//! ([`LatencyHistogram`]): [`render_prometheus`].
//!
//! Exported series (all prefixed `voice_relay_`):
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `sessions`, `bound_sessions`, `rooms` | gauge | |
//! | `logins_total`, `login_failures_total`, `logins_busy_total`, `sessions_ended_total` | counter | |
//! | `packets_total`, `bytes_total` | counter | `direction` = `in` / `out` |
//! | `audio_accepted_total`, `audio_forwarded_total`, `hellos_accepted_total`, `bindings_expired_total`, `key_rotations_total` | counter | |
//! | `dropped_packets_total` | counter | `reason` ([`DropReason::name`]) |
//! | `forward_latency_seconds` | histogram | buckets at powers of two from 1.024 µs to 34 s |

use std::fmt::Write as _;
use std::time::Duration;

use crate::counters::{Counters, DropReason};

/// Sub-buckets per power of two (quarter octaves: a bucket's bounds differ by at most 25 %).
const SUB: usize = 4;
/// Powers of two of nanoseconds covered: up to 2^40 ns ≈ 18 minutes (longer values land in the last bucket).
const OCTAVES: usize = 41;
const BUCKETS: usize = OCTAVES * SUB;
/// Power-of-two bucket bounds exported to Prometheus: 2^10 ns (1.024 µs) to 2^35 ns (34 s).
const EXPORTED_OCTAVES: std::ops::RangeInclusive<usize> = 10..=35;

/// A fixed, allocation-free histogram of durations with log-scale buckets (4 per power of two of nanoseconds, so
/// a quantile read from it is within 25 % of the true value). Recording is a few integer operations; the whole
/// histogram is a fixed array (1.3 KB).
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: [u64; BUCKETS],
    count: u64,
    sum_ns: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { buckets: [0; BUCKETS], count: 0, sum_ns: 0 }
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish_non_exhaustive()
    }
}

/// Bucket of a value in nanoseconds.
fn index(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize; // 0..3 ns: exact (octaves 0 and 1 collapse into these slots)
    }
    let octave = 63 - ns.leading_zeros() as usize; // ≥ 2
    let sub = ((ns >> (octave - 2)) & 3) as usize;
    (octave * SUB + sub).min(BUCKETS - 1)
}

/// Exclusive upper bound of bucket `i`, in nanoseconds.
fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64 + 1;
    }
    if i < 2 * SUB {
        return SUB as u64; // unused slots (values below 4 ns use the first four)
    }
    let (octave, sub) = (i / SUB, (i % SUB) as u64);
    (SUB as u64 + sub + 1) << (octave - 2)
}

impl LatencyHistogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `n` samples of `latency`.
    #[inline]
    pub fn record_n(&mut self, latency: Duration, n: u64) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[index(ns)] += n;
        self.count += n;
        self.sum_ns = self.sum_ns.saturating_add(ns.saturating_mul(n));
    }

    /// Records one sample.
    #[inline]
    pub fn record(&mut self, latency: Duration) {
        self.record_n(latency, 1);
    }

    /// Samples recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the samples (saturating).
    #[must_use]
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns)
    }

    /// The `q` quantile (0.0–1.0) as the upper bound of the bucket that holds it; `None` when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        // Rank of the quantile sample, 1-based, at least 1.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_bound(i)));
            }
        }
        Some(Duration::from_nanos(upper_bound(BUCKETS - 1)))
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// The samples recorded since `earlier` (a copy of this histogram taken before): bucket-wise difference.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let mut d = self.clone();
        for (a, b) in d.buckets.iter_mut().zip(earlier.buckets.iter()) {
            *a = a.saturating_sub(*b);
        }
        d.count = d.count.saturating_sub(earlier.count);
        d.sum_ns = d.sum_ns.saturating_sub(earlier.sum_ns);
        d
    }

    /// Samples below `2^octave` ns.
    fn below_octave(&self, octave: usize) -> u64 {
        self.buckets[..(octave * SUB).min(BUCKETS)].iter().sum()
    }
}

/// Renders the counters and the forward-latency histogram in the Prometheus text format (version 0.0.4). Allocates
/// the returned string; meant for a scrape every few seconds, not for the packet path.
#[must_use]
pub fn render_prometheus(counters: &Counters, forward_latency: &LatencyHistogram) -> String {
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP voice_relay_{name} {help}\n# TYPE voice_relay_{name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "voice_relay_{name}{labels} {v}");
        }
    };
    let c = counters;
    metric("sessions", "gauge", "Live sessions.", &[("", c.sessions)]);
    metric("bound_sessions", "gauge", "Sessions with a bound UDP address.", &[("", c.bound_sessions)]);
    metric("rooms", "gauge", "Rooms, configured and ad-hoc.", &[("", c.rooms)]);
    metric("logins_total", "counter", "Sessions created by login.", &[("", c.logins)]);
    metric("login_failures_total", "counter", "Refused logins.", &[("", c.login_failures)]);
    metric(
        "logins_busy_total",
        "counter",
        "Logins refused at once: the verification pool was full.",
        &[("", c.logins_busy)],
    );
    metric(
        "logins_throttled_total",
        "counter",
        "Logins refused at once: the account or the address backs off after wrong credentials.",
        &[("", c.logins_throttled)],
    );
    metric(
        "login_timeouts_total",
        "counter",
        "Control connections closed for not logging in in time.",
        &[("", c.login_timeouts)],
    );
    metric(
        "control_chars_refused_total",
        "counter",
        "Names or chat refused for control characters.",
        &[("", c.control_chars_refused)],
    );
    metric("sessions_ended_total", "counter", "Sessions that ended.", &[("", c.sessions_ended)]);
    let io = |i, o| [("{direction=\"in\"}", i), ("{direction=\"out\"}", o)];
    metric(
        "packets_total",
        "counter",
        "UDP datagrams received and queued for sending.",
        &io(c.packets_in, c.packets_out),
    );
    metric(
        "bytes_total",
        "counter",
        "Bytes of UDP datagrams received and queued for sending.",
        &io(c.bytes_in, c.bytes_out),
    );
    metric("audio_accepted_total", "counter", "Audio datagrams accepted for forwarding.", &[("", c.audio_accepted)]);
    metric("audio_forwarded_total", "counter", "Audio copies queued, one per recipient.", &[("", c.audio_forwarded)]);
    metric("hellos_accepted_total", "counter", "HELLOs accepted (binds and rebinds).", &[("", c.hellos_accepted)]);
    metric("bindings_expired_total", "counter", "Bindings lost to the idle timeout.", &[("", c.bindings_expired)]);
    metric("key_rotations_total", "counter", "Media key rotations.", &[("", c.key_rotations)]);
    let labels: Vec<String> = DropReason::ALL.iter().map(|r| format!("{{reason=\"{}\"}}", r.name())).collect();
    let drops: Vec<(&str, u64)> = labels.iter().zip(DropReason::ALL).map(|(l, r)| (l.as_str(), c.dropped(r))).collect();
    metric("dropped_packets_total", "counter", "UDP datagrams dropped, by reason.", &drops);
    let h = forward_latency;
    let name = "voice_relay_forward_latency_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a datagram batch's receive to the sendmmsg that sent each datagram it caused.\n\
         # TYPE {name} histogram"
    );
    for octave in EXPORTED_OCTAVES {
        let le = (1u64 << octave) as f64 / 1e9;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le:e}\"}} {}", h.below_octave(octave));
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum().as_secs_f64());
    let _ = writeln!(out, "{name}_count {}", h.count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotone() {
        for ns in [0u64, 1, 3, 4, 5, 7, 8, 9, 1000, 1023, 1024, 1_000_000, u64::MAX] {
            let i = index(ns);
            assert!(ns < upper_bound(i) || i == BUCKETS - 1, "{ns} in bucket {i} < {}", upper_bound(i));
            if i > 0 && i < BUCKETS - 1 {
                assert!(ns >= upper_bound(i - 1), "{ns} not above bucket {}", i - 1);
            }
        }
        for i in 1..BUCKETS {
            assert!(upper_bound(i) >= upper_bound(i - 1));
        }
    }

    #[test]
    fn quantiles_are_within_a_quarter_octave() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).unwrap().as_micros();
        assert!((500..=625).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap().as_micros();
        assert!((990..=1250).contains(&p99), "{p99}");
        assert_eq!(h.count(), 1000);
        let mut m = LatencyHistogram::new();
        m.merge(&h);
        m.record_n(Duration::from_secs(1), 1000);
        assert_eq!(m.count(), 2000);
        assert!(m.quantile(0.9).unwrap() >= Duration::from_secs(1));
        let d = m.since(&h);
        assert_eq!(d.count(), 1000);
        assert_eq!(d.quantile(0.0), d.quantile(1.0));
    }

    #[test]
    fn render_has_every_series_and_cumulative_buckets() {
        let mut c = Counters::default();
        c.sessions = 3;
        c.packets_in = 10;
        c.drop(DropReason::Unbound);
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_micros(3));
        h.record(Duration::from_millis(2));
        let text = render_prometheus(&c, &h);
        assert!(text.contains("voice_relay_sessions 3\n"), "{text}");
        assert!(text.contains("voice_relay_packets_total{direction=\"in\"} 10\n"), "{text}");
        assert!(text.contains("voice_relay_dropped_packets_total{reason=\"unbound\"} 1\n"), "{text}");
        assert!(text.contains("voice_relay_dropped_packets_total{reason=\"oversize\"} 0\n"), "{text}");
        assert!(text.contains("voice_relay_forward_latency_seconds_bucket{le=\"1.024e-6\"} 0\n"), "{text}");
        assert!(text.contains("voice_relay_forward_latency_seconds_bucket{le=\"4.096e-6\"} 1\n"), "{text}");
        assert!(text.contains("voice_relay_forward_latency_seconds_bucket{le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("voice_relay_forward_latency_seconds_count 2\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
