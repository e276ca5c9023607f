//! The control plane's timers, driven by deadlines (see `crate::timers`): session end after the resume grace,
//! idle control connections, ad-hoc room removal, and bitrate hints for the senders that were reported about.

use std::time::Instant;

use voice_proto::control::ServerMessage;

use super::{Control, ControlTimer};
use crate::ids::{RoomIdx, SessionIdx};
use crate::relay::hints::{Hint, LinkReport};
use crate::relay::msg::ShardCmd;

impl Control {
    /// Runs what is due at `now`: looks only at the records whose deadline came.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            self.timer_visits += 1;
            match timer {
                ControlTimer::Grace(idx) => self.grace_due(idx, at, now),
                ControlTimer::ConnIdle(conn) => {
                    let (idle, login) = (self.s.cfg.control_idle_timeout, self.s.cfg.login_timeout);
                    let Some(c) = self.conns.get_mut(&conn) else { continue };
                    if c.idle_timer != Some(at) {
                        continue; // stale
                    }
                    c.idle_timer = None;
                    // Without a session, the login deadline counts from the opening: traffic does not move it.
                    let login_due = c.session.is_none().then(|| c.opened + login);
                    let idle_due = c.last_rx + idle;
                    if login_due.is_some_and(|t| t <= now) {
                        self.counters.login_timeouts += 1;
                        tracing::debug!(conn = conn.0, "no login within the login timeout: closed");
                        self.close_conn(now, conn);
                    } else if idle_due <= now {
                        self.close_conn(now, conn);
                    } else {
                        let next = login_due.map_or(idle_due, |t| t.min(idle_due));
                        self.arm_conn(conn, next);
                    }
                }
                ControlTimer::Linger(room) => self.linger_due(room, at, now),
            }
        }
        if now >= self.next_hints {
            self.bitrate_hints();
            self.next_hints = now + self.s.cfg.hint_interval;
        }
    }

    fn arm_conn(&mut self, conn: crate::ConnId, at: Instant) {
        let at = self.on_grid(at);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.idle_timer = Some(at);
            self.timers.arm(at, ControlTimer::ConnIdle(conn));
        }
    }

    /// Arms the resume-grace deadline of a session that just lost its connection (unless one is armed: it comes
    /// due early at worst, and is re-armed then).
    pub(crate) fn arm_grace(&mut self, idx: SessionIdx) {
        let grace = self.s.cfg.resume_grace;
        let Some(detached_at) = self.sessions.get(idx).filter(|s| s.grace_timer.is_none()).map(|s| s.detached_at)
        else {
            return;
        };
        let at = self.on_grid(detached_at + grace);
        if let Some(s) = self.sessions.get_mut(idx) {
            s.grace_timer = Some(at);
            self.timers.arm(at, ControlTimer::Grace(idx));
        }
    }

    fn grace_due(&mut self, idx: SessionIdx, at: Instant, now: Instant) {
        let grace = self.s.cfg.resume_grace;
        let Some(s) = self.sessions.get_mut(idx) else { return };
        if s.grace_timer != Some(at) {
            return; // stale
        }
        s.grace_timer = None;
        if s.conn.is_some() {
            return; // resumed
        }
        if s.detached_at + grace <= now {
            self.end_session(idx, now);
        } else {
            self.arm_grace(idx);
        }
    }

    /// Arms the removal deadline of an ad-hoc room that just became empty.
    pub(crate) fn arm_linger(&mut self, room: RoomIdx) {
        let linger = self.s.cfg.adhoc_linger;
        let Some(since) =
            self.rooms.get(room).filter(|r| r.adhoc && r.linger_timer.is_none()).and_then(|r| r.empty_since)
        else {
            return;
        };
        let at = self.on_grid(since + linger);
        if let Some(r) = self.rooms.get_mut(room) {
            r.linger_timer = Some(at);
            self.timers.arm(at, ControlTimer::Linger(room));
        }
    }

    fn linger_due(&mut self, room: RoomIdx, at: Instant, now: Instant) {
        let linger = self.s.cfg.adhoc_linger;
        let Some(r) = self.rooms.get_mut(room) else { return };
        if r.linger_timer != Some(at) {
            return; // stale
        }
        r.linger_timer = None;
        let Some(since) = r.empty_since.filter(|_| r.adhoc && r.members.is_empty()) else { return };
        if since + linger <= now {
            if let Some(r) = self.rooms.remove(room) {
                self.room_by_name.remove(&r.name);
            }
            self.counters.rooms = self.counters.rooms.saturating_sub(1);
            self.cmds.push_back(ShardCmd::RemoveRoom { room });
        } else {
            self.arm_linger(room);
        }
    }

    /// Ends a session: out of its room (members told, key rotated), token and public id released, every shard
    /// told.
    pub(crate) fn end_session(&mut self, idx: SessionIdx, now: Instant) {
        self.leave_room(idx, now);
        let Some(s) = self.sessions.remove(idx) else { return };
        tracing::info!(public_id = s.public_id.0, "session ended");
        self.by_token.remove(&s.token);
        self.by_public.remove(&s.public_id);
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
        self.cmds.push_back(ShardCmd::RemoveSession { idx });
        self.counters.sessions = self.counters.sessions.saturating_sub(1);
        self.counters.sessions_ended += 1;
    }

    /// Runs the bitrate controller of every sender reported about since the last tick (and only those).
    fn bitrate_hints(&mut self) {
        for i in 0..self.hint_dirty.len() {
            let Some(&idx) = self.hint_dirty.get(i) else { break };
            let Some(s) = self.sessions.get_mut(idx) else { continue };
            s.hint_dirty = false;
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
            tracing::trace!(session = idx.0, ?report, ?hint, "encoder hint decision");
            // A client starts at the room's bitrate with FEC off: only changes from that are sent.
            let initial = Hint { bitrate_bps: room.bitrate_bps, fec: false, expected_loss_pct: 0 };
            if s.loss.last_hint.unwrap_or(initial) != hint {
                s.loss.last_hint = Some(hint);
                let Hint { bitrate_bps, fec, expected_loss_pct } = hint;
                self.send_session(idx, ServerMessage::BitrateHint { bitrate_bps, fec, expected_loss_pct });
            }
        }
        self.hint_dirty.clear();
    }
}
