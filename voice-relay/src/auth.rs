//! Login as an output of the relay: the core never checks a credential itself. A Login makes it emit
//! [`Event::Authenticate`](crate::Event::Authenticate) with an [`AuthRequest`]; whoever drives the relay checks the
//! credential (with an [`Authenticator`], at its own pace, on its own threads) and hands the answer back with
//! [`Relay::handle_auth_result`](crate::Relay::handle_auth_result). Until then the connection's later frames wait
//! in its buffer, so their order is kept.
//!
//! The relay's crate has only [`MemoryAuthenticator`] (plaintext, for tests and demos); the production ones
//! (argon2id password users, JWTs) are in the `voice-server` crate.

use std::collections::HashMap;

use voice_proto::control::Credential;

use crate::error::AuthError;
use crate::relay::ConnId;

/// Identifies one login waiting for its credential check: its connection and a number unique for the relay's
/// lifetime. An answer for an id the relay no longer waits for (the connection closed meanwhile) is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthId {
    pub(crate) conn: ConnId,
    pub(crate) n: u64,
}

impl AuthId {
    /// The id of the `n`th login check on `conn` (for authenticators' own tests; the relay numbers its own).
    #[must_use]
    pub const fn new(conn: ConnId, n: u64) -> Self {
        Self { conn, n }
    }
}

/// A login for the driver to check: who, with what credential, on which connection, and when (the time to check a
/// token's expiry against, as the relay was given it: no clock is read).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub(crate) id: AuthId,
    pub(crate) user: String,
    pub(crate) credential: Credential,
    pub(crate) unix_time_ms: u64,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Credential`'s Debug hides the secret itself.
        f.debug_struct("AuthRequest")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("credential", &self.credential)
            .field("unix_time_ms", &self.unix_time_ms)
            .finish()
    }
}

impl AuthRequest {
    /// A request as the relay makes it (for authenticators' own tests).
    #[must_use]
    pub fn new(id: AuthId, user: impl Into<String>, credential: Credential, unix_time_ms: u64) -> Self {
        Self { id, user: user.into(), credential, unix_time_ms }
    }

    /// The id to answer with ([`Relay::handle_auth_result`](crate::Relay::handle_auth_result)).
    #[must_use]
    pub fn id(&self) -> AuthId {
        self.id
    }

    /// The control connection the Login came on.
    #[must_use]
    pub fn conn(&self) -> ConnId {
        self.id.conn
    }

    /// The user name given at login (at most 64 bytes).
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password or token given at login (at most 128 or 4096 bytes).
    #[must_use]
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// When the Login arrived, in Unix milliseconds (from the `now` the relay was given and the Unix time it was
    /// built with): what a token's `exp` / `nbf` are checked against.
    #[must_use]
    pub fn unix_time_ms(&self) -> u64 {
        self.unix_time_ms
    }
}

/// What the relay learns about a user that logged in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// Name shown to other members (at most 64 bytes of UTF-8; longer names are cut at a character boundary).
    pub display_name: String,
}

impl UserInfo {
    /// A user shown as `display_name`.
    #[must_use]
    pub fn new(display_name: impl Into<String>) -> Self {
        Self { display_name: display_name.into() }
    }
}

/// Checks login credentials for whoever drives the relay (the tokio driver takes one:
/// `driver::Server::bind`). Never called by the relay core itself.
pub trait Authenticator: Send + Sync {
    /// Accepts or refuses the login in `request`. Time-dependent checks (a token's expiry) use
    /// [`AuthRequest::unix_time_ms`], never a clock.
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError>;

    /// Whether checking `credential` takes microseconds (a map lookup, an HMAC): the tokio driver then checks it
    /// on its own task. Otherwise (the default; e.g. argon2id, tens of milliseconds by design) the check runs on
    /// the driver's bounded verification pool.
    fn is_cheap(&self, credential: &Credential) -> bool {
        let _ = credential;
        false
    }

    /// Called by one of the tokio driver's verification threads after it had no work for a while
    /// (`driver::AUTH_IDLE_RELEASE`), on that thread: give back memory kept for this thread's checks (e.g. an
    /// argon2 buffer reused from one check to the next). Default: nothing.
    fn release_memory(&self) {}
}

impl<A: Authenticator + ?Sized> Authenticator for std::sync::Arc<A> {
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError> {
        (**self).authenticate(request)
    }

    fn is_cheap(&self, credential: &Credential) -> bool {
        (**self).is_cheap(credential)
    }

    fn release_memory(&self) {
        (**self).release_memory();
    }
}

/// Users and plaintext passwords held in memory. **For tests and demos only**: passwords are not hashed and the
/// comparison is plain.
#[derive(Clone, Debug, Default)]
pub struct MemoryAuthenticator {
    users: HashMap<String, String>,
}

impl MemoryAuthenticator {
    /// No users.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `user` with `password`; returns `self` for chaining.
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(user.into(), password.into());
        self
    }
}

impl Authenticator for MemoryAuthenticator {
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError> {
        let Credential::Password(given) = &request.credential else { return Err(AuthError::UnsupportedCredential) };
        let expected = self.users.get(&request.user).ok_or(AuthError::UnknownUser)?;
        if expected == given { Ok(UserInfo::new(request.user.clone())) } else { Err(AuthError::WrongCredential) }
    }

    fn is_cheap(&self, _: &Credential) -> bool {
        true
    }
}
