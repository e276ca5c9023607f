//! Users with argon2id-hashed passwords ([`PasswordFileAuthenticator`]) and the hashing helper for the
//! configuration file ([`hash_password`]).

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use voice_proto::control::Credential;
use voice_relay::{AuthError, AuthRequest, Authenticator, RandomSource, UserInfo};

use crate::error::ConfigError;

/// Salt length drawn by [`hash_password`] (the design notes ask for at least 16 bytes).
const SALT_LEN: usize = 16;

/// Hashes `password` with argon2id (version 0x13, m = 19 456 KiB, t = 2, p = 1: the argon2 crate's defaults, the
/// OWASP minimum) and a 16-byte salt from `rng`; returns the PHC string to put in a `[[users]]` entry's
/// `password_hash`. About tens of milliseconds per call — and per login (see the module docs of `auth`).
///
/// ```
/// use voice_relay::SystemRng;
/// use voice_server::hash_password;
///
/// let phc = hash_password("correct horse", &mut SystemRng::new())?;
/// assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
/// # Ok::<(), voice_server::ConfigError>(())
/// ```
pub fn hash_password(password: &str, rng: &mut dyn RandomSource) -> Result<String, ConfigError> {
    let p = Params::default();
    hash_password_with_params(password, p.m_cost(), p.t_cost(), rng)
}

/// [`hash_password`] with chosen argon2id costs: `memory_kib` KiB of memory (≥ 8) and `iterations` passes (≥ 1),
/// one lane. E.g. `(65_536, 3)` for the 64 MiB / 3 passes of the design notes (about 3 times the login cost of the
/// defaults per login). Fails with [`ConfigError::Hash`] on parameters argon2 refuses.
pub fn hash_password_with_params(
    password: &str,
    memory_kib: u32,
    iterations: u32,
    rng: &mut dyn RandomSource,
) -> Result<String, ConfigError> {
    let hash_err = |e: &dyn std::fmt::Display| ConfigError::Hash(e.to_string());
    let params = Params::new(memory_kib, iterations, 1, None).map_err(|e| hash_err(&e))?;
    let mut salt = [0u8; SALT_LEN];
    rng.fill(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| hash_err(&e))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon.hash_password(password.as_bytes(), &salt).map_err(|e| hash_err(&e))?;
    Ok(hash.to_string())
}

/// Checks that `phc` is an argon2id PHC string with parameters argon2 accepts.
pub(crate) fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!("algorithm is {}, not argon2id", parsed.algorithm));
    }
    Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the salt or the hash is missing".into());
    }
    Ok(())
}

/// The PHC string of a hash with the same algorithm and parameters as `phc`, whose salt and output are zeros:
/// verifying any password against it costs what verifying against `phc` costs, and never succeeds in practice.
fn dummy_like(phc: &str) -> Option<String> {
    let parsed = PasswordHash::new(phc).ok()?;
    let out_len = parsed.hash.map_or(32, |h| h.len());
    // Base64 of n zero bytes without padding is ceil(4n/3) 'A's.
    let zeros = |n: usize| "A".repeat((4 * n).div_ceil(3));
    Some(format!("$argon2id$v=19${}${}${}", parsed.params, zeros(SALT_LEN), zeros(out_len)))
}

/// A user: their PHC hash and display name.
#[derive(Clone, Debug)]
struct User {
    phc: String,
    display_name: String,
}

/// Users with argon2id-hashed passwords, as in the configuration file's `[[users]]`. Accepts only
/// [`Credential::Password`].
///
/// An unknown user name costs the same time as a wrong password: the password is verified against a dummy hash
/// with the parameters of the most expensive configured hash, so response time does not reveal which names exist.
/// Each call costs one argon2id verification (tens of ms with the default parameters), on the caller's thread, in
/// that thread's reused argon2 memory (given back by [`Authenticator::release_memory`]): the relay's tokio driver
/// runs it on its bounded verification pool (`voice_relay::driver::AuthPool`), never on the task that owns the
/// relay.
#[derive(Clone)]
pub struct PasswordFileAuthenticator {
    users: HashMap<String, User>,
    dummy: String,
    dummy_cost: u64,
}

impl std::fmt::Debug for PasswordFileAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordFileAuthenticator").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

impl Default for PasswordFileAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordFileAuthenticator {
    /// No users (every login is refused, after a dummy verification).
    #[must_use]
    pub fn new() -> Self {
        let p = Params::default();
        let dummy =
            format!("$argon2id$v=19$m={},t={},p=1${}${}", p.m_cost(), p.t_cost(), "A".repeat(22), "A".repeat(43));
        Self { users: HashMap::new(), dummy, dummy_cost: 0 }
    }

