//! Logins (`PROTOCOL.md` §5.3): the request to the driver's authenticator, its answer, and the new session.

use std::time::Instant;

use voice_proto::control::{Credential, ErrorCode, MAX_NAME_LEN, SecretBytes, ServerMessage};
use voice_proto::{PublicId, SessionToken};

use super::Control;
use crate::auth::{AuthId, AuthRequest, UserInfo};
use crate::error::{AuthError, RequestError};
use crate::ids::SessionRef;
use crate::relay::msg::ShardCmd;
use crate::relay::{ConnId, Event};
use crate::session::{LossState, Session, truncate_name};

type Reply = Result<(), RequestError>;

impl Control {
    /// A Login on a connection without a session: asks the driver to check the credential.
    pub(crate) fn request_login(&mut self, now: Instant, conn: ConnId, user: String, credential: Credential) -> Reply {
        if Self::has_control_chars(&user, &[]) {
            self.counters.control_chars_refused += 1;
            return Err(RequestError::ControlCharacters);
        }
        // Refused before any costly check when it could not succeed anyway.
        if self.sessions.len() >= self.s.cfg.max_sessions {
            return Err(RequestError::Capacity);
        }
        let id = AuthId { conn, n: self.next_auth };
        self.next_auth += 1;
        let unix_time_ms = self.unix_ms(now);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pending = Some((id, user.as_str().into()));
        }
        self.events.push_back(Event::Authenticate(AuthRequest { id, user, credential, unix_time_ms }));
        Ok(())
    }

    /// The answer to the [`Event::Authenticate`] with `id`: on success a session is created and the client gets
    /// LoginOk; otherwise it gets Error `AUTH_FAILED` (whatever the reason, so it learns nothing about which user
    /// names exist), or `RATE_LIMITED` for [`AuthError::Busy`]. An answer for a connection that closed meanwhile,
    /// or given twice, is ignored. Then feed the connection's buffered bytes again
    /// ([`handle_control_bytes`](Self::handle_control_bytes)): the frames behind the Login were held.
    pub(crate) fn handle_auth_result(&mut self, now: Instant, id: AuthId, result: Result<UserInfo, AuthError>) {
        let conn = id.conn;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some((_, user)) = c.pending.take_if(|(pending, _)| *pending == id) else { return };
        let outcome = match result {
            _ if self.shutting_down => {
                let message = RequestError::ShuttingDown.to_string();
                self.send(conn, ServerMessage::Goodbye { code: ErrorCode::SHUTTING_DOWN, message });
                self.close_conn(now, conn);
                return;
            }
            Ok(info) => self.login(now, conn, &user, &info),
            Err(AuthError::Busy) => {
                self.counters.logins_busy += 1;
                tracing::debug!(conn = conn.0, user = &*user, "login refused: verification pool full");
                Err(RequestError::Busy)
            }
            Err(AuthError::Throttled) => {
                self.counters.logins_throttled += 1;
                tracing::debug!(conn = conn.0, user = ?user, "login refused: backing off after failed logins");
                Err(RequestError::Throttled)
            }
            Err(e) => {
                self.counters.login_failures += 1;
                if let Some(left_out) = self.refusal_log.admit(now) {
                    if left_out > 0 {
                        tracing::warn!(left_out, "refused logins not logged (more than 10 in 10 s)");
                    }
                    tracing::warn!(conn = conn.0, user = ?user, reason = %e, "login refused");
                }
                Err(RequestError::AuthFailed)
            }
        };
        if let Err(e) = outcome {
            self.send(conn, ServerMessage::Error { code: e.code(), message: e.to_string() });
        }
    }

    /// Creates the session of a login the driver accepted.
    fn login(&mut self, now: Instant, conn: ConnId, user: &str, info: &UserInfo) -> Reply {
        if self.sessions.len() >= self.s.cfg.max_sessions {
            return Err(RequestError::Capacity);
        }
        // Tokens: uniformly random, never 0, unique among live sessions. With ≤ 100k live sessions a draw collides
        // with probability < 3e-5; eight draws all colliding means the random source is broken.
        let mut token = None;
        for _ in 0..8 {
            let t = self.random_u32()?;
            if t != 0 && !self.by_token.contains_key(&SessionToken(t)) {
                token = Some(t);
                break;
            }
        }
        let token = token.ok_or(RequestError::Internal)?;
        let mut public_id = self.next_public_id;
        while public_id == 0 || self.by_public.contains_key(&PublicId(public_id)) {
            public_id = public_id.wrapping_add(1);
        }
        self.next_public_id = public_id.wrapping_add(1);
        let secret_bytes = self.random_key()?;
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        let session = Session {
            generation,
            token: SessionToken(token),
            public_id: PublicId(public_id),
            secret: secret_bytes,
            // A display name from a token's claims: control characters dropped, never shown to others.
            name: truncate_name(&info.display_name.replace(char::is_control, ""), MAX_NAME_LEN).into(),
            bound: None,
            hello_counter: None,
            conn: Some(conn),
            detached_at: now,
            room: None,
            muted: false,
            deafened: false,
            speaking: false,
            speaking_shard: 0,
            whispers: Vec::new(),
            loss: LossState::default(),
            hint_dirty: false,
            grace_timer: None,
        };
        let idx = self.sessions.insert(session).ok_or(RequestError::Capacity)?;
        self.by_token.insert(SessionToken(token), idx);
        self.by_public.insert(PublicId(public_id), idx);
        self.cmds.push_back(ShardCmd::AddSession {
            session: SessionRef { idx, generation },
            token: SessionToken(token),
            public_id: PublicId(public_id),
            secret: secret_bytes,
            at: now,
        });
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(idx);
        }
        self.counters.sessions += 1;
        self.counters.logins += 1;
        tracing::info!(conn = conn.0, ?user, public_id, "logged in");
        self.send(
            conn,
            ServerMessage::LoginOk {
                token: SessionToken(token),
                public_id: PublicId(public_id),
                secret: SecretBytes(secret_bytes),
                udp_port: self.s.cfg.udp_port,
                resume_grace_s: self.s.resume_grace_s,
                server_name: self.s.cfg.server_name.clone(),
            },
        );
        Ok(())
    }
}
