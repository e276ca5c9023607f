//! A seeded network conditioner — the "chaos simulator" of the debug panel: it injects loss, latency, jitter and
//! reordering into a stream of datagrams, on the way out or in, with settings that can change at any time.
//!
//! Sans-IO like the rest of the stack: [`NetworkConditioner::push`] a datagram with the current time, then take
//! what is due with [`NetworkConditioner::poll`]; [`NetworkConditioner::poll_timeout`] says when the next one is
//! due. The same seed and the same inputs give the same output, so tests replay exactly.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::error::ConfigError;

/// What the conditioner does to each datagram. The default passes everything through unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConditionerConfig {
    /// Probability that a datagram is dropped (independent per datagram), 0.0..=1.0.
    pub loss: f64,
    /// Delay added to every datagram.
    pub latency: Duration,
    /// Standard deviation of a normally distributed extra delay, clamped at zero: datagrams sent close together can
    /// overtake each other, as on a real jittery path.
    pub jitter: Duration,
    /// Probability that a datagram is held back by `reorder_delay` more, so later ones overtake it, 0.0..=1.0.
    pub reorder: f64,
    /// Extra delay of a reordered datagram.
    pub reorder_delay: Duration,
}

impl ConditionerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [("loss", self.loss), ("reorder", self.reorder)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::NotAProbability { field, value });
            }
        }
        Ok(())
    }
}

/// Counters since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConditionerStats {
    /// Datagrams pushed.
    pub pushed: u64,
    /// Datagrams dropped (loss).
    pub dropped: u64,
    /// Datagrams held back to be reordered.
    pub reordered: u64,
    /// Datagrams handed out by `poll`.
    pub delivered: u64,
}

struct Pending<T> {
    due: Instant,
    /// Push order, so that datagrams due at the same instant keep their order.
    order: u64,
    item: T,
}

impl<T> PartialEq for Pending<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl<T> Eq for Pending<T> {}
impl<T> PartialOrd for Pending<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Pending<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// Delays, drops and reorders datagrams of type `T` (e.g. `bytes::Bytes` or a `voice_proto::Transmit`).
pub struct NetworkConditioner<T> {
    config: ConditionerConfig,
    rng: fastrand::Rng,
    queue: BinaryHeap<Reverse<Pending<T>>>,
    stats: ConditionerStats,
}

impl<T> std::fmt::Debug for NetworkConditioner<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkConditioner")
            .field("config", &self.config)
            .field("queued", &self.queue.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<T> NetworkConditioner<T> {
    /// A conditioner with `config`, drawing its randomness from `seed`.
    pub fn new(config: ConditionerConfig, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            rng: fastrand::Rng::with_seed(seed),
            queue: BinaryHeap::new(),
            stats: ConditionerStats::default(),
        })
    }

    /// Changes the settings; datagrams already queued keep the delivery time they were given.
    pub fn set_config(&mut self, config: ConditionerConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The current settings.
    #[must_use]
    pub fn config(&self) -> &ConditionerConfig {
        &self.config
    }

    /// Counters since construction.
    #[must_use]
    pub fn stats(&self) -> ConditionerStats {
        self.stats
    }

    /// Datagrams waiting for their delivery time.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Takes in a datagram sent at `now`: drops it, or queues it for delivery after the configured delay.
    pub fn push(&mut self, now: Instant, item: T) {
        self.stats.pushed += 1;
        let c = self.config;
        if c.loss > 0.0 && self.rng.f64() < c.loss {
            self.stats.dropped += 1;
            return;
        }
        let mut delay = c.latency;
        if !c.jitter.is_zero() {
            delay += c.jitter.mul_f64(standard_normal(&mut self.rng).max(0.0));
        }
        if c.reorder > 0.0 && self.rng.f64() < c.reorder {
            delay += c.reorder_delay;
            self.stats.reordered += 1;
        }
        let order = self.stats.pushed;
        self.queue.push(Reverse(Pending { due: now + delay, order, item }));
    }

    /// The next datagram whose delivery time is at or before `now`, if any. Call until it returns `None`.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        if self.queue.peek().is_some_and(|Reverse(p)| p.due <= now) {
            self.stats.delivered += 1;
            return self.queue.pop().map(|Reverse(p)| p.item);
        }
        None
    }

    /// When the next queued datagram is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.due)
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut fastrand::Rng) -> f64 {
    // `f64` is in [0, 1): `1 - u` is in (0, 1], so the logarithm is finite.
    let (u, v) = (1.0 - rng.f64(), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, reason = "tests need an origin for their simulated clock")]
