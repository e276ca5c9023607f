//! relay-bench: the relay under synthetic load on loopback, against a plain `sendmmsg` fan-out loop measured in the
//! same run.
//!
//! ```text
//! cargo run --release -p voice-relay --example relay-bench -- --rooms 100 --members 10 --talkers 3 --seconds 10
//! ```
//!
//! R rooms × N members log in over TCP, join, and bind their UDP sockets with a HELLO; K talkers per room send
//! sealed 20 ms packets (random bytes as "Opus", no codec) at 50 packets/s each. Phase 1 sends them to the relay
//! for `--seconds`; phase 2 sends the same packets to a plain fan-out loop (recvmmsg one batch, sendmmsg every
//! packet to the N−1 other members of its room, no parsing) for the same time. Receivers look each packet's send
//! time up in a shared table (talker, seq) and record the one-way latency. Relay and raw loop CPU are measured per
//! thread with `getrusage(RUSAGE_THREAD)` (plus, with `--udp-threads N` > 1, the extra UDP threads' CPU from
//! `/proc/self/task`, in 10 ms ticks). The relay's own forward latency (from the return of the `recvmmsg` that
//! took a packet to the return of the `sendmmsg` that sent each copy) comes from the driver's histogram
//! (`relay_forward_latency_us`). Prints one JSON object.
//!
//! With `--talkers 0` nobody talks: the relay-phase `cpu_s` is then the cost of idle sessions over `--seconds`:
//! every member sends a 0-byte UDP keepalive every `--keepalive-s` (default 10 s as `PROTOCOL.md` recommends; 0 for
//! none), and the relay runs its housekeeping (`--idle-poll-ms`: the driver's idle poll period, default 20; 0 to
//! wake per datagram as before)
//! timers over all sessions. To fit 10,000 sessions in this process's 20,000 file descriptors (client and relay
//! ends of each TCP connection live here), idle members close their control connection after setup; the sessions
//! stay alive, bound and in their rooms (resume grace set to its maximum), so the relay's timer work is the same,
//! minus the control pings real clients would send (1 per 10 s each; not measured here).
//!
//! Pacing (`--pacing`): `spread` (default) gives talker i of K the phase i/K of the 20 ms period and sends each
//! packet at its own deadline (sleep with a 1 ns timer slack, then spin for the last `--spin-us`, default 0), as
//! real talkers at independent phases would; `random` gives each talker an independent uniform phase (fixed seed);
//! `burst` is the earlier sender (sleep only when the next deadline is ≥ 1 ms away, so everything due within a
//! millisecond leaves at once). Deadlines are absolute, so the offered rate is exact; how late each packet left
//! against its deadline is reported per phase (`send_lateness_vs_deadline_us`; latency is measured from the actual
//! send, so lateness does not enter it). `--chunk N` sets the driver's `Server::with_udp_chunk` (copies of every N
//! received datagrams sent before the next N are handled). `e2e_relay_minus_raw_us` is the relay phase's end-to-end
//! percentile minus the raw loop's, from the same run.
//!
//! `--receive 0` leaves the members' sockets unread (the kernel drops at them what they cannot hold, after the relay
//! sent it): the load generator is then the sender thread alone, for saturation runs where the relay's own
//! forwarding rate is the figure (loss and latency then mean nothing).
//!
//! `--udp-threads 1,2,1,2` runs once per listed count in this process, one after the other, prints each run's
//! object on stderr and, on stdout, each count's means (relay CPU per forwarded datagram, forwarded rate, the load
//! generator's CPU: sender plus receivers threads) and their ratios to the first count's.
//!
//! Everything shares the machine: the sender and receiver threads compete with the relay for CPU, which is why the
//! per-CPU-second figures use the relay thread's own CPU time.
#![allow(
    clippy::disallowed_methods,
    reason = "a load generator and benchmark: it paces traffic and measures on the wall clock"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::resource::{UsageWho, getrusage};
use voice_proto::control::ChannelConfig;
use voice_relay::driver::{ConnLimits, IdlePoll, Server};
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, RoomConfig, SeededRng};

mod load;
mod setup;

