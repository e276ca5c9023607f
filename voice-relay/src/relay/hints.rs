//! Codec control that follows the network: from what receivers report about a sender (loss, interarrival jitter)
//! and the sender's own round-trip time, the encoder settings the relay suggests to that sender.
//!
//! * **FEC** follows the loss receivers actually report: off on a clean link, on once the smoothed loss reaches
//!   1 % (off again below 0.3 %), with the expected loss libopus sizes its redundancy from; never on in a room
//!   configured with `fec = false`.
//! * **Bitrate** tells random loss from congestion. Loss alone (a lossy radio link, a busy Wi-Fi) keeps the
//!   bitrate: cutting it would only make speech and FEC worse. Congestion — the sender's round-trip time or the
//!   jitter of its stream rising well above their own baselines, or loss that appears right after the bitrate was
//!   raised — cuts it by a quarter, never below a floor where speech stays good (16 kb/s, or the room's bitrate if
//!   that is lower). When the link is clean again it climbs back by a tenth per decision (at least 2 kb/s) to the
//!   room's bitrate; a probe that brings loss back is undone and the next probe waits twice as long (up to 8
//!   decisions).

/// Lowest bitrate the relay ever suggests (wideband Opus speech with FEC stays good at 16 kb/s); a room with a
/// lower bitrate is never raised to it.
pub const MIN_HINT_BITRATE_BPS: u32 = 16_000;
/// Smoothed loss (percent) from which FEC is turned on.
const FEC_ON_PCT: f64 = 1.0;
/// Smoothed loss (percent) below which FEC is turned off again.
const FEC_OFF_PCT: f64 = 0.3;
/// Highest expected loss suggested (libopus's redundancy does not grow usefully beyond it).
const MAX_EXPECTED_LOSS_PCT: u8 = 25;
/// Round-trip growth over the baseline that counts as a queue building: this many ms, or half the baseline.
const RTT_GROWTH_MS: u32 = 30;
/// Jitter growth over the baseline that counts as a queue building, ms.
const JITTER_GROWTH_MS: u32 = 20;
/// Longest wait between two upward probes after failed ones, in decisions.
const MAX_PROBE_WAIT: u8 = 8;

/// What arrived about one sender since the last decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkReport {
    /// Worst `fraction_lost` (1/256) any receiver reported about the sender.
    pub worst_fraction_lost: u8,
    /// Largest interarrival jitter any receiver reported about the sender, ms.
    pub max_jitter_ms: u32,
    /// The sender's own UDP round-trip time to the relay, ms, if it reported one.
    pub sender_rtt_ms: Option<u32>,
}

/// Encoder settings suggested to a sender (a BitrateHint on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    /// Target bitrate, bit/s.
    pub bitrate_bps: u32,
    /// In-band FEC on.
    pub fec: bool,
    /// Expected loss in percent (0 when FEC is off).
    pub expected_loss_pct: u8,
}

/// The per-sender controller. Feed it one [`LinkReport`] per decision period with
/// [`decide`](Self::decide); it returns the hint for that period.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BitrateController {
    /// Current bitrate (0 = not started: the room's).
    bitrate_bps: u32,
    /// Bitrate before the last upward probe.
    before_probe_bps: u32,
    /// The last decision raised the bitrate.
    probed: bool,
    /// Decisions to wait before the next upward probe, and how long the last wait was.
    probe_wait: u8,
    last_wait: u8,
    /// Smoothed loss, percent.
    loss_pct: f64,
    fec: bool,
    /// Baselines (slowly rising minima) of the sender's RTT and its stream's jitter, ms.
    rtt_base_ms: Option<u32>,
    jitter_base_ms: Option<u32>,
}

impl BitrateController {
    /// The hint for this period, for a room with `room_bitrate_bps` and FEC allowed or not (`room_fec`).
    pub fn decide(&mut self, report: LinkReport, room_bitrate_bps: u32, room_fec: bool) -> Hint {
        let max = room_bitrate_bps;
        let floor = MIN_HINT_BITRATE_BPS.min(max);
        let cur = if self.bitrate_bps == 0 { max } else { self.bitrate_bps.clamp(floor, max) };
        let loss_now = f64::from(report.worst_fraction_lost) * 100.0 / 256.0;
        // Quick to rise (protect at once), slower to fall.
        self.loss_pct = if loss_now >= self.loss_pct { loss_now } else { 0.6 * self.loss_pct + 0.4 * loss_now };

        let queue_rtt = report.sender_rtt_ms.is_some_and(|rtt| {
            let base = self.rtt_base_ms.unwrap_or(rtt);
            rtt > base + RTT_GROWTH_MS.max(base / 2)
        });
        let queue_jitter = self.jitter_base_ms.is_some_and(|base| report.max_jitter_ms > base + JITTER_GROWTH_MS);
        let lossy = loss_now >= 2.0;
        let failed_probe = self.probed && lossy;
        let congested = queue_rtt || queue_jitter || failed_probe;

        let mut next = cur;
        self.probed = false;
        if failed_probe {
            // Loss came with more rate: give the probe back and wait longer before the next one.
            next = self.before_probe_bps.clamp(floor, max);
            self.last_wait = (self.last_wait.max(1) * 2).min(MAX_PROBE_WAIT);
            self.probe_wait = self.last_wait;
        } else if congested {
            next = (cur - cur / 4).max(floor);
            self.probe_wait = self.probe_wait.max(1);
        } else if loss_now < FEC_ON_PCT && cur < max {
            if self.probe_wait > 0 {
                self.probe_wait -= 1;
            } else {
                self.before_probe_bps = cur;
                next = cur.saturating_add((cur / 10).max(2_000)).min(max);
                self.probed = true;
            }
        } else if !lossy && cur >= max {
            // Clean at the room's bitrate: earlier failed probes are forgiven slowly.
            self.last_wait = self.last_wait.saturating_sub(1);
        }
        self.bitrate_bps = next;

        // Baselines: follow any decrease at once, rise by 1 ms per decision (a route change), and do not learn
        // from a period that looked congested.
        if let Some(rtt) = report.sender_rtt_ms {
            self.rtt_base_ms = Some(match self.rtt_base_ms {
                None => rtt,
                Some(b) if rtt < b => rtt,
                Some(b) if !congested => (b + 1).min(rtt),
                Some(b) => b,
            });
        }
        let j = report.max_jitter_ms;
        self.jitter_base_ms = Some(match self.jitter_base_ms {
            None => j,
            Some(b) if j < b => j,
            Some(b) if !congested => (b + 1).min(j),
            Some(b) => b,
        });

        self.fec = room_fec && if self.fec { self.loss_pct >= FEC_OFF_PCT } else { self.loss_pct >= FEC_ON_PCT };
        let expected_loss_pct = if self.fec { (self.loss_pct.ceil() as u8).clamp(1, MAX_EXPECTED_LOSS_PCT) } else { 0 };
        Hint { bitrate_bps: next, fec: self.fec, expected_loss_pct }
    }

