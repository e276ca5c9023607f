//! What the shards tell the control plane ([`ShardEvent`]), and the authoritative decisions taken on it.
//!
//! Shards run concurrently in the driver, so an event may describe a state the control plane has already left
//! (the session ended, left its room, muted, or roamed again): every handler checks the event against the current
//! state and ignores what no longer applies. Bindings are decided here: the newest HELLO counter wins, and the
//! decision goes back to every shard as a `Bind` command (which a shard applies unless it has seen a newer HELLO
//! itself), so all replicas converge on the binding of the newest HELLO.

use voice_proto::control::ServerMessage;

use super::Control;
use crate::relay::msg::{ShardCmd, ShardEvent};

impl Control {
    /// Handles one event from shard `shard`.
    pub(crate) fn handle_shard_event(&mut self, shard: usize, event: ShardEvent) {
        match event {
            ShardEvent::Speaking { session, room, speaking } => {
                let Some(s) = self.live(session) else { return };
                if s.room != Some(room) || (speaking && s.muted) {
                    return;
                }
                if speaking {
                    let already = s.speaking;
                    s.speaking = true;
                    s.speaking_shard = shard;
                    if already {
                        return;
                    }
                } else if s.speaking && s.speaking_shard == shard {
                    s.speaking = false;
                } else {
                    return;
                }
                let id = s.public_id;
                self.send_room(room, &ServerMessage::Speaking { id, speaking }, None);
            }
            ShardEvent::Bound { session, addr, counter } => {
                let idx = session.idx;
                let Some(s) = self.live(session) else { return };
                if s.hello_counter.is_some_and(|c| counter <= c) {
                    return; // an older HELLO, or a replay raced on another shard: the newer binding stands
                }
                s.hello_counter = Some(counter);
                let old = s.bound.replace(addr);
                if old != Some(addr) {
                    match old {
                        Some(old) if self.by_addr.get(&old) == Some(&idx) => {
                            self.by_addr.remove(&old);
                        }
                        Some(_) => {}
                        None => self.counters.bound_sessions += 1,
                    }
                    // An address belongs to one session: the latest to prove a secret from it.
                    if let Some(other) = self.by_addr.insert(addr, idx)
                        && other != idx
                        && let Some(o) = self.sessions.get_mut(other)
                        && o.bound.take().is_some()
                    {
                        self.counters.bound_sessions = self.counters.bound_sessions.saturating_sub(1);
                    }
                }
                self.cmds.push_back(ShardCmd::Bind { idx, addr, counter });
            }
            ShardEvent::Unbound { session, addr } => {
                let idx = session.idx;
                let Some(s) = self.live(session) else { return };
                if s.bound != Some(addr) {
                    return; // bound elsewhere since
                }
                s.bound = None;
                if self.by_addr.get(&addr) == Some(&idx) {
                    self.by_addr.remove(&addr);
                }
                self.counters.bound_sessions = self.counters.bound_sessions.saturating_sub(1);
                self.counters.bindings_expired += 1;
                self.cmds.push_back(ShardCmd::Unbind { idx, addr });
            }
            ShardEvent::Loss { session, about, rtt_ms } => {
                let idx = session.idx;
                let Some(s) = self.live(session) else { return };
                if let Some(rtt) = rtt_ms {
                    s.loss.rtt_ms = Some(rtt);
                }
                if let Some((worst, jitter_ms)) = about {
                    s.loss.worst = s.loss.worst.max(worst);
                    s.loss.max_jitter_ms = s.loss.max_jitter_ms.max(jitter_ms);
                    s.loss.seen = true;
                    if !s.hint_dirty {
                        s.hint_dirty = true;
                        self.hint_dirty.push(idx);
                    }
                }
            }
        }
    }
}
