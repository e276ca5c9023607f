//! JWTs issued by the app's backend ([`JwtAuthenticator`]).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use voice_proto::control::Credential;
use voice_relay::{AuthError, AuthRequest, Authenticator, UserInfo};

/// The claims the server reads; others are ignored.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Expiry, Unix seconds (required).
    exp: u64,
    /// Not before, Unix seconds.
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    name: Option<String>,
}

/// Accepts [`Credential::Token`]: a JWT signed with HS256 and a secret shared with the app's backend.
///
/// A token is accepted when its signature verifies, it carries `exp` and `exp` is not past (with the configured
/// leeway; `nbf` too if present), it carries `iss` equal to the configured issuer and `aud` containing the
/// configured audience (each only when configured: a configured claim is required, a token without it is refused),
/// and its `sub` equals the user name given at login. The display name is
/// the `name` claim if present, else the user name. Only HS256 is accepted (no `alg` confusion).
///
/// Time is the login's ([`AuthRequest::unix_time_ms`], from the `now` the relay was given): this reads no clock.
#[derive(Clone)]
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
    /// Tolerated clock skew on `exp` and `nbf`, seconds.
    leeway_s: u64,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator")
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway_s", &self.leeway_s)
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
        // `exp` and `nbf` are checked here against the login's time (jsonwebtoken would read the clock).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Self { key: DecodingKey::from_secret(secret), validation, leeway_s: 30 }
    }

    /// Requires an `iss` claim equal to `issuer` (none: any or no issuer).
    #[must_use]
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        match issuer {
            Some(iss) => self.validation.set_issuer(&[iss]),
            None => self.validation.iss = None,
        }
        self.require_configured_claims();
        self
    }

    /// Requires an `aud` claim that contains `audience` (none: `aud` is not checked).
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
        self.require_configured_claims();
        self
    }

    /// `exp` and `sub` always; `iss` and `aud` when an issuer or an audience is configured. (jsonwebtoken checks a
    /// configured issuer or audience only against a token that carries the claim: without this, a token that
    /// leaves them out would pass.)
    fn require_configured_claims(&mut self) {
        let mut required = vec!["exp", "sub"];
        if self.validation.iss.is_some() {
            required.push("iss");
        }
        if self.validation.aud.is_some() {
            required.push("aud");
        }
        self.validation.set_required_spec_claims(&required);
    }

    /// Clock skew tolerated on `exp` and `nbf` (whole seconds).
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway_s = leeway.as_secs();
        self
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError> {
        let Credential::Token(token) = request.credential() else { return Err(AuthError::UnsupportedCredential) };
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|_| AuthError::WrongCredential)?
            .claims;
        let now_s = request.unix_time_ms() / 1000;
        let expired = claims.exp.saturating_add(self.leeway_s) < now_s;
        let early = claims.nbf.is_some_and(|nbf| nbf > now_s.saturating_add(self.leeway_s));
        if expired || early || claims.sub != request.user() {
            return Err(AuthError::WrongCredential);
        }
        Ok(UserInfo::new(claims.name.filter(|n| !n.is_empty()).unwrap_or_else(|| request.user().to_owned())))
    }

    /// An HMAC: microseconds.
    fn is_cheap(&self, _: &Credential) -> bool {
        true
    }
}