    /// The bitrate the controller runs at now (0 before the first decision).
    pub fn bitrate_bps(&self) -> u32 {
        self.bitrate_bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(loss_pct: f64, jitter_ms: u32, rtt_ms: u32) -> LinkReport {
        LinkReport {
            worst_fraction_lost: (loss_pct * 256.0 / 100.0).round() as u8,
            max_jitter_ms: jitter_ms,
            sender_rtt_ms: Some(rtt_ms),
        }
    }

    #[test]
    fn clean_link_keeps_fec_off_at_the_room_bitrate() {
        let mut c = BitrateController::default();
        for _ in 0..20 {
            let h = c.decide(rep(0.0, 2, 20), 32_000, true);
            assert_eq!(h, Hint { bitrate_bps: 32_000, fec: false, expected_loss_pct: 0 });
        }
    }

    #[test]
    fn random_loss_turns_fec_on_and_keeps_the_bitrate() {
        for loss in [2.0, 5.0, 10.0, 20.0] {
            let mut c = BitrateController::default();
            for _ in 0..5 {
                c.decide(rep(0.0, 2, 20), 32_000, true);
            }
            for round in 0..30 {
                let h = c.decide(rep(loss, 2, 20), 32_000, true);
                assert!(h.fec, "loss {loss} %, round {round}");
                assert_eq!(h.bitrate_bps, 32_000, "random loss must not cut the bitrate ({loss} %)");
                assert!(h.expected_loss_pct as f64 >= loss.min(25.0) - 0.5, "{h:?} at {loss} %");
            }
        }
    }

    #[test]
    fn room_without_fec_never_gets_it() {
        let mut c = BitrateController::default();
        for _ in 0..10 {
            let h = c.decide(rep(10.0, 2, 20), 32_000, false);
            assert!(!h.fec);
            assert_eq!(h.expected_loss_pct, 0);
        }
    }

    #[test]
    fn congestion_cuts_to_the_floor_at_most_and_recovers() {
        let mut c = BitrateController::default();
        for _ in 0..5 {
            c.decide(rep(0.0, 2, 20), 64_000, true);
        }
        // A queue builds: RTT and loss climb.
        let mut last = 64_000;
        for k in 0..20 {
            let h = c.decide(rep(8.0, 30, 150 + 10 * k), 64_000, true);
            assert!(h.bitrate_bps <= last);
            assert!(h.bitrate_bps >= MIN_HINT_BITRATE_BPS);
            last = h.bitrate_bps;
        }
        assert_eq!(last, MIN_HINT_BITRATE_BPS, "sustained congestion ends at the floor");
        // The queue drains: back to the room's bitrate.
        let mut rounds = 0;
        while c.bitrate_bps() < 64_000 {
            c.decide(rep(0.0, 2, 20), 64_000, true);
            rounds += 1;
            assert!(rounds < 40, "climbs back within 40 decisions");
        }
    }

    #[test]
    fn loss_after_a_probe_undoes_it_and_waits_longer() {
        let mut c = BitrateController::default();
        // Congestion brings it down.
        c.decide(rep(0.0, 2, 20), 32_000, true);
        c.decide(rep(5.0, 2, 200), 32_000, true);
        let low = c.bitrate_bps();
        assert!(low < 32_000);
        // Clean: the first decision waits, the next probes upward.
        assert_eq!(c.decide(rep(0.0, 2, 20), 32_000, true).bitrate_bps, low);
        let probe = c.decide(rep(0.0, 2, 20), 32_000, true).bitrate_bps;
        assert!(probe > low);
        // The probe brought loss: undone, and the next probe waits two decisions.
        assert_eq!(c.decide(rep(4.0, 2, 20), 32_000, true).bitrate_bps, low);
        assert_eq!(c.decide(rep(0.0, 2, 20), 32_000, true).bitrate_bps, low);
        assert_eq!(c.decide(rep(0.0, 2, 20), 32_000, true).bitrate_bps, low);
        assert!(c.decide(rep(0.0, 2, 20), 32_000, true).bitrate_bps > low);
    }

    #[test]
    fn a_room_below_the_floor_keeps_its_bitrate() {
        let mut c = BitrateController::default();
        let h = c.decide(rep(30.0, 50, 400), 12_000, true);
        assert_eq!(h.bitrate_bps, 12_000);
    }
}
