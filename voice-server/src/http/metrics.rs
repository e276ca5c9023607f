//! What `GET /metrics` serves: the relay's series, the driver's UDP send errors, the build, and the process.
//!
//! | name | type | |
//! | --- | --- | --- |
//! | `voice_relay_…` | | the relay core's counters and the forward-latency histogram (`voice_relay::metrics`) |
//! | `voice_relay_udp_send_errors_total` | counter | datagrams the kernel refused to send (dropped) |
//! | `voice_relay_prelogin_refused_total`, `voice_relay_accept_errors_total`, `voice_relay_tls_handshake_failures_total` | counter | the driver's control listener |
//! | `voice_server_build_info` | gauge (1) | labels `version`, `protocol` |
//! | `process_cpu_seconds_total` | counter | user + system CPU time (Unix) |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes` | gauge | (Linux, `/proc/self/status`) |
//! | `process_open_fds`, `process_max_fds` | gauge | (Linux `/proc/self/fd`; the `RLIMIT_NOFILE` soft limit) |
//! | `process_threads` | gauge | (Linux) |
//!
//! Each quantity is exported once: datagrams received and sent are the relay's `voice_relay_packets_total` (the
//! driver feeds every datagram it receives to the relay and sends what the relay queued); the driver adds only what
//! the relay cannot know, the datagrams the kernel refused.

use std::fmt::Write as _;

use voice_relay::driver::MetricsSnapshot;

/// The whole `/metrics` text for `snapshot`, with `process` (see [`ProcessStats::read`]).
#[must_use]
pub fn render(snapshot: &MetricsSnapshot, process: &ProcessStats) -> String {
    // The relay's series and the driver's own counters (send errors, refused pre-login connections, accept
    // errors, TLS handshake failures), each once.
    let mut out = snapshot.render_prometheus();
    let _ = writeln!(
        out,
        "# HELP voice_server_build_info The running voice-server's version and protocol version (value 1).\n\
         # TYPE voice_server_build_info gauge\n\
         voice_server_build_info{{version=\"{}\",protocol=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        voice_proto::VERSION
    );
    let mut series = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    let p = process;
    if let Some(cpu) = p.cpu_seconds {
        series("process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.", &cpu);
    }
    if let Some(rss) = p.resident_bytes {
        series("process_resident_memory_bytes", "gauge", "Resident memory size, bytes.", &rss);
    }
    if let Some(vm) = p.virtual_bytes {
        series("process_virtual_memory_bytes", "gauge", "Virtual memory size, bytes.", &vm);
    }
    if let Some(fds) = p.open_fds {
        series("process_open_fds", "gauge", "Open file descriptors.", &fds);
    }
    if let Some(max) = p.max_fds {
        series("process_max_fds", "gauge", "Most open file descriptors allowed (soft limit).", &max);
    }
    if let Some(threads) = p.threads {
        series("process_threads", "gauge", "Threads of the process.", &threads);
    }
    out
}

/// The process's resources at one moment; `None` where this system does not tell.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ProcessStats {
    /// User + system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
}

impl ProcessStats {
    /// Reads this process's figures: `/proc/self` on Linux, `getrusage` / `getrlimit` on other Unix systems.
    #[must_use]
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
        Self {
            cpu_seconds: cpu_seconds(),
            resident_bytes: status_field(&status, "VmRSS:").map(|kib| kib * 1024),
            virtual_bytes: status_field(&status, "VmSize:").map(|kib| kib * 1024),
            // The directory listing itself holds one descriptor while it is read.
            open_fds: open_fds.map(|n| n.saturating_sub(1)),
            max_fds: max_fds(),
            threads: status_field(&status, "Threads:"),
        }
    }
}

/// The number after `key` in `/proc/self/status` text (e.g. `VmRSS:     5632 kB` → 5632).
fn status_field(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(unix)]
fn cpu_seconds() -> Option<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(seconds(u.user_time()) + seconds(u.system_time()))
}

#[cfg(not(unix))]
fn cpu_seconds() -> Option<f64> {
    None
}

#[cfg(unix)]
fn max_fds() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // RLIM_INFINITY is u64::MAX: no limit to report.
    (soft != u64::MAX).then_some(soft)
}

#[cfg(not(unix))]
fn max_fds() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_their_units() {
        let status = "Name:\tvoice-server\nVmSize:\t  123456 kB\nVmRSS:\t    5632 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(5632));
        assert_eq!(status_field(status, "VmSize:"), Some(123_456));
        assert_eq!(status_field(status, "Threads:"), Some(7));
        assert_eq!(status_field(status, "VmSwap:"), None);
        assert_eq!(status_field("VmRSS: lots", "VmRSS:"), None, "not a number: nothing, no panic");
    }
}
