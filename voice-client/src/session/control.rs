//! The control plane: connection lifecycle, login / resume, rooms, chat, state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voice_proto::control::{ClientMessage, ErrorCode, Member, Message, ServerMessage, decode_frame};
use voice_proto::{PublicId, SessionSecret, WhisperTarget};

use super::{
    Conn, ConnectionCommand, EncoderHint, Event, HELLO_INTERVAL, Login, RECONNECT_MAX, RECONNECT_MIN, Room, Session,
    rotate_key,
};
use crate::Error;

impl Session {
    /// The driver opened the control connection: log in, or resume the session if it has one.
    pub fn handle_connected(&mut self, now: Instant) {
        self.ctl_in.clear();
        self.ctl_out.clear();
        self.conn = Conn::Authenticating;
        let resumable = self.login.as_ref().filter(|l| self.lost_at.is_none_or(|at| now < at + l.grace));
        let msg = match resumable {
            Some(l) => ClientMessage::Resume {
                token: l.token,
                secret: voice_proto::control::SecretBytes(*l.secret.as_bytes()),
            },
            None => {
                self.forget_session();
                ClientMessage::Login {
                    user: self.config.user.clone(),
                    credential: self.config.credential.clone(),
                    client: self.config.client_name.clone(),
                }
            }
        };
        self.send_control(&msg);
    }

    /// The control connection dropped (or could not be opened). The session reconnects after a short backoff and
    /// resumes; audio keeps flowing over UDP meanwhile.
    pub fn handle_disconnected(&mut self, now: Instant) {
        if matches!(self.conn, Conn::Down { retry_at: None }) {
            return;
        }
        if self.conn == Conn::Up {
            self.events.push_back(Event::ConnectionLost);
            self.lost_at = Some(now);
            self.reconnect_delay = RECONNECT_MIN;
        }
        self.conn = Conn::Down { retry_at: Some(now + self.reconnect_delay) };
        self.reconnect_delay = (self.reconnect_delay * 2).min(RECONNECT_MAX);
    }

