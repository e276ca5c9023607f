//! Scheduling priority of the client's own real-time threads (media and network). Under CPU contention — a game,
//! a build — a thread at normal priority waits behind every busy process, and audio arrives late or not at all.
//!
//! [`raise_current_thread_priority`] asks the OS for a real-time policy (Linux: `SCHED_FIFO` at a low real-time priority, which
//! needs `CAP_SYS_NICE` or an `RLIMIT_RTPRIO` grant such as PipeWire's or JACK's limits.conf entries), then for
//! the highest normal priority (a negative nice value, which needs the same kind of grant), and otherwise leaves
//! the thread as it is. Nothing fails: the result only says what was obtained.

/// What a thread got from [`raise_current_thread_priority`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThreadPriority {
    /// Real-time scheduling (Linux `SCHED_FIFO`, Windows time-critical).
    Realtime,
    /// A raised normal priority (a negative nice value on Unix).
    Raised,
    /// Unchanged: the OS refused (no privilege) or it was not asked for.
    #[default]
    Normal,
}

/// The scheduling priority the client's own real-time threads obtained ([`Client::thread_priorities`](crate::Client::thread_priorities)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThreadPriorities {
    /// The media thread (capture, encode, jitter buffers, decode, mix).
    pub media: ThreadPriority,
    /// The network thread (sockets).
    pub network: ThreadPriority,
}

/// Real-time priority used on Linux, in 1..=99: above ordinary processes, below the kernel's own threads and the
/// sound server's (PipeWire and JACK use 20–88).
#[cfg(target_os = "linux")]
const RT_PRIORITY: u8 = 10;

/// Raises the calling thread as far as the OS allows: real-time scheduling, else a raised normal priority, else
/// nothing. The [`Client`](crate::Client) does this for its media and network threads; an
/// [`AudioBackend`](crate::AudioBackend) whose device thread is its own (a paced file reader, a test device)
/// can call it there. Never fails; the result says what was obtained.
pub fn raise_current_thread_priority() -> ThreadPriority {
    use thread_priority::{ThreadPriority as P, ThreadPriorityValue};
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{RealtimeThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy};
        let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
        if let Ok(v) = ThreadPriorityValue::try_from(RT_PRIORITY)
            && set_thread_priority_and_policy(thread_priority::thread_native_id(), P::Crossplatform(v), fifo).is_ok()
        {
            return ThreadPriority::Realtime;
        }
        // Normal policy, highest priority: a nice value below zero.
        if let Ok(v) = ThreadPriorityValue::try_from(90u8)
            && thread_priority::set_current_thread_priority(P::Crossplatform(v)).is_ok()
        {
            return ThreadPriority::Raised;
        }
        ThreadPriority::Normal
    }
    #[cfg(not(target_os = "linux"))]
    {
        if thread_priority::set_current_thread_priority(P::Max).is_ok() {
            return ThreadPriority::Realtime;
        }
        let _ = ThreadPriorityValue::try_from(0u8);
        ThreadPriority::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the function reports is what the OS applied (run on a thread of its own: the policy sticks).
    #[test]
    fn the_reported_priority_is_the_one_in_force() {
        let (got, policy) =
            std::thread::spawn(|| (raise_current_thread_priority(), thread_priority::thread_schedule_policy()))
                .join()
                .expect("the thread ran");
        let policy = policy.expect("the policy can be read");
        let realtime = matches!(policy, thread_priority::ThreadSchedulePolicy::Realtime(_));
        assert_eq!(got == ThreadPriority::Realtime, realtime, "{got:?} reported, {policy:?} in force");
    }
}
