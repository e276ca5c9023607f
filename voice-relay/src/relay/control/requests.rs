//! The control plane (`PROTOCOL.md` §5–6): login, resume, rooms, membership, chat, whisper lists.

use std::time::Instant;

use std::sync::Arc;

use bytes::BytesMut;
use voice_proto::control::{
    ClientMessage, ErrorCode, MAX_CHAT_LEN, MAX_NAME_LEN, MAX_PASSWORD_LEN, MAX_ROOMS, MAX_WHISPER_MEMBERS, Message,
    SecretBytes, ServerMessage, decode_frame,
};
use voice_proto::{ControlError, KEY_LEN, PublicId, SessionToken, WhisperTarget};

use super::Control;
use crate::error::RequestError;
use crate::ids::{RoomIdx, SessionIdx};
use crate::relay::msg::ShardCmd;
use crate::relay::{ConnId, Event};
use crate::room::{ChatEntry, Room, RoomConfig, ct_eq};
use crate::session::{Session, Whisper};

type Reply = Result<(), RequestError>;

impl Control {
    /// A control connection was accepted. (Optional: the first message on an unknown connection opens it too.)
    pub(crate) fn connection_opened(&mut self, now: Instant, conn: ConnId) {
        self.conn_entry(conn, now);
    }

    /// A control connection is gone. Its session, if any, stays alive for the resume grace period: it keeps its
    /// room and UDP binding, and audio keeps flowing (`PROTOCOL.md` §6.3).
    pub(crate) fn connection_closed(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.detach(c.session, now);
        }
    }

    fn detach(&mut self, session: Option<SessionIdx>, now: Instant) {
        if let Some(idx) = session
            && let Some(s) = self.sessions.get_mut(idx)
        {
            s.conn = None;
            s.detached_at = now;
            self.arm_grace(idx);
        }
    }

    /// Forgets `conn` and tells the driver to close it.
    pub(crate) fn close_conn(&mut self, now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.detach(c.session, now);
        }
        self.events.push_back(Event::Close { conn });
    }

    /// Feeds bytes read from control connection `conn`: the driver appends what it reads to the connection's buffer
    /// and passes it here; every complete frame is taken off the front and handled, an incomplete one is left.
    ///
    /// A framing error or a message that does not decode is fatal for this connection only (`PROTOCOL.md` §5.1):
    /// Error `BAD_REQUEST` or `TOO_LARGE` (Goodbye `UNSUPPORTED_VERSION` for a wrong version), then
    /// [`Event::Close`]; `buf` is cleared. Unknown message kinds are skipped.
    ///
    /// After a Login, the frames behind it stay in `buf` until its [`Event::Authenticate`] is answered
    /// ([`handle_auth_result`](Self::handle_auth_result)); then call this again with the same buffer (new bytes or
    /// not) to go on. The caller bounds how much it buffers meanwhile.
    pub(crate) fn handle_control_bytes(&mut self, now: Instant, conn: ConnId, buf: &mut BytesMut) {
        if buf.is_empty() {
            return;
        }
        // Only whole frames count as activity (`handle_control` and the unknown kinds below): a byte at a time
        // does not keep a connection alive.
        self.conn_entry(conn, now);
        loop {
            if self.conns.get(&conn).is_some_and(|c| c.pending.is_some()) {
                return;
            }
            let failure = match decode_frame(buf) {
                Ok(None) => return,
                Ok(Some(frame)) => match ClientMessage::decode(&frame) {
                    Ok(None) => {
                        self.conn_entry(conn, now).last_rx = now;
                        continue;
                    }
                    Ok(Some(msg)) => {
                        self.handle_control(now, conn, msg);
                        if !self.conns.contains_key(&conn) {
                            // The handler closed the connection (e.g. during shutdown): ignore the rest.
                            buf.clear();
                            return;
                        }
                        continue;
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            tracing::debug!(conn = conn.0, error = %failure, "malformed control frame: closing the connection");
            let msg = match failure {
                ControlError::UnsupportedVersion(_) => ServerMessage::Goodbye {
                    code: ErrorCode::UNSUPPORTED_VERSION,
                    message: "unsupported protocol version".into(),
                },
                ControlError::FrameTooLarge { .. } | ControlError::TooLong { .. } => {
                    ServerMessage::Error { code: ErrorCode::TOO_LARGE, message: "frame or field too large".into() }
                }
                _ => ServerMessage::Error { code: ErrorCode::BAD_REQUEST, message: "malformed frame".into() },
            };
            self.send(conn, msg);
            self.close_conn(now, conn);
            buf.clear();
            return;
        }
    }

    /// Handles one decoded control message from connection `conn`. Refusals are answered with an `Error` message
    /// (see [`RequestError`]) and leave the connection open.
    ///
    /// A Login is not answered at once: it becomes an [`Event::Authenticate`]. While that check is pending, another
    /// Login or Resume on the connection is refused (`ALREADY_LOGGED_IN`) and requests that need a session get
    /// `NOT_LOGGED_IN` ([`handle_control_bytes`](Self::handle_control_bytes) instead holds them back).
    pub(crate) fn handle_control(&mut self, now: Instant, conn: ConnId, msg: ClientMessage) {
        let control = self.s.control;
        let c = self.conn_entry(conn, now);
        c.last_rx = now;
        let (session, pending) = (c.session, c.pending.is_some());
        if !c.bucket.take(control, now, 1) {
            let e = RequestError::RateLimited;
            self.send(conn, ServerMessage::Error { code: e.code(), message: e.to_string() });
            return;
        }
        if self.shutting_down && matches!(msg, ClientMessage::Login { .. } | ClientMessage::Resume { .. }) {
            let message = RequestError::ShuttingDown.to_string();
            self.send(conn, ServerMessage::Goodbye { code: ErrorCode::SHUTTING_DOWN, message });
            self.close_conn(now, conn);
            return;
        }
        let result = match (msg, session) {
            (ClientMessage::Ping { nonce }, _) => {
                self.send(conn, ServerMessage::Pong { nonce });
                Ok(())
            }
            (ClientMessage::Pong { .. }, _) => Ok(()),
            (ClientMessage::Login { .. } | ClientMessage::Resume { .. }, Some(_)) => Err(RequestError::AlreadyLoggedIn),
            (ClientMessage::Login { .. } | ClientMessage::Resume { .. }, None) if pending => {
                Err(RequestError::LoginPending)
            }
            (ClientMessage::Login { user, credential, .. }, None) => self.request_login(now, conn, user, credential),
            (ClientMessage::Resume { token, secret }, None) => self.resume(conn, token, secret),
            // Quit (PROTOCOL.md §5.3): the session, if any, ends at once; the connection is closed either way.
            (ClientMessage::Quit, session) => {
                if let Some(idx) = session {
                    self.end_session(idx, now);
                }
                self.close_conn(now, conn);
                Ok(())
            }
            (_, None) => Err(RequestError::NotLoggedIn),
            (ClientMessage::ListRooms, Some(_)) => {
                let rooms = self.rooms.values().take(MAX_ROOMS).map(Room::info).collect();
                self.send(conn, ServerMessage::RoomList { rooms });
                Ok(())
            }
            (ClientMessage::Join { room, password }, Some(idx)) => self.join(now, idx, &room, password.as_deref()),
            (ClientMessage::Leave, Some(idx)) => {
                if self.sessions.get(idx).is_some_and(|s| s.room.is_some()) {
                    self.leave_room(idx, now);
                    self.send(conn, ServerMessage::RoomLeft);
                    Ok(())
                } else {
                    Err(RequestError::NotInRoom)
                }
            }
            (ClientMessage::SetState { muted, deafened }, Some(idx)) => {
                self.set_state(idx, muted, deafened);
                Ok(())
            }
            (ClientMessage::Chat { text }, Some(idx)) => self.chat(now, idx, text),
            (ClientMessage::SetWhisper { target, members }, Some(idx)) => self.set_whisper(idx, target, members),
            (ClientMessage::QualityReport { loss_permille, .. }, Some(idx)) => self.quality(idx, loss_permille),
            // Kinds added to the protocol later: skip, as for unknown kinds on the wire.
            (_, Some(_)) => Ok(()),
        };
        if let Err(e) = result {
            self.send(conn, ServerMessage::Error { code: e.code(), message: e.to_string() });
        }
    }

    /// Begins a graceful shutdown: every control connection gets Goodbye `SHUTTING_DOWN` and is closed; later
    /// logins and resumes are refused the same way. Sessions and forwarding carry on until the driver stops.
    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        tracing::info!(connections = self.conns.len(), sessions = self.sessions.len(), "shutting down");
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            let message = RequestError::ShuttingDown.to_string();
            self.send(conn, ServerMessage::Goodbye { code: ErrorCode::SHUTTING_DOWN, message });
            self.close_conn(now, conn);
        }
    }

    pub(crate) fn random_u32(&mut self) -> Result<u32, RequestError> {
        let mut b = [0u8; 4];
        self.rng.fill(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn resume(&mut self, conn: ConnId, token: SessionToken, secret: SecretBytes) -> Reply {
        let &idx = self.by_token.get(&token).ok_or(RequestError::ResumeFailed)?;
        let s = self.sessions.get_mut(idx).ok_or(RequestError::ResumeFailed)?;
        if !ct_eq(&s.secret, &secret.0) {
            return Err(RequestError::ResumeFailed);
        }
        let old = s.conn.replace(conn);
        let (public_id, room) = (s.public_id, s.room);
        if let Some(old) = old.filter(|&o| o != conn) {
            // The old connection is probably half-dead; the resumer proved the secret, so it wins.
            let message = "session resumed on another connection".to_string();
            self.send(old, ServerMessage::Goodbye { code: ErrorCode::REPLACED, message });
            // Forget it without detaching the session, which now belongs to `conn`.
            self.conns.remove(&old);
            self.events.push_back(Event::Close { conn: old });
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(idx);
        }
        tracing::info!(conn = conn.0, public_id = public_id.0, "session resumed");
        self.send(conn, ServerMessage::ResumeOk { public_id });
        if let Some(room) = room {
            self.send_room_state(idx, room);
            self.send_media_key(idx, room);
        }
        Ok(())
    }

    fn send_room_state(&mut self, idx: SessionIdx, room: RoomIdx) {
        let Some(r) = self.rooms.get(room) else { return };
        let members = r.members.iter().filter_map(|&m| self.sessions.get(m)).map(Session::member).collect();
        let msg = ServerMessage::RoomState { room: r.name.clone(), config: r.config, members };
        self.send_session(idx, msg);
    }

    fn send_media_key(&mut self, idx: SessionIdx, room: RoomIdx) {
        let Some(r) = self.rooms.get(room) else { return };
        let msg = ServerMessage::MediaKey { key_id: r.key_id, key: SecretBytes(r.key) };
        self.send_session(idx, msg);
    }

    fn join(&mut self, now: Instant, idx: SessionIdx, name: &str, password: Option<&str>) -> Reply {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(RequestError::RoomNotFound);
        }
        if Self::has_control_chars(name, &[]) {
            self.counters.control_chars_refused += 1;
            return Err(RequestError::ControlCharacters);
        }
        if password.is_some_and(|p| p.len() > MAX_PASSWORD_LEN) {
            return Err(RequestError::TooLarge);
        }
        let ridx = match self.room_by_name.get(name) {
            Some(&r) => r,
            None if self.s.cfg.allow_adhoc_rooms => {
                if self.rooms.len() >= self.s.cfg.max_rooms {
                    return Err(RequestError::Capacity);
                }
                let key = self.random_key()?;
                // The creator's password, if any, protects the ad-hoc room.
                let cfg = RoomConfig {
                    name: name.to_string(),
                    config: self.s.cfg.adhoc_config,
                    password: password.map(str::to_string),
                };
                let allow_voice = cfg.config.allow_voice;
                let r = self.rooms.insert(Room::new(cfg, true, key, now)).ok_or(RequestError::Capacity)?;
                self.room_by_name.insert(name.to_string(), r);
                self.counters.rooms += 1;
                self.cmds.push_back(ShardCmd::AddRoom { room: r, allow_voice });
                // Empty until the join below succeeds: removed after the linger time if it does not.
                self.arm_linger(r);
                r
            }
            None => return Err(RequestError::RoomNotFound),
        };
        let current = self.sessions.get(idx).and_then(|s| s.room);
        if current == Some(ridx) {
            // Joining the room one is in: send the state again, change nothing.
            self.send_room_state(idx, ridx);
            self.send_media_key(idx, ridx);
            return Ok(());
        }
        let room = self.rooms.get(ridx).ok_or(RequestError::RoomNotFound)?;
        if room.members.len() >= room.capacity() {
            return Err(RequestError::RoomFull);
        }
        if let Some(expected) = &room.password
            && !password.is_some_and(|p| ct_eq(expected.as_bytes(), p.as_bytes()))
        {
            return Err(RequestError::WrongRoomPassword);
        }
        self.leave_room(idx, now);
        let Some(s) = self.sessions.get_mut(idx) else { return Err(RequestError::Internal) };
        s.room = Some(ridx);
        // A new room: the client starts again from the room's encoder settings, and so does its controller.
        s.loss = crate::session::LossState::default();
        s.speaking = false;
        let member = s.member();
        self.cmds.push_back(ShardCmd::Join { idx, room: ridx });
        if let Some(room) = self.rooms.get_mut(ridx) {
            room.members.push(idx);
            room.empty_since = None;
        }
        self.send_room_state(idx, ridx);
        self.send_media_key(idx, ridx);
        if let Some(room) = self.rooms.get(ridx) {
            let history: Vec<ServerMessage> = room
                .history
                .iter()
                .map(|e| ServerMessage::Chat {
                    from: e.from,
                    from_name: e.from_name.to_string(),
                    sent_at_ms: e.sent_at_ms,
                    history: true,
                    text: e.text.to_string(),
                })
                .collect();
            for msg in history {
                self.send_session(idx, msg);
            }
        }
        tracing::info!(public_id = member.id.0, room = name, "joined");
        self.send_room(ridx, &ServerMessage::MemberJoined { member }, Some(idx));
        Ok(())
    }

    /// Takes session `idx` out of its room: the others get MemberLeft and a new media key (`PROTOCOL.md` §3.4).
    pub(crate) fn leave_room(&mut self, idx: SessionIdx, now: Instant) {
        let Some(s) = self.sessions.get_mut(idx) else { return };
        let Some(ridx) = s.room.take() else { return };
        let id = s.public_id;
        tracing::info!(public_id = id.0, "left the room");
        s.speaking = false;
        self.cmds.push_back(ShardCmd::Leave { idx });
        let key = self.random_key();
        let Some(room) = self.rooms.get_mut(ridx) else { return };
        room.members.retain(|&m| m != idx);
        if room.members.is_empty() {
            room.empty_since = Some(now);
            self.arm_linger(ridx);
        }
        let Some(room) = self.rooms.get_mut(ridx) else { return };
        // A failing random source leaves the old key in place; nothing better is possible, and the system
        // generator does not fail in practice.
        let rotated = if let Ok(key) = key {
            room.rotate(key);
            self.counters.key_rotations += 1;
            Some(ServerMessage::MediaKey { key_id: room.key_id, key: SecretBytes(room.key) })
        } else {
            None
        };
        self.send_room(ridx, &ServerMessage::MemberLeft { id }, None);
        if let Some(msg) = rotated {
            self.send_room(ridx, &msg, None);
        }
    }

    fn set_state(&mut self, idx: SessionIdx, muted: bool, deafened: bool) {
        let Some(s) = self.sessions.get_mut(idx) else { return };
        s.muted = muted;
        s.deafened = deafened;
        let stop_speaking = muted && s.speaking;
        if stop_speaking {
            s.speaking = false;
        }
        let (id, room) = (s.public_id, s.room);
        self.cmds.push_back(ShardCmd::SetState { idx, muted, deafened });
        if stop_speaking && let Some(room) = room {
            self.send_room(room, &ServerMessage::Speaking { id, speaking: false }, None);
        }
        let Some(s) = self.sessions.get(idx) else { return };
        if let Some(room) = s.room {
            let member = s.member();
            self.send_room(room, &ServerMessage::MemberUpdated { member }, None);
        }
    }

    fn chat(&mut self, now: Instant, idx: SessionIdx, text: String) -> Reply {
        if text.len() > MAX_CHAT_LEN {
            return Err(RequestError::TooLarge);
        }
        // Line breaks and tabs are text; escape sequences and other controls are not.
        if Self::has_control_chars(&text, &['\n', '\t']) {
            self.counters.control_chars_refused += 1;
            return Err(RequestError::ControlCharacters);
        }
        let s = self.sessions.get(idx).ok_or(RequestError::Internal)?;
        let ridx = s.room.ok_or(RequestError::NotInRoom)?;
        let (from, from_name) = (s.public_id, s.name.clone());
        let sent_at_ms = self.unix_ms(now);
        let msg = ServerMessage::Chat {
            from,
            from_name: from_name.to_string(),
            sent_at_ms,
            history: false,
            text: text.clone(),
        };
        let (keep, keep_bytes) = (self.s.cfg.chat_history, self.s.cfg.chat_history_bytes);
        if let Some(room) = self.rooms.get_mut(ridx)
            && keep > 0
            && text.len() <= keep_bytes
        {
            while room.history.len() >= keep || room.history_bytes + text.len() > keep_bytes {
                let Some(old) = room.history.pop_front() else { break };
                room.history_bytes -= old.text.len();
            }
            room.history_bytes += text.len();
            room.history.push_back(ChatEntry { from, from_name, sent_at_ms, text: text.into() });
        }
        self.send_room(ridx, &msg, None);
        Ok(())
    }

    fn set_whisper(&mut self, idx: SessionIdx, target: WhisperTarget, mut members: Vec<PublicId>) -> Reply {
        if target.is_room() {
            return Err(RequestError::InvalidWhisper);
        }
        if members.len() > MAX_WHISPER_MEMBERS {
            return Err(RequestError::TooLarge);
        }
        let max_lists = self.s.cfg.max_whisper_lists;
        let s = self.sessions.get(idx).ok_or(RequestError::Internal)?;
        if let Some(room) = s.room.and_then(|r| self.rooms.get(r))
            && !room.config.allow_voice
        {
            return Err(RequestError::VoiceNotAllowed);
        }
        let s = self.sessions.get_mut(idx).ok_or(RequestError::Internal)?;
        if members.is_empty() {
            s.whispers.retain(|w| w.target != target);
            self.cmds.push_back(ShardCmd::SetWhisper { idx, target, members: None });
            return Ok(());
        }
        // Each recipient once, whatever the client sent.
        members.sort_unstable();
        members.dedup();
        let members: Arc<[PublicId]> = members.into();
        if let Some(w) = s.whispers.iter_mut().find(|w| w.target == target) {
            w.members = Arc::clone(&members);
        } else if s.whispers.len() < max_lists {
            s.whispers.push(Whisper { target, members: Arc::clone(&members) });
        } else {
            return Err(RequestError::InvalidWhisper);
        }
        self.cmds.push_back(ShardCmd::SetWhisper { idx, target, members: Some(members) });
        Ok(())
    }

    fn quality(&mut self, idx: SessionIdx, loss_permille: u16) -> Reply {
        let ridx = self.sessions.get(idx).and_then(|s| s.room).ok_or(RequestError::NotInRoom)?;
        // Per mille → 1/256, like a receiver report's fraction_lost.
        let fraction = u8::try_from(u32::from(loss_permille.min(1000)) * 256 / 1000).unwrap_or(u8::MAX);
        let Some(room) = self.rooms.get(ridx) else { return Err(RequestError::NotInRoom) };
        for &m in &room.members {
            if m == idx {
                continue;
            }
            if let Some(s) = self.sessions.get_mut(m) {
                s.loss.worst = s.loss.worst.max(fraction);
                s.loss.seen = true;
                if !s.hint_dirty {
                    s.hint_dirty = true;
                    self.hint_dirty.push(m);
                }
            }
        }
        Ok(())
    }
}

const _: () = assert!(KEY_LEN == 32);