mod tests {
    use super::*;

    fn drain(c: &mut NetworkConditioner<u32>, until: Instant) -> Vec<(u32, Duration)> {
        let start = until - Duration::from_secs(1000);
        let mut out = Vec::new();
        while let Some(t) = c.poll_timeout() {
            if t > until {
                break;
            }
            while let Some(i) = c.poll(t) {
                out.push((i, t - start));
            }
        }
        out
    }

    #[test]
    fn default_passes_everything_in_order_without_delay() {
        let now = Instant::now();
        let mut c = NetworkConditioner::new(ConditionerConfig::default(), 1).unwrap();
        for i in 0..100 {
            c.push(now, i);
        }
        let got: Vec<u32> = std::iter::from_fn(|| c.poll(now)).collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(c.stats(), ConditionerStats { pushed: 100, dropped: 0, reordered: 0, delivered: 100 });
    }

    #[test]
    fn latency_holds_datagrams_until_due() {
        let now = Instant::now();
        let cfg = ConditionerConfig { latency: Duration::from_millis(50), ..ConditionerConfig::default() };
        let mut c = NetworkConditioner::new(cfg, 1).unwrap();
        c.push(now, 7u32);
        assert_eq!(c.poll(now + Duration::from_millis(49)), None);
        assert_eq!(c.poll_timeout(), Some(now + Duration::from_millis(50)));
        assert_eq!(c.poll(now + Duration::from_millis(50)), Some(7));
    }

    #[test]
    fn loss_rate_matches_the_setting_and_is_deterministic() {
        let now = Instant::now();
        let cfg = ConditionerConfig { loss: 0.1, ..ConditionerConfig::default() };
        let run = |seed| {
            let mut c = NetworkConditioner::new(cfg, seed).unwrap();
            for i in 0..20_000u32 {
                c.push(now, i);
            }
            let got: Vec<u32> = std::iter::from_fn(|| c.poll(now)).collect();
            (c.stats(), got)
        };
        let (stats, got) = run(42);
        let rate = stats.dropped as f64 / stats.pushed as f64;
        assert!((0.09..=0.11).contains(&rate), "loss rate {rate}");
        assert_eq!(got.len() as u64, stats.pushed - stats.dropped);
        assert_eq!(run(42).1, got, "same seed, same output");
        assert_ne!(run(43).1, got, "another seed, other losses");
    }

    #[test]
    fn jitter_and_reorder_make_later_datagrams_overtake() {
        let start = Instant::now();
        let cfg = ConditionerConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            reorder: 0.05,
            reorder_delay: Duration::from_millis(60),
            ..ConditionerConfig::default()
        };
        let mut c = NetworkConditioner::new(cfg, 7).unwrap();
        for i in 0..1000u32 {
            c.push(start + Duration::from_millis(20 * u64::from(i)), i);
        }
        let got = drain(&mut c, start + Duration::from_secs(1000));
        assert_eq!(got.len(), 1000, "nothing lost");
        let inversions = got.windows(2).filter(|w| w[1].0 < w[0].0).count();
        assert!(inversions > 10, "reordering happened: {inversions}");
        assert!(c.stats().reordered > 20);
        // Every datagram arrives no earlier than its base latency.
        for (i, at) in &got {
            let sent = Duration::from_millis(20 * u64::from(*i));
            assert!(*at >= sent + Duration::from_millis(20), "datagram {i} early");
        }
    }

    #[test]
    fn settings_change_at_runtime_and_bad_ones_are_refused() {
        let now = Instant::now();
        let mut c = NetworkConditioner::new(ConditionerConfig::default(), 3).unwrap();
        c.push(now, 1u32);
        c.set_config(ConditionerConfig { loss: 1.0, ..ConditionerConfig::default() }).unwrap();
        c.push(now, 2);
        assert_eq!(std::iter::from_fn(|| c.poll(now)).collect::<Vec<_>>(), vec![1]);
        let bad = ConditionerConfig { loss: 1.5, ..ConditionerConfig::default() };
        assert!(matches!(c.set_config(bad), Err(ConfigError::NotAProbability { field: "loss", .. })));
        assert!(NetworkConditioner::<u32>::new(ConditionerConfig { reorder: f64::NAN, ..bad }, 1).is_err());
        assert_eq!(c.config().loss, 1.0, "a refused config changes nothing");
    }
}
