//! Credential checks for the core task: the relay emits [`Event::Authenticate`](crate::Event::Authenticate), the
//! core task hands the request to a [`Verifier`], and the answer goes back into the relay with
//! `Relay::handle_auth_result`.
//!
//! Cheap checks ([`Authenticator::is_cheap`]: tokens, in-memory users) run at once on the core task, without the
//! relay's lock. Slow ones (argon2id: tens of milliseconds by design) run on tokio's blocking pool, at most
//! [`AuthPool::workers`] at once, with at most [`AuthPool::queue`] more waiting; beyond that a login is refused at
//! once with [`AuthError::Busy`], so a flood of password logins costs a bounded amount of CPU, memory and threads.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::control::Cmd;
use crate::auth::{AuthRequest, Authenticator, UserInfo};
use crate::error::AuthError;

/// Most workers [`AuthPool`] takes.
pub const MAX_AUTH_WORKERS: usize = 64;

/// The bounded pool that checks slow credentials ([`super::Server::with_auth_pool`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthPool {
    /// Checks running at once, each on one of tokio's blocking threads (default: the machine's cores; 1 to
    /// [`MAX_AUTH_WORKERS`]). Each holds its hash's memory while it runs (19 MiB for the default argon2id costs).
    pub workers: usize,
    /// Checks waiting for a worker (default 64). A login beyond `workers + queue` is refused at once
    /// ([`AuthError::Busy`]: the client gets Error `RATE_LIMITED`).
    pub queue: usize,
}

impl Default for AuthPool {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self { workers: cores.min(MAX_AUTH_WORKERS), queue: 64 }
    }
}

/// The core task's side: checks requests inline or on the pool.
pub(super) struct Verifier {
    auth: Arc<dyn Authenticator>,
    /// One permit per running check.
    workers: Arc<Semaphore>,
    /// One permit per admitted check, running or waiting (`workers + queue`).
    admitted: Arc<Semaphore>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("idle_workers", &self.workers.available_permits())
            .field("free_slots", &self.admitted.available_permits())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub(super) fn new(auth: Arc<dyn Authenticator>, pool: AuthPool) -> Self {
        let workers = pool.workers.clamp(1, MAX_AUTH_WORKERS);
        let admitted = workers.saturating_add(pool.queue).min(Semaphore::MAX_PERMITS);
        Self { auth, workers: Arc::new(Semaphore::new(workers)), admitted: Arc::new(Semaphore::new(admitted)) }
    }

    /// Checks `request`: the result at once when the check is cheap or the pool is full ([`AuthError::Busy`]);
    /// `None` when it runs on the pool, whose answer comes back to the core task as [`Cmd::Authenticated`].
    pub(super) fn check(
        &self,
        request: AuthRequest,
        cmds: &mpsc::WeakSender<Cmd>,
    ) -> Option<Result<UserInfo, AuthError>> {
        if self.auth.is_cheap(request.credential()) {
            return Some(self.auth.authenticate(&request));
        }
        let Ok(admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
            return Some(Err(AuthError::Busy));
        };
        let (auth, workers, cmds) = (Arc::clone(&self.auth), Arc::clone(&self.workers), cmds.clone());
        tokio::spawn(async move {
            let _admitted = admitted;
            let Ok(_worker) = workers.acquire_owned().await else { return };
            let id = request.id();
            let checked = tokio::task::spawn_blocking(move || auth.authenticate(&request)).await;
            let result = checked.unwrap_or_else(|e| Err(AuthError::Unavailable(e.to_string())));
            if let Some(cmds) = cmds.upgrade() {
                let _ = cmds.send(Cmd::Authenticated { id, result }).await;
            }
        });
        None
    }
}
