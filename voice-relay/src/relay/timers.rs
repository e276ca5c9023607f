//! Timers: the speaking timeout (precise), and a periodic housekeeping pass (binding expiry, session end after the
//! resume grace, idle control connections, ad-hoc room removal) and bitrate hints.

use std::time::Instant;

use voice_proto::control::ServerMessage;

use super::hints::{Hint, LinkReport};
use super::{ConnId, Relay};

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
            let report = LinkReport {
                worst_fraction_lost: s.loss.worst,
                max_jitter_ms: s.loss.max_jitter_ms,
                sender_rtt_ms: s.loss.rtt_ms,
            };
            s.loss.seen = false;
            s.loss.worst = 0;
            s.loss.max_jitter_ms = 0;
            let Some(room) = s.room.and_then(|r| self.rooms.get(r)).map(|r| r.config) else {
                continue;
            };
            let hint = s.loss.controller.decide(report, room.bitrate_bps, room.fec);
            tracing::trace!(session = idx, ?report, ?hint, "encoder hint decision");
            // A client starts at the room's bitrate with FEC off: only changes from that are sent.
            let initial = Hint { bitrate_bps: room.bitrate_bps, fec: false, expected_loss_pct: 0 };
            if s.loss.last_hint.unwrap_or(initial) != hint {
                s.loss.last_hint = Some(hint);
                let Hint { bitrate_bps, fec, expected_loss_pct } = hint;
                self.send_session(idx, ServerMessage::BitrateHint { bitrate_bps, fec, expected_loss_pct });
            }
        }
    }
}
