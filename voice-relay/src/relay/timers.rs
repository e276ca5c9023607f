//! Timers: the speaking timeout (precise), and a periodic housekeeping pass (binding expiry, session end after the
//! resume grace, idle control connections, ad-hoc room removal) and bitrate hints.

use std::time::Instant;

use voice_proto::control::ServerMessage;

use super::{ConnId, Relay};

/// Lowest bitrate the relay ever suggests (Opus speech stays intelligible at 8 kb/s).
pub(crate) const MIN_HINT_BITRATE_BPS: u32 = 8_000;

/// The bitrate policy: from the worst `fraction_lost` (1/256) any receiver reported about a sender since the last
/// decision, and the bitrate suggested last time, the next hint `(bitrate_bps, fec, expected_loss_pct)`:
///
/// * `expected_loss_pct` is the worst loss in percent, rounded up;
/// * FEC is on when that loss is above 2 %;
/// * above 10 % loss the bitrate steps down by a quarter (FEC needs room, and congestion is likely); at or below
///   2 % it steps up by a tenth; in between it holds;
/// * the bitrate stays within `[min(8 kb/s, room bitrate), room bitrate]`.
#[must_use]
pub fn bitrate_policy(worst_fraction_lost: u8, previous_bps: u32, room_bitrate_bps: u32) -> (u32, bool, u8) {
    let loss_pct = u8::try_from((u32::from(worst_fraction_lost) * 100).div_ceil(256)).unwrap_or(100);
    let fec = u32::from(worst_fraction_lost) * 100 > 2 * 256;
    let max = room_bitrate_bps;
    let min = MIN_HINT_BITRATE_BPS.min(max);
    let cur = if previous_bps == 0 { max } else { previous_bps.clamp(min, max) };
    let next = if loss_pct > 10 {
        cur - cur / 4
    } else if loss_pct <= 2 {
        cur.saturating_add((cur / 10).max(1_000))
    } else {
        cur
    };
    (next.clamp(min, max), fec, loss_pct)
}

impl Relay {
    /// Runs the timers that are due at `now`. Call it at (or after) [`poll_timeout`](Self::poll_timeout); calling it
    /// early or often is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.s.cfg.speaking_timeout;
        let mut i = 0;
        while let Some(&idx) = self.speaking.get(i) {
            match self.sessions.get(idx) {
                Some(s) if s.last_audio + timeout <= now => self.set_speaking(idx, false),
                Some(_) => i += 1,
                None => {
                    self.speaking.swap_remove(i);
                }
            }
        }
        if now >= self.next_housekeeping {
            self.housekeeping(now);
            self.next_housekeeping = now + self.s.cfg.housekeeping_interval;
        }
        if now >= self.next_hints {
            self.bitrate_hints();
            self.next_hints = now + self.s.cfg.hint_interval;
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let (idle, grace) = (self.s.cfg.binding_idle_timeout, self.s.cfg.resume_grace);
        for idx in 0..self.sessions.slot_count() {
            let Some(s) = self.sessions.get_mut(idx) else { continue };
            if let Some(addr) = s.bound
                && s.last_rx + idle <= now
            {
                s.bound = None;
                if self.by_addr.get(&addr) == Some(&idx) {
                    self.by_addr.remove(&addr);
                }
                self.counters.bound_sessions = self.counters.bound_sessions.saturating_sub(1);
                self.counters.bindings_expired += 1;
            }
            if s.conn.is_none() && s.detached_at + grace <= now {
                self.end_session(idx, now);
            }
        }
        let control_idle = self.s.cfg.control_idle_timeout;
        let stale: Vec<ConnId> =
            self.conns.iter().filter(|(_, c)| c.last_rx + control_idle <= now).map(|(&id, _)| id).collect();
        for conn in stale {
            self.close_conn(now, conn);
        }
        let linger = self.s.cfg.adhoc_linger;
        for ridx in 0..self.rooms.slot_count() {
            let Some(r) = self.rooms.get(ridx) else { continue };
            if r.adhoc && r.members.is_empty() && r.empty_since.is_some_and(|t| t + linger <= now) {
                if let Some(r) = self.rooms.remove(ridx) {
                    self.room_by_name.remove(&r.name);
                }
                self.counters.rooms = self.counters.rooms.saturating_sub(1);
            }
        }
    }

    /// Ends a session: out of its room (members told, key rotated), token and public id released.
    pub(crate) fn end_session(&mut self, idx: u32, now: Instant) {
        self.leave_room(idx, now);
        let Some(s) = self.sessions.remove(idx) else { return };
        tracing::info!(public_id = s.public_id.0, "session ended");
        self.by_token.remove(&s.token.0);
        self.by_public.remove(&s.public_id.0);
        if let Some(addr) = s.bound {
            if self.by_addr.get(&addr) == Some(&idx) {
                self.by_addr.remove(&addr);
            }
            self.counters.bound_sessions = self.counters.bound_sessions.saturating_sub(1);
        }
        if let Some(conn) = s.conn
            && let Some(c) = self.conns.get_mut(&conn)
        {
            c.session = None;
        }
        self.speaking.retain(|&i| i != idx);
        self.counters.sessions = self.counters.sessions.saturating_sub(1);
        self.counters.sessions_ended += 1;
    }

    fn bitrate_hints(&mut self) {
        for idx in 0..self.sessions.slot_count() {
            let Some(s) = self.sessions.get_mut(idx) else { continue };
            if !s.loss.seen {
                continue;
            }
            let worst = s.loss.worst;
            s.loss.seen = false;
            s.loss.worst = 0;
            let Some(room_bps) = s.room.and_then(|r| self.rooms.get(r)).map(|r| r.config.bitrate_bps) else {
                continue;
            };
            let hint = bitrate_policy(worst, s.loss.bitrate_bps, room_bps);
            s.loss.bitrate_bps = hint.0;
            if s.loss.last_hint.unwrap_or((room_bps, false, 0)) != hint {
                s.loss.last_hint = Some(hint);
                let (bitrate_bps, fec, expected_loss_pct) = hint;
                self.send_session(idx, ServerMessage::BitrateHint { bitrate_bps, fec, expected_loss_pct });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bitrate_policy;

    #[test]
    fn policy_steps_down_on_loss_and_up_when_clean() {
        // 20 % loss: FEC on, bitrate down a quarter.
        assert_eq!(bitrate_policy(51, 0, 32_000), (24_000, true, 20));
        // 3 % loss: FEC on, hold.
        assert_eq!(bitrate_policy(8, 24_000, 32_000), (24_000, true, 4));
        // Clean: up a tenth (at least 1 kb/s), capped at the room's bitrate.
        assert_eq!(bitrate_policy(0, 24_000, 32_000), (26_400, false, 0));
        assert_eq!(bitrate_policy(0, 31_000, 32_000), (32_000, false, 0));
        // Never below the floor, and the floor never above the room's bitrate.
        assert_eq!(bitrate_policy(255, 8_000, 32_000), (8_000, true, 100));
        assert_eq!(bitrate_policy(255, 0, 6_000), (6_000, true, 100));
    }
}