use load::*;
use setup::*;

/// Send-time slots per talker (indexed by seq): 20 s of packets at 50/s.
pub(crate) const SLOTS: u64 = 1024;
/// Latency histogram: 1 µs buckets up to 50 ms.
pub(crate) const HIST_US: usize = 50_000;

pub(crate) const PHASE_WARMUP: u8 = 0;
pub(crate) const PHASE_RELAY: u8 = 1;
pub(crate) const PHASE_GAP: u8 = 2;
pub(crate) const PHASE_RAW: u8 = 3;
pub(crate) const PHASE_DONE: u8 = 4;

#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) rooms: usize,
    pub(crate) members: usize,
    pub(crate) talkers: usize,
    pub(crate) seconds: f64,
    pub(crate) payload: usize,
    /// Idle mode: keepalive period per member in seconds (0: none).
    pub(crate) keepalive_s: f64,
    /// The driver's idle poll period in ms (0: always wake per datagram).
    pub(crate) idle_poll_ms: u64,
    /// UDP threads of the driver (`SO_REUSEPORT`), one run each (`--udp-threads 1,2,1,2`: four runs in this
    /// process, one after the other, and their ratios).
    pub(crate) udp_threads: usize,
    pub(crate) thread_runs: Vec<usize>,
    /// How the talkers' send times are placed in each 20 ms period.
    pub(crate) pacing: Pacing,
    /// Last part of the wait before each send spent spinning instead of sleeping, in µs (spread/random only).
    pub(crate) spin_us: u64,
    /// The driver's UDP chunk (`Server::with_udp_chunk`).
    pub(crate) chunk: usize,
    /// Whether the receivers thread reads the members' sockets (`--receive 0`: it does not, so the load
    /// generator's CPU is the sender's alone; the kernel drops what the members' full sockets cannot take, after
    /// the relay paid for sending it, and loss and latency figures mean nothing).
    pub(crate) receive: bool,
}

/// Placement of the talkers' packets in each 20 ms period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Pacing {
    /// The old sender: evenly spaced deadlines, but sleeping only when the next is ≥ 1 ms away, so everything due
    /// within 1 ms leaves at once (≈ talkers / 20 packets per burst).
    Burst,
    /// Talker i at phase i/K of the period, each packet sent at its own deadline (fine sleep, optional spin).
    Spread,
    /// Each talker at an independent uniform random phase (fixed seed), each packet at its own deadline.
    Random,
}

/// The command line (see the module docs).
#[derive(Debug, clap::Parser)]
#[command(name = "relay-bench", about = "The relay under synthetic load on loopback, against a plain fan-out loop")]
struct Cli {
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Members per room (≥ 2).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Talkers per room (0: idle sessions only).
    #[arg(long, default_value_t = 2)]
    talkers: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Audio payload bytes per packet.
    #[arg(long, default_value_t = 80)]
    payload: usize,
    /// Idle mode: keepalive period per member, seconds (0: none).
    #[arg(long, default_value_t = 10.0)]
    keepalive_s: f64,
    /// The driver's idle poll period, ms (0: always wake per datagram).
    #[arg(long, default_value_t = 20)]
    idle_poll_ms: u64,
    /// UDP threads of the driver, one run per listed count (e.g. `1,2,1,2`).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    udp_threads: Vec<usize>,
    /// How the talkers' packets are placed in each 20 ms period.
    #[arg(long, value_enum, default_value = "spread")]
    pacing: Pacing,
    /// Last part of the wait before each send spent spinning, µs (spread / random only).
    #[arg(long, default_value_t = 0)]
    spin_us: u64,
    /// The driver's UDP chunk (`Server::with_udp_chunk`).
    #[arg(long, default_value_t = voice_relay::driver::DEFAULT_UDP_CHUNK)]
    chunk: usize,
    /// Whether the receivers read the members' sockets (0: they do not; loss and latency then mean nothing).
    #[arg(long, default_value_t = 1)]
    receive: u8,
}