    /// Adds (or replaces) `user` with the argon2id PHC string `phc` and `display_name`; returns `self` for
    /// chaining. Fails (with the reason) if `phc` is not a usable argon2id hash.
    pub fn with_user(
        mut self,
        user: impl Into<String>,
        phc: impl Into<String>,
        display_name: impl Into<String>,
    ) -> Result<Self, String> {
        let phc = phc.into();
        check_phc(&phc)?;
        let cost = PasswordHash::new(&phc)
            .ok()
            .and_then(|h| Params::try_from(&h).ok())
            .map_or(0, |p| u64::from(p.m_cost()) * u64::from(p.t_cost()));
        if cost > self.dummy_cost
            && let Some(dummy) = dummy_like(&phc)
        {
            self.dummy = dummy;
            self.dummy_cost = cost;
        }
        self.users.insert(user.into(), User { phc, display_name: display_name.into() });
        Ok(self)
    }

    fn verify(phc: &str, password: &str) -> bool {
        // Hashes were checked when added; one that no longer parses refuses the login.
        PasswordHash::new(phc).is_ok_and(|h| verify_reusing_memory(&h, password.as_bytes()))
    }
}

/// Least capacity of the reused argon2 memory (see [`verify_reusing_memory`]): above glibc's largest dynamic mmap
/// threshold (32 MiB on 64-bit).
const MIN_RESERVE_BYTES: usize = 33 << 20;

thread_local! {
    /// The argon2 memory of this thread's last verification, reused by the next one (see
    /// [`verify_reusing_memory`]); given back by [`Authenticator::release_memory`].
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Verifies `password` against `hash` like `Argon2::verify_password`, but in this thread's reused memory: a
/// verification thread allocates its argon2 memory (19 MiB for the default costs) once instead of once per
/// login, so a login flood does not churn the allocator (whose per-thread arenas would keep the peak).
fn verify_reusing_memory(hash: &PasswordHash<'_>, password: &[u8]) -> bool {
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else { return false };
    let Ok(params) = Params::try_from(hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else { return false };
    let version = hash.version.map_or(Ok(Version::V0x13), Version::try_from);
    let Ok(version) = version else { return false };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else { return false };
    let blocks_needed = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < blocks_needed {
            if blocks.capacity() < blocks_needed {
                // Reserve more than glibc's largest dynamic mmap threshold: the buffer is then always a mapping
                // of its own, and freeing it gives its pages back at once. (A smaller one, once freed, raises the
                // threshold, and the next one comes from an arena that keeps its pages.) Untouched capacity costs
                // address space, not memory.
                let reserve = blocks_needed.max(MIN_RESERVE_BYTES / std::mem::size_of::<Block>());
                *blocks = Vec::with_capacity(reserve);
            }
            blocks.resize(blocks_needed, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..blocks_needed]).is_ok()
            && argon2::password_hash::Output::new(out).is_ok_and(|o| o == expected)
    })
}

/// Gives back this thread's argon2 memory (see [`verify_reusing_memory`]).
fn release_blocks() {
    BLOCKS.with_borrow_mut(|blocks| *blocks = Vec::new());
}

impl Authenticator for PasswordFileAuthenticator {
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError> {
        let Credential::Password(given) = request.credential() else {
            return Err(AuthError::UnsupportedCredential);
        };
        match self.users.get(request.user()) {
            Some(u) if Self::verify(&u.phc, given) => Ok(UserInfo::new(u.display_name.clone())),
            Some(_) => Err(AuthError::WrongCredential),
            None => {
                // Same work as a wrong password, so timing does not tell which user names exist.
                let _ = Self::verify(&self.dummy, given);
                Err(AuthError::UnknownUser)
            }
        }
    }

    /// Drops this thread's reused argon2 memory (the driver calls it on an idle verification thread).
    fn release_memory(&self) {
        release_blocks();
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::PasswordVerifier;

    use super::*;

    #[test]
    fn verifying_in_reused_memory_agrees_with_argon2_and_gives_the_memory_back() {
        let mut rng = voice_relay::SeededRng::new(3);
        // Two costs, the larger second and the smaller third: the buffer grows once, then is reused.
        for (m, t) in [(64, 1), (256, 2), (64, 3)] {
            let phc = hash_password_with_params("hunter2", m, t, &mut rng).expect("hashes");
            let h = PasswordHash::new(&phc).expect("parses");
            for (pw, want) in [("hunter2", true), ("hunter3", false), ("", false)] {
                assert_eq!(verify_reusing_memory(&h, pw.as_bytes()), want, "{pw} against m={m} t={t}");
                let reference = Argon2::default().verify_password(pw.as_bytes(), &h).is_ok();
                assert_eq!(reference, want);
            }
        }
        assert_eq!(BLOCKS.with_borrow(Vec::len), 256, "kept for the next check");
        release_blocks();
        assert_eq!(BLOCKS.with_borrow(Vec::capacity), 0, "given back");
    }
}