    /// Bytes read from the control connection. A broken frame closes the connection (the session then
    /// reconnects and resumes, as after a drop).
    pub fn handle_control_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if !matches!(self.conn, Conn::Authenticating | Conn::Up) {
            return;
        }
        self.ctl_in.extend_from_slice(bytes);
        loop {
            let frame = match decode_frame(&mut self.ctl_in) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return self.broken_connection(now),
            };
            match ServerMessage::decode(&frame) {
                Ok(Some(msg)) => self.handle_server_message(now, msg),
                Ok(None) => {} // a kind this version does not know: skipped (PROTOCOL.md §5.1)
                Err(_) => return self.broken_connection(now),
            }
            if !matches!(self.conn, Conn::Authenticating | Conn::Up) {
                break;
            }
        }
    }

    fn broken_connection(&mut self, now: Instant) {
        self.commands.push_back(ConnectionCommand::Close);
        self.handle_disconnected(now);
    }

    /// Ends the session: sends Quit (the server ends the session at once: out of the room, the media key
    /// rotated for the others, the token no longer valid), closes the connection, never reconnects.
    pub fn close(&mut self) {
        // The last audio packet ends the talkspurt, so listeners stop at once instead of concealing.
        let _ = self.end_talkspurt();
        if self.conn == Conn::Up {
            self.send_control(&ClientMessage::Quit);
            self.commands.push_back(ConnectionCommand::Close);
        }
        self.conn = Conn::Down { retry_at: None };
        self.stop_media();
        self.events.push_back(Event::Closed { reason: None });
    }

    /// Asks for the room list ([`Event::RoomList`]).
    pub fn list_rooms(&mut self) -> Result<(), Error> {
        self.require_up()?;
        self.send_control(&ClientMessage::ListRooms);
        Ok(())
    }

    /// Joins `room` (leaving the current one).
    pub fn join(&mut self, room: &str, password: Option<&str>) -> Result<(), Error> {
        self.want_room = Some((room.to_string(), password.map(str::to_string)));
        self.require_up()?;
        self.try_send_control(&ClientMessage::Join { room: room.into(), password: password.map(Into::into) })
    }

    /// Leaves the room. A talkspurt going on ends first (END_OF_TALKSPURT), and no audio goes out while the
    /// server confirms.
    pub fn leave(&mut self) -> Result<(), Error> {
        self.want_room = None;
        self.require_up()?;
        if self.room.is_none() {
            return Err(Error::NotInRoom);
        }
        // Nothing to end (or nothing that can be sent) is fine: the leave goes out either way.
        let _ = self.end_talkspurt();
        self.leaving = true;
        self.send_control(&ClientMessage::Leave);
        Ok(())
    }

    /// Sends a chat message to the room.
    pub fn send_chat(&mut self, text: &str) -> Result<(), Error> {
        self.require_up()?;
        if self.room.is_none() {
            return Err(Error::NotInRoom);
        }
        self.try_send_control(&ClientMessage::Chat { text: text.into() })
    }

    /// Mutes (stops sending audio) or unmutes, and tells the server so members see it. Muting in the middle of a
    /// talkspurt ends it at once ([`end_talkspurt`](Self::end_talkspurt)), so receivers play silence instead of
    /// concealing; the relay drops the audio of a muted member, so the state change goes to the server two frame
    /// periods after the last frame (at a [`handle_timeout`](Self::handle_timeout)), behind that datagram.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
        if let (true, Some((_, last))) = (muted, self.talkspurt) {
            if matches!(self.end_talkspurt(), Ok(true)) {
                self.state_due = Some(last + Duration::from_millis(2 * u64::from(self.frame_ms())));
                return;
            }
        }
        self.send_state();
    }

    /// Deafens (no playout; the relay stops sending audio to this session) or undeafens.
    pub fn set_deafened(&mut self, deafened: bool) {
        self.deafened = deafened;
        if deafened {
            for sp in self.speakers.values_mut() {
                sp.reset_jitter();
            }
        }
        self.send_state();
    }

    /// Sets whisper list `target` (1..=65535) to `members` (empty clears it). Select it for sending with
    /// [`select_whisper_target`](Self::select_whisper_target).
    pub fn set_whisper(&mut self, target: WhisperTarget, members: &[PublicId]) -> Result<(), Error> {
        self.require_up()?;
        self.try_send_control(&ClientMessage::SetWhisper { target, members: members.to_vec() })
    }

    pub(super) fn send_state(&mut self) {
        self.state_due = None;
        if self.conn == Conn::Up {
            self.send_control(&ClientMessage::SetState { muted: self.muted, deafened: self.deafened });
        }
    }

    pub(super) fn send_control(&mut self, msg: &ClientMessage) {
        // Only messages built from the session's own bounded fields go through here; a failure would be a bug,
        // and dropping the message is the safe answer.
        let _ = msg.encode(&mut self.ctl_out);
    }

    fn try_send_control(&mut self, msg: &ClientMessage) -> Result<(), Error> {
        msg.encode(&mut self.ctl_out)?;
        Ok(())
    }

    /// Forgets the server-side session (after a failed resume, or before a fresh login).
    fn forget_session(&mut self) {
        if let Some(room) = self.room.take() {
            self.want_room.get_or_insert((room.name, None));
        }
        self.login = None;
        self.stop_media();
    }

    fn stop_media(&mut self) {
        self.keys = [None, None];
        self.bound = false;
        self.hello_pending = None;
        self.next_rehello = None;
        self.next_ping = None;
        self.next_report = None;
        self.speakers.clear();
    }

    fn handle_server_message(&mut self, now: Instant, msg: ServerMessage) {
        match msg {
            ServerMessage::LoginOk { token, public_id, secret, udp_port, resume_grace_s, server_name } => {
                let relay = SocketAddr::new(self.config.server.ip(), udp_port);
                let grace = Duration::from_secs(u64::from(resume_grace_s));
                let secret = SessionSecret::new(secret.0);
                let uplink = secret.uplink_key();
                self.login = Some(Login { token, public_id, secret, uplink, relay, grace });
                self.up(now);
                self.events.push_back(Event::LoggedIn { public_id, server_name });
                self.send_control(&ClientMessage::ListRooms);
                if self.muted || self.deafened {
                    self.send_state();
                }
            }
            ServerMessage::ResumeOk { .. } => {
                self.up(now);
                self.stats.resumes += 1;
                self.events.push_back(Event::Resumed);
                // The relay forgets nothing on resume, but re-sending our state is harmless and covers a change
                // made while the connection was down.
                self.send_state();
            }
            ServerMessage::RoomList { rooms } => {
                self.events.push_back(Event::RoomList(rooms));
                if self.room.is_none() {
                    if let Some((room, password)) = self.want_room.clone() {
                        self.send_control(&ClientMessage::Join { room, password });
                    }
                }
            }
            ServerMessage::RoomState { room, config, members } => {
                let rejoined = self.room.as_ref().is_some_and(|r| r.name == room);
                if !rejoined {
                    self.speakers.clear();
                }
                let map: BTreeMap<PublicId, Member> = members.iter().map(|m| (m.id, m.clone())).collect();
                self.speakers.retain(|id, _| map.contains_key(id));
                self.room = Some(Room { name: room.clone(), config, members: map });
                self.leaving = false;
                // Remember the room (and the password it was joined with) for a rejoin after a fresh login.
                let password = match self.want_room.take() {
                    Some((wanted, password)) if wanted == room => password,
                    _ => self.config.room_password.clone(),
                };
                self.want_room = Some((room.clone(), password));
                self.events.push_back(Event::Joined { room, config, members });
                self.set_room_hint(config, true);
                if !self.bound || !rejoined {
                    self.send_hello(now, HELLO_INTERVAL);
                }
            }
            ServerMessage::MemberJoined { member } => {
                if let Some(r) = &mut self.room {
                    r.members.insert(member.id, member.clone());
                }
                self.events.push_back(Event::MemberJoined(member));
            }
            ServerMessage::MemberLeft { id } => {
                if let Some(r) = &mut self.room {
                    r.members.remove(&id);
                }
                self.speakers.remove(&id);
                self.events.push_back(Event::MemberLeft(id));
            }
            ServerMessage::MemberUpdated { member } => {
                if let Some(r) = &mut self.room {
                    r.members.insert(member.id, member.clone());
                }
                self.events.push_back(Event::MemberUpdated(member));
            }
            ServerMessage::Speaking { id, speaking } => {
                if let Some(m) = self.room.as_mut().and_then(|r| r.members.get_mut(&id)) {
                    m.speaking = speaking;
                }
                self.events.push_back(Event::Speaking { id, speaking });
            }
            ServerMessage::Chat { from, from_name, sent_at_ms, history, text } => {
                self.events.push_back(Event::Chat { from, from_name, text, history, sent_at_ms });
            }
            ServerMessage::MediaKey { key_id, key } => rotate_key(&mut self.keys, key_id, &key),
            ServerMessage::ChannelConfig { config } => {
                if let Some(r) = &mut self.room {
                    if r.config.frame_ms != config.frame_ms {
                        // Jitter buffers are built for one frame duration: start the streams afresh.
                        self.speakers.clear();
                    }
                    r.config = config;
                }
                self.set_room_hint(config, false);
                self.events.push_back(Event::ChannelConfig(config));
            }
            ServerMessage::BitrateHint { bitrate_bps, fec, expected_loss_pct } => {
                let base = self.current_hint.unwrap_or_else(|| {
                    EncoderHint::for_room(&self.room.as_ref().map(|r| r.config).unwrap_or_default())
                });
                let hint = EncoderHint { bitrate_bps, fec, expected_loss_pct, ..base };
                self.current_hint = Some(hint);
                self.encoder_hint = Some(hint);
                self.events.push_back(Event::EncoderHint(hint));
            }
            ServerMessage::RoomLeft => {
                self.room = None;
                self.leaving = false;
                self.stop_media();
                self.events.push_back(Event::Left);
            }
            ServerMessage::Error { code, message } => self.server_error(code, message),
            ServerMessage::Goodbye { code, message } => {
                self.commands.push_back(ConnectionCommand::Close);
                self.conn = Conn::Down { retry_at: None };
                self.stop_media();
                self.events.push_back(Event::Closed { reason: Some((code, message)) });
            }
            ServerMessage::Ping { nonce } => self.send_control(&ClientMessage::Pong { nonce }),
            ServerMessage::Pong { nonce } => {
                let sample = Duration::from_micros(self.micros(now).saturating_sub(nonce));
                self.tcp_rtt = Some(smooth(self.tcp_rtt, sample));
            }
            _ => {}
        }
    }

    fn server_error(&mut self, code: ErrorCode, message: String) {
        if self.conn == Conn::Authenticating {
            if code == ErrorCode::RESUME_FAILED || code == ErrorCode::NOT_LOGGED_IN {
                // The session is gone on the server: log in afresh and rejoin the room.
                self.lost_at = None;
                return self.relogin();
            }
            // Bad credentials: retrying would not help.
            self.commands.push_back(ConnectionCommand::Close);
            self.conn = Conn::Down { retry_at: None };
            self.events.push_back(Event::Closed { reason: Some((code, message)) });
            return;
        }
        if code == ErrorCode::ROOM_NOT_FOUND || code == ErrorCode::ROOM_FULL || code == ErrorCode::WRONG_ROOM_PASSWORD {
            self.want_room = None;
        }
        self.events.push_back(Event::ServerError { code, message });
    }

    fn relogin(&mut self) {
        self.ctl_out.clear();
        self.forget_session();
        let msg = ClientMessage::Login {
            user: self.config.user.clone(),
            credential: self.config.credential.clone(),
            client: self.config.client_name.clone(),
        };
        self.send_control(&msg);
    }

    fn up(&mut self, now: Instant) {
        self.conn = Conn::Up;
        self.lost_at = None;
        self.reconnect_delay = RECONNECT_MIN;
        self.next_ctl_ping = Some(now + self.config.control_ping_interval);
    }

    /// A room was joined (`fresh`) or its configuration changed: the room's bitrate, frame duration and DTX; FEC
    /// starts off in a new room and stays as the relay last asked (if the room allows it) on a change.
    fn set_room_hint(&mut self, config: voice_proto::control::ChannelConfig, fresh: bool) {
        let room = EncoderHint::for_room(&config);
        let hint = match self.current_hint {
            Some(prev) if !fresh => EncoderHint {
                fec: prev.fec && config.fec,
                expected_loss_pct: if prev.fec && config.fec { prev.expected_loss_pct } else { 0 },
                ..room
            },
            _ => room,
        };
        self.current_hint = Some(hint);
        self.encoder_hint = Some(hint);
    }
}

/// Exponentially smoothed RTT (RFC 6298's 1/8 gain).
pub(super) fn smooth(old: Option<Duration>, sample: Duration) -> Duration {
    match old {
        None => sample,
        Some(old) => (old * 7 + sample) / 8,
    }
}
