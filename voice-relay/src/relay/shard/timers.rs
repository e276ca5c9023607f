//! A shard's timers, driven by deadlines: the speaking timeout (precise), the binding idle timeout of the
//! addresses this shard receives (on the housekeeping grid), and the periodic flush of receiver-report totals.

use std::time::Instant;

use super::{Shard, ShardTimer};
use crate::ids::SessionRef;
use crate::relay::msg::ShardEvent;
use crate::timers::round_up;

impl Shard {
    /// When [`handle_timeout`](Self::handle_timeout) must run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match (self.timers.next(), self.next_loss_flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs what is due at `now`: looks only at the records whose deadline came.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            self.timer_visits += 1;
            match timer {
                ShardTimer::Binding(idx) => {
                    let idle = self.s.binding_idle_timeout;
                    let Some(s) = self.sessions.get_mut(idx) else { continue };
                    if s.binding_timer != Some(at) {
                        continue; // stale
                    }
                    s.binding_timer = None;
                    let Some(addr) = s.bound.filter(|_| s.owner) else { continue };
                    if s.last_rx + idle <= now {
                        s.bound = None;
                        s.owner = false;
                        let session = SessionRef { idx, generation: s.generation };
                        if self.by_addr.get(&addr) == Some(&idx) {
                            self.by_addr.remove(&addr);
                        }
                        self.events.push_back(ShardEvent::Unbound { session, addr });
                    } else {
                        let next = round_up(s.last_rx + idle, self.s.origin, self.s.housekeeping_interval);
                        s.binding_timer = Some(next);
                        self.timers.arm(next, ShardTimer::Binding(idx));
                    }
                }
                ShardTimer::Speaking(idx) => {
                    let timeout = self.s.speaking_timeout;
                    let Some(s) = self.sessions.get_mut(idx) else { continue };
                    if s.speaking_timer != Some(at) {
                        continue; // stale
                    }
                    s.speaking_timer = None;
                    if !s.speaking {
                        continue;
                    }
                    if s.last_audio + timeout <= now {
                        match s.room {
                            Some(room) => self.set_speaking(idx, room, false, now),
                            None => s.speaking = false,
                        }
                    } else {
                        let next = s.last_audio + timeout;
                        s.speaking_timer = Some(next);
                        self.timers.arm(next, ShardTimer::Speaking(idx));
                    }
                }
            }
        }
        if self.next_loss_flush.is_some_and(|t| t <= now) {
            self.flush_loss();
        }
    }

    /// Sends the receiver-report totals gathered since the last flush to the control plane (one event per session
    /// reported about, or that reported its round-trip time).
    pub(crate) fn flush_loss(&mut self) {
        self.next_loss_flush = None;
        // Taken and put back, so the list keeps its capacity.
        let mut dirty = std::mem::take(&mut self.loss_dirty);
        for &idx in &dirty {
            let Some(s) = self.sessions.get_mut(idx) else { continue };
            let acc = std::mem::take(&mut s.loss);
            let session = SessionRef { idx, generation: s.generation };
            let about = acc.about.then_some((acc.worst, acc.max_jitter_ms));
            self.events.push_back(ShardEvent::Loss { session, about, rtt_ms: acc.rtt_ms });
        }
        dirty.clear();
        self.loss_dirty = dirty;
    }
}
