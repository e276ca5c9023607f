//! A relay started in this process on loopback (the real `voice_relay::driver::Server` on its own thread), and the
//! CPU clocks of this process and of that thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use voice_relay::driver::{DriverStats, MetricsHandle, MetricsSnapshot, Server, ShutdownHandle};
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SeededRng};

/// A running in-process relay.
#[derive(Debug)]
pub struct LocalRelay {
    /// Control (TCP) address: what clients connect to.
    pub tcp: SocketAddr,
    /// The relay's own UDP address.
    pub udp: SocketAddr,
    /// The UDP loop's totals.
    pub stats: Arc<DriverStats>,
    metrics: MetricsHandle,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<Result<Relay, voice_relay::DriverError>>>,
}

impl LocalRelay {
    /// Starts a relay on 127.0.0.1 (free ports) with `users` (name, password) and `rooms`.
    pub fn start(users: &[(String, String)], rooms: &[String]) -> Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(users, rooms, any, any, 1)
    }

    /// Starts a relay on 127.0.0.1 (free ports) with `users` (name, password) and rooms configured by the caller.
    pub fn start_rooms(users: &[(String, String)], rooms: Vec<RoomConfig>) -> Result<Self> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_configured(users, rooms, any, any, 1)
    }

    /// Starts a relay with its UDP socket on `udp` and its control listener on `tcp`. It announces its bound UDP
    /// port in LoginOk, and clients send their datagrams to that port at the IP address of `tcp`.
    /// `udp_threads` > 1 binds that many UDP sockets with `SO_REUSEPORT`, each served by its own thread (Linux).
    pub fn start_on(
        users: &[(String, String)],
        rooms: &[String],
        udp: SocketAddr,
        tcp: SocketAddr,
        udp_threads: usize,
    ) -> Result<Self> {
        Self::start_configured(users, rooms.iter().map(RoomConfig::new).collect(), udp, tcp, udp_threads)
    }

    fn start_configured(
        users: &[(String, String)],
        rooms: Vec<RoomConfig>,
        udp: SocketAddr,
        tcp: SocketAddr,
        udp_threads: usize,
    ) -> Result<Self> {
        let auth = users.iter().fold(MemoryAuthenticator::new(), |a, (u, p)| a.with_user(u.clone(), p.clone()));
        let config = RelayConfig { rooms, max_sessions: users.len() + 16, ..RelayConfig::default() };
        let relay = Relay::new(config, Box::new(SeededRng::new(7)), Instant::now(), unix_ms())
            .context("relay configuration")?;
        let server = Server::bind(relay, auth, udp, tcp)
            .and_then(|s| s.with_udp_threads(udp_threads))
            .with_context(|| format!("binding the relay on {udp} / {tcp}"))?;
        let (tcp, udp, stats) = (server.tcp_addr(), server.udp_addr(), server.stats());
        let (metrics, shutdown) = (server.metrics_handle(), server.shutdown_handle());
        let thread = server.spawn().context("starting the relay thread")?;
        Ok(Self { tcp, udp, stats, metrics, shutdown, thread: Some(thread) })
    }

    /// The relay's counters and forward-latency histogram, asked from its core task (bounded wait).
    #[must_use]
    pub fn snapshot(&self) -> Option<MetricsSnapshot> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().ok()?;
        let handle = self.metrics.clone();
        rt.block_on(async move { tokio::time::timeout(Duration::from_secs(2), handle.snapshot()).await.ok()? })
    }

    /// Shuts the relay down and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shutdown.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LocalRelay {
    fn drop(&mut self) {
        self.halt();
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// CPU time (user + system) used so far by this whole process, all threads, including ended ones.
#[must_use]
pub fn process_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{UsageWho, getrusage};
        let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
        let tv = |t: nix::sys::time::TimeVal| {
            Some(
                Duration::from_secs(u64::try_from(t.tv_sec()).ok()?)
                    + Duration::from_micros(u64::try_from(t.tv_usec()).ok()?),
            )
        };
        Some(tv(u.user_time())? + tv(u.system_time())?)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// CPU time (user + system) used so far by the live threads of this process named `name` or `name-…` (e.g.
/// `voice-relay` and its extra UDP threads `voice-relay-udp2`, …; Linux `/proc`, counted in clock ticks of 10 ms).
#[must_use]
pub fn thread_cpu(name: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut found = false;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let comm = comm.trim_end();
        if comm != name && !comm.strip_prefix(name).is_some_and(|rest| rest.starts_with('-')) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else { continue };
        // Fields after the command name (which is in parentheses and may hold spaces): state is field 3, utime 14,
        // stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        total += Duration::from_millis((ticks(11) + ticks(12)) * 1_000 / clock_ticks_per_s());
        found = true;
    }
    found.then_some(total)
}

fn clock_ticks_per_s() -> u64 {
    #[cfg(unix)]
    {
        use nix::unistd::{SysconfVar, sysconf};
        sysconf(SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .filter(|&v| v > 0)
            .unwrap_or(100)
    }
    #[cfg(not(unix))]
    {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_clocks_read() {
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(30) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(process_cpu().is_some());
        if cfg!(target_os = "linux") {
            let me = std::thread::current().name().map(|n| n.chars().take(15).collect::<String>());
            // The test harness names the thread after the test (the kernel keeps 15 bytes).
            if let Some(name) = me {
                assert!(thread_cpu(&name).is_some(), "{name}");
            }
        }
    }
}
