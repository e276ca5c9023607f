//! JWTs issued by the app's backend ([`JwtAuthenticator`]).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use voice_proto::control::Credential;

use super::{Authenticator, UserInfo};
use crate::error::AuthError;

/// The claims the relay reads; others are ignored.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

/// Accepts [`Credential::Token`]: a JWT signed with HS256 and a secret shared with the app's backend.
///
/// A token is accepted when its signature verifies, it carries `exp` and `exp` is not past (with the configured
/// leeway; `nbf` too if present), its `iss` equals the configured issuer and its `aud` contains the configured
/// audience (each only when configured), and its `sub` equals the user name given at login. The display name is
/// the `name` claim if present, else the user name. Only HS256 is accepted (no `alg` confusion).
#[derive(Clone)]
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway_s", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    /// Tokens signed with `secret` (use at least 32 random bytes), any issuer and audience, 30 s leeway.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        // Select the pure-Rust backend explicitly, so the choice does not depend on which jsonwebtoken features
        // other crates of a build enable. Fails only if a provider is already installed, which is as good.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 30;
        Self { key: DecodingKey::from_secret(secret), validation }
    }

    /// Requires `iss` to equal `issuer` (none: any or no issuer).
    #[must_use]
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        match issuer {
            Some(iss) => self.validation.set_issuer(&[iss]),
            None => self.validation.iss = None,
        }
        self
    }

    /// Requires `aud` to contain `audience` (none: `aud` is not checked).
    #[must_use]
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        match audience {
            Some(aud) => {
                self.validation.set_audience(&[aud]);
                self.validation.validate_aud = true;
            }
            None => {
                self.validation.aud = None;
                self.validation.validate_aud = false;
            }
        }
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (whole seconds).
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, user: &str, credential: &Credential) -> Result<UserInfo, AuthError> {
        let Credential::Token(token) = credential else { return Err(AuthError::UnsupportedCredential) };
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|_| AuthError::WrongCredential)?;
        if data.claims.sub != user {
            return Err(AuthError::WrongCredential);
        }
        Ok(UserInfo::new(data.claims.name.filter(|n| !n.is_empty()).unwrap_or_else(|| user.to_owned())))
    }
}
