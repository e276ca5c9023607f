//! A slow authenticator for the driver's tests: each check says on which thread it runs, then waits until the test
//! lets it go (a channel, not a sleep; bounded); it can report each `release_memory` call.
#![allow(dead_code, unreachable_pub)]

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use voice_relay::{AuthError, AuthRequest, Authenticator, MemoryAuthenticator, UserInfo};

/// Longest a check waits to be released.
pub const BOUND: Duration = Duration::from_secs(10);

pub struct Gated {
    pub inner: MemoryAuthenticator,
    pub entered: SyncSender<String>,
    pub release: Mutex<Receiver<()>>,
    pub released_memory: Option<SyncSender<String>>,
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("unnamed").to_owned()
}

impl Authenticator for Gated {
    fn authenticate(&self, request: &AuthRequest) -> Result<UserInfo, AuthError> {
        let _ = self.entered.send(thread_name());
        let released = self.release.lock().expect("lock").recv_timeout(BOUND);
        released.map_err(|_| AuthError::Unavailable("never released".into()))?;
        self.inner.authenticate(request)
    }

    fn release_memory(&self) {
        if let Some(tx) = &self.released_memory {
            let _ = tx.try_send(thread_name());
        }
    }
}