pub(crate) fn parse_args() -> anyhow::Result<Args> {
    let c = <Cli as clap::Parser>::parse();
    let udp_threads = *c.udp_threads.first().context("--udp-threads needs a value")?;
    let a = Args {
        rooms: c.rooms,
        members: c.members,
        talkers: c.talkers,
        seconds: c.seconds,
        payload: c.payload,
        keepalive_s: c.keepalive_s,
        idle_poll_ms: c.idle_poll_ms,
        udp_threads,
        thread_runs: c.udp_threads,
        pacing: c.pacing,
        spin_us: c.spin_us,
        chunk: c.chunk,
        receive: c.receive != 0,
    };
    if a.members < 2 || a.talkers > a.members || a.rooms == 0 {
        bail!("need members >= 2 and talkers <= members (0 talkers: idle sessions only)");
    }
    Ok(a)
}

/// CPU time (user + system) of the calling thread.
pub(crate) fn thread_cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage(RUSAGE_THREAD) works on Linux");
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

/// CPU time of the driver's extra UDP threads (`voice-relay-udp*`), from `/proc/self/task/*/stat` (clock ticks of
/// 10 ms: coarse, fine over seconds).
pub(crate) fn udp_threads_cpu() -> Duration {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("voice-relay-udp") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |r| r.1);
        let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
        ticks += f.iter().sum::<u64>();
    }
    Duration::from_millis(ticks * 10)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    if args.thread_runs.len() == 1 {
        println!("{}", run(&args)?);
        return Ok(());
    }
    // Several runs in this process, one after the other (each with its own relay, members and raw-loop phase),
    // and the ratios of each thread count's mean to the first thread count's.
    let mut runs = Vec::new();
    for &threads in &args.thread_runs {
        let out = run(&Args { udp_threads: threads, thread_runs: vec![threads], ..args.clone() })?;
        eprintln!("{out}");
        runs.push(out);
    }
    let mean = |threads: usize, f: &dyn Fn(&serde_json::Value) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter(|r| r["udp_threads"] == threads).filter_map(f).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let cpu_per_forward = |r: &serde_json::Value| {
        let (cpu, n) = (r["relay"]["cpu_s"].as_f64()?, r["relay"]["forwards_sent_by_loop"].as_f64()?);
        (n > 0.0).then(|| cpu / n * 1e6)
    };
    let forwarded = |r: &serde_json::Value| r["relay"]["forwarded_pps"].as_f64();
    let load = |r: &serde_json::Value| {
        Some(r["whole_run_cpu_s"]["sender_thread"].as_f64()? + r["whole_run_cpu_s"]["receivers_thread"].as_f64()?)
    };
    let base = args.thread_runs[0];
    let mut counts = args.thread_runs.clone();
    counts.sort_unstable();
    counts.dedup();
    let per: Vec<serde_json::Value> = counts
        .iter()
        .map(|&t| {
            serde_json::json!({
                "udp_threads": t,
                "relay_cpu_us_per_forward": mean(t, &cpu_per_forward),
                "forwarded_pps": mean(t, &forwarded),
                "load_generator_cpu_s": mean(t, &load),
                "cpu_per_forward_vs_base": mean(t, &cpu_per_forward) / mean(base, &cpu_per_forward),
                "forwarded_vs_base": mean(t, &forwarded) / mean(base, &forwarded),
            })
        })
        .collect();
    println!("{}", serde_json::json!({ "base_udp_threads": base, "by_udp_threads": per, "runs": runs }));
    Ok(())
}

