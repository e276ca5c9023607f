//! A new configuration while running ([`Control::reconfigure`]): limits and rooms change, no session ends.

use std::time::Instant;

use voice_proto::control::ServerMessage;

use super::{Control, Settings};
use crate::relay::msg::ShardCmd;
use crate::room::Room;

impl Control {
    /// Applies `new` (already checked) without ending a session or closing a connection: the control plane's
    /// limits and timeouts take effect at once (for later requests and newly armed deadlines); configured rooms
    /// are added, updated (password, voice settings, `max_users`; members are sent the new ChannelConfig) or, when
    /// no longer configured, turned into ad-hoc rooms (removed once empty for `adhoc_linger`). What the UDP threads
    /// hold stays as it was: the audio rate limits, the speaking and binding timeouts, a room's `allow_voice`, and
    /// the housekeeping and hint periods. The UDP port is the bound one.
    pub(crate) fn reconfigure(&mut self, now: Instant, mut new: Settings) {
        let old = &self.s;
        new.cfg.udp_port = old.cfg.udp_port;
        (new.packets, new.bytes) = (old.packets, old.bytes);
        (new.cfg.packets_per_s, new.cfg.packet_burst) = (old.cfg.packets_per_s, old.cfg.packet_burst);
        (new.cfg.bytes_per_s, new.cfg.byte_burst) = (old.cfg.bytes_per_s, old.cfg.byte_burst);
        new.cfg.speaking_timeout = old.cfg.speaking_timeout;
        new.cfg.binding_idle_timeout = old.cfg.binding_idle_timeout;
        new.cfg.housekeeping_interval = old.cfg.housekeeping_interval;
        new.cfg.hint_interval = old.cfg.hint_interval;
        let rooms = new.cfg.rooms.clone();
        self.s = new;
        for rc in &rooms {
            match self.room_by_name.get(&rc.name).copied() {
                Some(idx) => {
                    let Some(room) = self.rooms.get_mut(idx) else { continue };
                    room.adhoc = false;
                    room.password.clone_from(&rc.password);
                    let config =
                        voice_proto::control::ChannelConfig { allow_voice: room.config.allow_voice, ..rc.config };
                    if room.config != config {
                        room.config = config;
                        self.send_room(idx, &ServerMessage::ChannelConfig { config }, None);
                    }
                }
                None => {
                    let Ok(key) = self.random_key() else { continue };
                    let Some(idx) = self.rooms.insert(Room::new(rc.clone(), false, key, now)) else { continue };
                    self.room_by_name.insert(rc.name.clone(), idx);
                    self.counters.rooms += 1;
                    self.cmds.push_back(ShardCmd::AddRoom { room: idx, allow_voice: rc.config.allow_voice });
                }
            }
        }
        let dropped: Vec<_> = self
            .rooms
            .iter()
            .filter(|(_, r)| !r.adhoc && !rooms.iter().any(|rc| rc.name == r.name))
            .map(|(idx, _)| idx)
            .collect();
        for idx in dropped {
            if let Some(r) = self.rooms.get_mut(idx) {
                r.adhoc = true;
                if r.members.is_empty() {
                    r.empty_since = Some(now);
                }
            }
            self.arm_linger(idx);
        }
        tracing::info!(rooms = self.rooms.len(), sessions = self.sessions.len(), "configuration reloaded");
    }
}
