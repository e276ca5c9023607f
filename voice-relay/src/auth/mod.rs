//! Pluggable login: the relay asks an [`Authenticator`] whether a user's credential is good.
//!
//! Implementations:
//! * [`PasswordFileAuthenticator`] — users from the configuration file with argon2id-hashed passwords;
//! * [`JwtAuthenticator`] — HS256 JWTs signed by the app's backend with a shared secret;
//! * [`CombinedAuthenticator`] — both, chosen by the credential's kind (what [`crate::config::Config::authenticator`]
//!   builds);
//! * [`MemoryAuthenticator`] — plaintext passwords in memory, for tests and demos only.
//!
//! # Cost on the relay's thread
//!
//! [`Authenticator::authenticate`] runs on the relay's (core) thread, and argon2id is slow **by design**: with the
//! parameters of [`hash_password`] (m = 19 MiB, t = 2, p = 1) one verification takes tens of milliseconds, during
//! which that thread forwards no audio. Each login (password logins only: JWT checks take microseconds, resumes
//! need no authenticator) therefore delays forwarding by that much, and a flood of logins with passwords is a CPU
//! cost an attacker can impose (the per-connection control rate limit bounds it per connection, not in total).
//! The tokio driver avoids this with `driver::AuthOffload` (password checks on its blocking pool, at most two at
//! once, the connection's later messages held until the result is back): use it whenever `[[users]]` are
//! configured. Stronger argon2 parameters (e.g. the 64 MiB / 3 passes of the design notes) cost proportionally more
//! per login.

mod jwt;
mod password;

pub use jwt::JwtAuthenticator;
pub(crate) use password::check_phc;
pub use password::{PasswordFileAuthenticator, hash_password, hash_password_with_params};

use std::collections::HashMap;

use voice_proto::control::Credential;

use crate::error::AuthError;

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

/// Checks login credentials. Called on the relay's thread: an implementation that needs slow work (argon2id,
/// a network call) belongs in the driver, which can check first and hand the relay a fast authenticator.
pub trait Authenticator {
    /// Accepts or refuses `user` with `credential`.
    fn authenticate(&self, user: &str, credential: &Credential) -> Result<UserInfo, AuthError>;
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

/// Password users and JWTs together: a [`Credential::Password`] goes to the password authenticator, a
/// [`Credential::Token`] to the JWT one; a kind with no authenticator configured is refused
/// ([`AuthError::UnsupportedCredential`]).
#[derive(Debug, Default)]
pub struct CombinedAuthenticator {
    passwords: Option<PasswordFileAuthenticator>,
    jwt: Option<JwtAuthenticator>,
}

impl CombinedAuthenticator {
    /// Either, both or none of the two.
    #[must_use]
    pub fn new(passwords: Option<PasswordFileAuthenticator>, jwt: Option<JwtAuthenticator>) -> Self {
        Self { passwords, jwt }
    }
}

impl Authenticator for CombinedAuthenticator {
    fn authenticate(&self, user: &str, credential: &Credential) -> Result<UserInfo, AuthError> {
        match (credential, &self.passwords, &self.jwt) {
            (Credential::Password(_), Some(p), _) => p.authenticate(user, credential),
            (Credential::Token(_), _, Some(j)) => j.authenticate(user, credential),
            _ => Err(AuthError::UnsupportedCredential),
        }
    }
}

impl Authenticator for MemoryAuthenticator {
    fn authenticate(&self, user: &str, credential: &Credential) -> Result<UserInfo, AuthError> {
        let Credential::Password(given) = credential else { return Err(AuthError::UnsupportedCredential) };
        let expected = self.users.get(user).ok_or(AuthError::UnknownUser)?;
        if expected == given { Ok(UserInfo::new(user)) } else { Err(AuthError::WrongCredential) }
    }
}
