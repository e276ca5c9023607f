//! Password verification off the core task ([`AuthOffload`]): argon2id takes tens of milliseconds, which on the
//! core task (under the relay's lock) would stall every UDP thread's forwarding for that long per login.
//!
//! The core task spots a complete Login frame with a password in a connection's bytes, holds it (and everything
//! the connection sends after it) back, and has the password checked on tokio's blocking pool (at most
//! [`MAX_CONCURRENT_VERIFICATIONS`] at once). When the result comes back it is stored, the held Login frame is fed
//! to the relay, whose authenticator (from [`AuthOffload::relay_authenticator`]) returns the stored result at once,
//! and the connection's later frames follow in order. Tokens (JWT) are checked inline: microseconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use tokio::sync::{Semaphore, mpsc};
use voice_proto::control::{ClientMessage, Credential, FRAME_HEADER_LEN, LEN_PREFIX, MAX_FRAME_LEN, decode_frame};

use super::control::Cmd;
use crate::auth::{Authenticator, UserInfo};
use crate::error::AuthError;
use crate::relay::ConnId;

/// Password verifications running at once (each uses one blocking thread and the hash's memory).
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 2;

/// Kind of the Login message.
const LOGIN_KIND: u16 = 0x0001;

/// A verified login: user name and SHA-256 of the password.
pub(super) type Key = (String, [u8; 32]);

/// Results waiting for the relay to ask for them.
type Results = Arc<Mutex<HashMap<Key, Result<UserInfo, AuthError>>>>;

fn key(user: &str, password: &str) -> Key {
    let digest = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(digest.as_ref());
    (user.to_owned(), k)
}

/// Moves password checks off the core task. Build the relay with [`relay_authenticator`](Self::relay_authenticator)
/// and give this to [`super::Server::with_auth_offload`]:
///
/// ```no_run
/// # fn demo(config: voice_relay::config::Config) -> Result<(), Box<dyn std::error::Error>> {
/// use voice_relay::driver::{AuthOffload, Server};
/// let offload = AuthOffload::new(config.authenticator()?);
/// let now = std::time::Instant::now();
/// let relay = voice_relay::Relay::new(
///     config.relay_config(), offload.relay_authenticator(), Box::new(voice_relay::SystemRng::new()), now, 0)?;
/// let server = Server::bind(relay, config.listen.udp, config.listen.control)?.with_auth_offload(offload);
/// # Ok(()) }
/// ```
///
/// Without `with_auth_offload` the relay's authenticator checks passwords inline (correct, but slow on the core
/// task).
#[derive(Clone)]
pub struct AuthOffload {
    inner: Arc<dyn Authenticator + Send + Sync>,
    results: Results,
}

impl std::fmt::Debug for AuthOffload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOffload").finish_non_exhaustive()
    }
}

impl AuthOffload {
    /// Offloads `authenticator`'s password checks.
    pub fn new(authenticator: impl Authenticator + Send + Sync + 'static) -> Self {
        Self { inner: Arc::new(authenticator), results: Arc::default() }
    }

    /// The authenticator to build the [`crate::Relay`] with: returns results verified off the core task, and
    /// checks inline what was not (tokens; passwords when the driver does not offload).
    #[must_use]
    pub fn relay_authenticator(&self) -> Box<dyn Authenticator + Send> {
        Box::new(Offloaded { inner: Arc::clone(&self.inner), results: Arc::clone(&self.results) })
    }
}

/// The relay's side of an [`AuthOffload`].
struct Offloaded {
    inner: Arc<dyn Authenticator + Send + Sync>,
    results: Results,
}

impl Authenticator for Offloaded {
    fn authenticate(&self, user: &str, credential: &Credential) -> Result<UserInfo, AuthError> {
        if let Credential::Password(p) = credential {
            let stored = self.results.lock().unwrap_or_else(PoisonError::into_inner).remove(&key(user, p));
            if let Some(result) = stored {
                return result;
            }
        }
        self.inner.authenticate(user, credential)
    }
}

/// The core task's side: spots password logins and has them verified on the blocking pool.
#[derive(Debug)]
pub(super) struct Verifier {
    offload: AuthOffload,
    permits: Arc<Semaphore>,
}

