//! The production authenticators, implementing [`voice_relay::Authenticator`] (the relay core asks for a check
//! with `Event::Authenticate`; the relay's tokio driver runs it and answers):
//!
//! * [`PasswordFileAuthenticator`] — users from the configuration file with argon2id-hashed passwords. Slow by
//!   design (tens of ms per check with the parameters of [`hash_password`]: m = 19 MiB, t = 2, p = 1), so the
//!   driver runs it on its bounded verification pool (`voice_relay::driver::AuthPool`: one long-lived thread per
//!   core, a bounded queue in total and per address, refused as busy beyond it; accounts and addresses back off
//!   after failures): a flood of password logins costs bounded CPU and memory and never stalls forwarding. Each
//!   verification thread reuses its argon2 memory and gives it back when idle ([`Authenticator::release_memory`]);
//! * [`JwtAuthenticator`] — HS256 JWTs signed by the app's backend with a shared secret; microseconds, checked
//!   inline, expiry against the login's time (no clock read);
//! * [`CombinedAuthenticator`] — both, chosen by the credential's kind (what [`crate::Config::authenticator`]
//!   builds); it logs every login (accepted at `info`, refused at `warn`, a few per 10 s: see [`log`]).

mod jwt;
pub mod log;
mod password;

pub use jwt::JwtAuthenticator;
pub(crate) use password::check_phc;
pub use password::{PasswordFileAuthenticator, hash_password, hash_password_with_params};

use voice_proto::control::Credential;
use voice_relay::{AuthError, AuthRequest, Authenticator, UserInfo};

/// Password users and JWTs together: a [`Credential::Password`] goes to the password authenticator, a
/// [`Credential::Token`] to the JWT one; a kind with no authenticator configured is refused
/// ([`AuthError::UnsupportedCredential`]). Every outcome is logged ([`log`]).
#[derive(Debug, Default)]
pub struct CombinedAuthenticator {
    passwords: Option<PasswordFileAuthenticator>,
    jwt: Option<JwtAuthenticator>,
    refusals: std::sync::Mutex<log::RefusalLimiter>,
}

impl CombinedAuthenticator {
    /// Either, both or none of the two.
    #[must_use]
    pub fn new(passwords: Option<PasswordFileAuthenticator>, jwt: Option<JwtAuthenticator>) -> Self {
        Self { passwords, jwt, refusals: std::sync::Mutex::default() }
    }
}

impl Authenticator for CombinedAuthenticator {
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError> {
        let result = match (request.credential(), &self.passwords, &self.jwt) {
            (Credential::Password(_), Some(p), _) => p.authenticate(request),
            (Credential::Token(_), _, Some(j)) => j.authenticate(request),
            _ => Err(AuthError::UnsupportedCredential),
        };
        log::log_login(&self.refusals, request, &result);
        result
    }

    fn release_memory(&self) {
        if let Some(p) = &self.passwords {
            p.release_memory();
        }
    }

    /// Tokens are (an HMAC); passwords are not (argon2id). A kind refused at once is cheap too.
    fn is_cheap(&self, credential: &Credential) -> bool {
        match (credential, &self.passwords) {
            (Credential::Password(_), Some(p)) => p.is_cheap(credential),
            _ => true,
        }
    }
}