/// One run: a relay with `args.udp_threads` UDP threads, its members, the relay phase and the raw-loop phase.
fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let (r, n, k) = (args.rooms, args.members, args.talkers);
    let total = r * n;
    let mut auth = MemoryAuthenticator::new();
    for i in 0..total {
        auth = auth.with_user(format!("u{i}"), format!("pw-u{i}"));
    }
    let long = Duration::from_secs(7 * 24 * 3600);
    let config = RelayConfig {
        rooms: (0..r)
            .map(|i| RoomConfig::new(format!("r{i}")).with_config(ChannelConfig { max_users: 0, ..Default::default() }))
            .collect(),
        // Members that only listen send no UDP: keep their bindings (a real client sends keepalives).
        binding_idle_timeout: long,
        control_idle_timeout: long,
        resume_grace: if k == 0 { Duration::from_secs(65_535) } else { RelayConfig::default().resume_grace },
        ..RelayConfig::default()
    };
    let now = Instant::now();
    let unix_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let relay = Relay::new(config, Box::new(SeededRng::new(1)), now, unix_ms)?;
    let lo: SocketAddr = "127.0.0.1:0".parse()?;
    let idle_poll = (args.idle_poll_ms > 0)
        .then(|| IdlePoll { period: Duration::from_millis(args.idle_poll_ms), ..IdlePoll::default() });
    // Every member logs in from 127.0.0.1, one after the other as fast as it can: no pre-login limits here.
    let unlimited = ConnLimits {
        prelogin_total: usize::MAX,
        prelogin_per_ip: usize::MAX,
        accepts_per_s_per_ip: u32::MAX,
        accept_burst_per_ip: u32::MAX,
    };
    let server = Server::bind(relay, auth, lo, lo)?
        .with_conn_limits(unlimited)
        .with_idle_poll(idle_poll)
        .with_udp_threads(args.udp_threads)?
        .with_udp_chunk(args.chunk);
    let (udp_addr, tcp_addr, shutdown) = (server.udp_addr(), server.tcp_addr(), server.shutdown_handle());
    let stats = server.stats();
    // Relay-internal forward latency (recvmmsg return → sendmmsg return), read through the driver's snapshots.
    let metrics = server.metrics_handle();
    let snap_rt = tokio::runtime::Builder::new_current_thread().build()?;
    let snapshot = || snap_rt.block_on(metrics.snapshot()).context("relay thread gone");

    // The relay thread: the server plus a sampler answering "what is this thread's CPU time" on the same thread.
    let (sample_tx, mut sample_rx) = tokio::sync::mpsc::unbounded_channel::<std::sync::mpsc::Sender<Duration>>();
    let relay_thread = std::thread::Builder::new().name("voice-relay".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let sampler = async {
                while let Some(reply) = sample_rx.recv().await {
                    let _ = reply.send(thread_cpu());
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                r = server.run() => r,
                () = sampler => unreachable!("the sampler never ends"),
            }
        })
    })?;
    let relay_cpu = || -> anyhow::Result<Duration> {
        let (tx, rx) = std::sync::mpsc::channel();
        sample_tx.send(tx).ok().context("relay thread gone")?;
        Ok(rx.recv_timeout(Duration::from_secs(10))?)
    };

    // Members: login, join, hello.
    let setup_start = Instant::now();
    let mut members = Vec::with_capacity(total);
    for i in 0..total {
        members.push(join_member(&format!("u{i}"), &format!("r{}", i / n), tcp_addr, udp_addr, k > 0)?);
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    let members = Arc::new(members);
    // Talkers: the first k members of each room; (room, member index).
    let talkers: Vec<(usize, usize)> = (0..r).flat_map(|room| (0..k).map(move |j| (room, room * n + j))).collect();
    let by_public: HashMap<u32, usize> =
        talkers.iter().enumerate().map(|(ti, &(_, m))| (members[m].public_id.0, ti)).collect();
    let by_token: HashMap<u32, usize> =
        talkers.iter().enumerate().map(|(ti, &(_, m))| (members[m].token.0, ti)).collect();
    // The raw loop's fan-out table: talker address → the other members of its room.
    let addr = |m: usize| members[m].udp.local_addr().expect("bound");
    let mut fanout = HashMap::new();
    for &(room, m) in &talkers {
        let dests: Vec<SocketAddr> = (room * n..room * n + n).filter(|&o| o != m).map(addr).collect();
        fanout.insert(addr(m), dests);
    }

    let shared = Arc::new(Shared {
        phase: AtomicU8::new(PHASE_WARMUP),
        stop: AtomicBool::new(false),
        sent_at: (0..talkers.len() * SLOTS as usize).map(|_| AtomicU64::new(0)).collect(),
        sent: Default::default(),
        received: Default::default(),
        hist: [(0..=HIST_US).map(|_| AtomicU64::new(0)).collect(), (0..=HIST_US).map(|_| AtomicU64::new(0)).collect()],
        t0: Instant::now(),
        raw_sent: AtomicU64::new(0),
        pace: [(0..=HIST_US).map(|_| AtomicU64::new(0)).collect(), (0..=HIST_US).map(|_| AtomicU64::new(0)).collect()],
    });
    let raw_sock = UdpSocket::bind("127.0.0.1:0")?;
    let raw_addr = raw_sock.local_addr()?;
    let member_ports: std::collections::HashSet<u16> = (0..total).map(|m| addr(m).port()).collect();
    let relay_port: std::collections::HashSet<u16> = [udp_addr.port()].into();
    let raw_port: std::collections::HashSet<u16> = [raw_addr.port()].into();
    let raw = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new().name("raw-loop".into()).spawn(move || raw_loop(raw_sock, fanout, shared))?
    };
    let receive = args.receive;
    let rx_thread = {
        let (m, bp, bt, sh) = (Arc::clone(&members), Arc::new(by_public), Arc::new(by_token), Arc::clone(&shared));
        // Idle mode has nothing to receive (and its 10k sockets would not fit twice in the fd limit).
        std::thread::Builder::new()
            .name("receivers".into())
            .spawn(move || if k > 0 && receive { receivers(m, bp, bt, sh) } else { Duration::ZERO })?
    };
    let tx_thread = {
        let (m, sh) = (Arc::clone(&members), Arc::clone(&shared));
        let (p, keepalive_s, pacing, spin) =
            (args.payload, args.keepalive_s, args.pacing, Duration::from_micros(args.spin_us));
        std::thread::Builder::new().name("sender".into()).spawn(move || {
            if talkers.is_empty() {
                keepalives(m, udp_addr, keepalive_s, sh)
            } else {
                sender(talkers, m, udp_addr, raw_addr, p, pacing, spin, sh)
            }
        })?
    };

    let measure = Duration::from_secs_f64(args.seconds);
    let drain = Duration::from_millis(300);
    std::thread::sleep(Duration::from_secs(1)); // warm-up
    let drops = || (udp_drops(&relay_port), udp_drops(&raw_port), udp_drops(&member_ports));
    let d0 = drops();
    let cpu0 = relay_cpu()? + udp_threads_cpu();
    let sent0 = stats.datagrams_sent.load(Ordering::Relaxed);
    let fwd0 = snapshot()?.forward_latency;
    shared.phase.store(PHASE_RELAY, Ordering::Relaxed);
    std::thread::sleep(measure);
    shared.phase.store(PHASE_GAP, Ordering::Relaxed);
    let relay_cpu_s = (relay_cpu()? + udp_threads_cpu() - cpu0).as_secs_f64();
    let fwd = snapshot()?.forward_latency.since(&fwd0);
    std::thread::sleep(drain);
    let relay_sent = stats.datagrams_sent.load(Ordering::Relaxed) - sent0;
    let d1 = drops();
    shared.phase.store(PHASE_RAW, Ordering::Relaxed);
    std::thread::sleep(measure);
    shared.phase.store(PHASE_GAP, Ordering::Relaxed);
    std::thread::sleep(drain);
    let d2 = drops();
    let raw_sent = shared.raw_sent.load(Ordering::Relaxed);
    shared.phase.store(PHASE_DONE, Ordering::Relaxed);
    let raw_cpu_s = raw.join().map_err(|_| anyhow::anyhow!("raw loop panicked"))?.as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    let sender_cpu_s = tx_thread.join().map_err(|_| anyhow::anyhow!("sender panicked"))?.as_secs_f64();
    let receivers_cpu_s = rx_thread.join().map_err(|_| anyhow::anyhow!("receivers panicked"))?.as_secs_f64();
    shutdown.shutdown();
    let relay = relay_thread.join().map_err(|_| anyhow::anyhow!("relay thread panicked"))??;

    let secs = measure.as_secs_f64();
    let fan = (n - 1) as f64;
    let phase_stats = |phase: u8, h: usize, cpu_s: f64, sent_by_loop: u64, in_drops: u64, rx_drops: u64| {
        let sent = shared.sent[phase as usize].load(Ordering::Relaxed) as f64;
        let received = shared.received[phase as usize].load(Ordering::Relaxed) as f64;
        let expected = sent * fan;
        let hist = &shared.hist[h];
        serde_json::json!({
            "offered_pps": sent / secs,
            "forwarded_pps": sent_by_loop as f64 / secs,
            "received_pps": received / secs,
            "forwards_sent_by_loop": sent_by_loop,
            "kernel_drops_at_loop_socket": in_drops,
            "kernel_drops_at_receiver_sockets": rx_drops,
            "expected_forwards": expected,
            "received_forwards": received,
            "loss": if expected > 0.0 { 1.0 - received / expected } else { 0.0 },
            "latency_us": {
                "p50": percentile(hist, 0.50),
                "p99": percentile(hist, 0.99),
                "p999": percentile(hist, 0.999),
            },
            "send_lateness_vs_deadline_us": {
                "p50": percentile(&shared.pace[h], 0.50),
                "p99": percentile(&shared.pace[h], 0.99),
                "p999": percentile(&shared.pace[h], 0.999),
                "max": percentile(&shared.pace[h], 1.0),
            },
            "cpu_s": cpu_s,
            "forwarded_per_cpu_s": if cpu_s > 0.0 { sent_by_loop as f64 / cpu_s } else { 0.0 },
        })
    };
    let relay_stats = phase_stats(PHASE_RELAY, 0, relay_cpu_s, relay_sent, d1.0 - d0.0, d1.2 - d0.2);
    let raw_stats = phase_stats(PHASE_RAW, 1, raw_cpu_s, raw_sent, d2.1 - d1.1, d2.2 - d1.2);
    let ratio = relay_stats["forwarded_per_cpu_s"].as_f64().unwrap_or(0.0)
        / raw_stats["forwarded_per_cpu_s"].as_f64().unwrap_or(f64::NAN);
    let diff = |q: &str| {
        let l = |v: &serde_json::Value| v["latency_us"][q].as_i64();
        l(&relay_stats).zip(l(&raw_stats)).map(|(a, b)| a - b)
    };
    let c = relay.counters();
    let out = serde_json::json!({
        "rooms": r, "members": n, "talkers": k, "seconds": secs, "payload_bytes": args.payload,
        "packet_bytes": args.payload + voice_proto::MIN_AUDIO_LEN,
        "sessions": total, "setup_s": setup_s, "idle_poll_ms": args.idle_poll_ms,
        "udp_threads": args.udp_threads, "pacing": format!("{:?}", args.pacing).to_lowercase(),
        "spin_us": args.spin_us, "udp_chunk": args.chunk, "receive": args.receive, "idle_keepalive_s": if k == 0 { args.keepalive_s } else { 0.0 },
        "relay": relay_stats,
        "raw_sendmmsg_loop": raw_stats,
        "ratio_relay_to_raw_per_cpu_s": ratio,
        // Inside the relay: batch receive (recvmmsg returned) to the sendmmsg that sent each datagram; bucket upper
        // bounds (within 25 %). The issue's "added latency" target is best compared with this.
        "relay_forward_latency_us": {
            "samples": fwd.count(),
            "p50": fwd.quantile(0.50).map(|d| d.as_secs_f64() * 1e6),
            "p99": fwd.quantile(0.99).map(|d| d.as_secs_f64() * 1e6),
            "p999": fwd.quantile(0.999).map(|d| d.as_secs_f64() * 1e6),
        },
        // End to end, relay phase minus raw-loop phase of this run (each with its own receivers' scheduling).
        "e2e_relay_minus_raw_us": {
            "p50": diff("p50"), "p99": diff("p99"), "p999": diff("p999"),
        },
        "whole_run_cpu_s": { "sender_thread": sender_cpu_s, "receivers_thread": receivers_cpu_s },
        "relay_counters_whole_run": {
            "audio_accepted": c.audio_accepted, "audio_forwarded": c.audio_forwarded,
            "packets_in": c.packets_in, "dropped": c.dropped_total(),
        },
    });
    Ok(out)
}