/// A password Login frame found in a connection's buffer.
pub(super) struct FoundLogin {
    /// Bytes before the frame (complete frames to feed first).
    pub(super) offset: usize,
    /// Length of the frame, prefix included.
    pub(super) len: usize,
    user: String,
    password: String,
}

impl Verifier {
    pub(super) fn new(offload: AuthOffload) -> Self {
        Self { offload, permits: Arc::new(Semaphore::new(MAX_CONCURRENT_VERIFICATIONS)) }
    }

    /// The first complete Login-with-password frame in `buf`, if any (scanning only complete, well-formed frame
    /// lengths; anything odd is left to the relay, which answers it).
    pub(super) fn find_login(buf: &[u8]) -> Option<FoundLogin> {
        let mut offset = 0;
        loop {
            let prefix = buf.get(offset..offset + LEN_PREFIX)?;
            let len = u32::from_be_bytes(prefix.try_into().ok()?) as usize;
            if !(FRAME_HEADER_LEN..=MAX_FRAME_LEN).contains(&len) {
                return None;
            }
            let frame = buf.get(offset..offset + LEN_PREFIX + len)?;
            let kind = u16::from_be_bytes([frame[LEN_PREFIX + 2], frame[LEN_PREFIX + 3]]);
            if kind == LOGIN_KIND {
                let mut copy = BytesMut::from(frame);
                if let Ok(Some(f)) = decode_frame(&mut copy)
                    && let Ok(Some(ClientMessage::Login { user, credential: Credential::Password(password), .. })) =
                        ClientMessage::decode(&f)
                {
                    return Some(FoundLogin { offset, len: LEN_PREFIX + len, user, password });
                }
            }
            offset += LEN_PREFIX + len;
        }
    }

    /// Starts verifying `login` for `conn`; the result comes back to the core task as [`Cmd::Verified`].
    pub(super) fn start(&self, conn: ConnId, login: FoundLogin, cmds: mpsc::WeakSender<Cmd>) {
        let (auth, permits) = (Arc::clone(&self.offload.inner), Arc::clone(&self.permits));
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let FoundLogin { user, password, .. } = login;
            let k = key(&user, &password);
            let checked =
                tokio::task::spawn_blocking(move || auth.authenticate(&user, &Credential::Password(password))).await;
            let result = checked.unwrap_or_else(|e| Err(AuthError::Unavailable(e.to_string())));
            if let Some(cmds) = cmds.upgrade() {
                let _ = cmds.send(Cmd::Verified { conn, key: k, result }).await;
            }
        });
    }

    /// Stores a verification result for the relay's authenticator to return.
    pub(super) fn store(&self, key: Key, result: Result<UserInfo, AuthError>) {
        self.offload.results.lock().unwrap_or_else(PoisonError::into_inner).insert(key, result);
    }

    /// Forgets a result the relay did not ask for (e.g. the login was refused before authentication).
    pub(super) fn forget(&self, key: &Key) {
        self.offload.results.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_password_login_after_other_frames() {
        let mut buf = BytesMut::new();
        ClientMessage::Ping { nonce: 1 }.encode(&mut buf).unwrap();
        let ping_len = buf.len();
        let token =
            ClientMessage::Login { user: "t".into(), credential: Credential::Token("jwt".into()), client: "c".into() };
        token.encode(&mut buf).unwrap();
        let offset = buf.len();
        let login =
            ClientMessage::Login { user: "u".into(), credential: Credential::Password("p".into()), client: "c".into() };
        login.encode(&mut buf).unwrap();
        let found = Verifier::find_login(&buf).expect("found");
        assert!(offset > ping_len);
        assert_eq!(
            (found.offset, found.len, found.user.as_str(), found.password.as_str()),
            (offset, buf.len() - offset, "u", "p")
        );
        // Incomplete frames and garbage are left to the relay.
        assert!(Verifier::find_login(&buf[..buf.len() - 1]).is_none());
        for cut in 0..buf.len() {
            let _ = Verifier::find_login(&buf[cut..]);
        }
        assert!(Verifier::find_login(&[0xff; 64]).is_none());
    }
}
