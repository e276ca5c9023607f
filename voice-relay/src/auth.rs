//! Pluggable login: the relay asks an [`Authenticator`] whether a user's credential is good.
//!
//! Only [`MemoryAuthenticator`] (plaintext passwords in memory, for tests and demos) exists in this crate today. The
//! production implementations — argon2id-hashed passwords from the configuration file, and JWTs signed by the app's
//! backend — are not written yet; they will implement the same trait.

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

impl Authenticator for MemoryAuthenticator {
    fn authenticate(&self, user: &str, credential: &Credential) -> Result<UserInfo, AuthError> {
        let Credential::Password(given) = credential else { return Err(AuthError::UnsupportedCredential) };
        let expected = self.users.get(user).ok_or(AuthError::UnknownUser)?;
        if expected == given { Ok(UserInfo::new(user)) } else { Err(AuthError::WrongCredential) }
    }
}
