//! Measures the login path of a real `voice-server` process on loopback and prints one JSON object:
//!
//! * `--scenario flood`: `--conns` connections (default 50) send wrong passwords (unknown user names, so every
//!   attempt costs a full argon2id check) for `--flood-s` seconds (default 60), then stop; the server's RSS
//!   (`/proc/PID/status`) before, at its peak, and `--after-s` seconds (default 30) after the flood; a legitimate
//!   login every 500 ms meanwhile (p50 / p99 of those that succeed, and how many were refused). `--from-one-ip`:
//!   every flooding connection comes from 127.0.0.2 (default: one address each, 127.0.x.y).
//! * `--scenario slow`: `--conns` connections (e.g. 1000) that each send one byte of a Login every second,
//!   reconnecting when closed, for `--flood-s` seconds: RSS, and the legitimate logins.
//! * `--scenario pingers`: `--conns` connections (e.g. 240) that ping every second without logging in,
//!   reconnecting when closed, with the server's file descriptor limit at `--server-fds` (e.g. 256): whether the
//!   legitimate logins succeed, and how many WARN lines the server wrote.
//!
//! `--cost default` hashes the user's password with the server's default argon2id costs (19 MiB, 2 passes);
//! `--cost 64m3` with 64 MiB, 3 passes. Build the server first: `cargo build --release -p voice-server`, then
//! `cargo run --release -p voice-server --example login-flood -- --server-bin target/release/voice-server …`.
#![allow(clippy::disallowed_methods, reason = "a measurement program: it reads the clock and waits")]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::BytesMut;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use voice_proto::control::{ClientMessage, Credential, Message, ServerMessage, decode_frame};

#[derive(Debug, Parser)]
#[command(name = "login-flood", about = "Login-path measurements of a real voice-server on loopback (JSON out)")]
struct Args {
    /// The server binary to run.
    #[arg(long, default_value = "target/release/voice-server")]
    server_bin: PathBuf,
    /// flood, slow or pingers.
    #[arg(long, default_value = "flood")]
    scenario: String,
    /// argon2id costs of the user's hash: `default` (19 MiB, t = 2) or `64m3` (64 MiB, t = 3).
    #[arg(long, default_value = "default")]
    cost: String,
    /// Attacking connections.
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Seconds of attack.
    #[arg(long, default_value_t = 60)]
    flood_s: u64,
    /// Seconds measured after the attack.
    #[arg(long, default_value_t = 30)]
    after_s: u64,
    /// Every attacking connection from 127.0.0.2 (default: one address each).
    #[arg(long)]
    from_one_ip: bool,
    /// The server's file descriptor limit (`ulimit -n`; 0: inherited).
    #[arg(long, default_value_t = 0)]
    server_fds: u32,
    /// Extra `[limits]` lines for the server's configuration (e.g. `login_backoff_ip_free = 1000000`).
    #[arg(long)]
    limits: Vec<String>,
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The attacker's `i`th source address.
fn source(i: usize, one_ip: bool) -> SocketAddr {
    if one_ip {
        return SocketAddr::from(([127, 0, 0, 2], 0));
    }
    let n = i + 2;
    SocketAddr::from(([127, 0, (n / 250) as u8 + 1, (n % 250) as u8 + 2], 0))
}

async fn connect_from(from: SocketAddr, to: SocketAddr) -> Option<TcpStream> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(from).ok()?;
    tokio::time::timeout(Duration::from_secs(5), sock.connect(to)).await.ok()?.ok()
}

fn frame(msg: &ClientMessage) -> BytesMut {
    let mut b = BytesMut::new();
    msg.encode(&mut b).expect("encodes");
    b
}

fn login(user: &str, password: &str) -> BytesMut {
    let credential = Credential::Password(password.into());
    frame(&ClientMessage::Login { user: user.into(), credential, client: "flood".into() })
}

/// The next message within `wait`, `None` on close, error or timeout.
async fn next(tcp: &mut TcpStream, rbuf: &mut BytesMut, wait: Duration) -> Option<ServerMessage> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Ok(Some(f)) = decode_frame(rbuf) {
            if let Ok(Some(m)) = ServerMessage::decode(&f) {
                return Some(m);
            }
            continue;
        }
        match tokio::time::timeout_at(deadline, tcp.read_buf(rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

/// One attacking connection slot, until `stop`.
async fn attacker(i: usize, a: Arc<Args>, to: SocketAddr, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(mut tcp) = connect_from(source(i, a.from_one_ip), to).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut rbuf = BytesMut::new();
        while !stop.load(Ordering::Relaxed) {
            match a.scenario.as_str() {
                "flood" => {
                    n += 1;
                    if tcp.write_all(&login(&format!("nobody-{i}-{n}"), "wrong")).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    match next(&mut tcp, &mut rbuf, Duration::from_secs(5)).await {
                        Some(_) => {}
                        None => break,
                    }
                }
                "slow" => {
                    // One byte of a Login frame per second, forever.
                    let bytes = login("slowloris", "x");
                    let b = bytes.get((n as usize) % bytes.len()).copied().unwrap_or(0);
                    n += 1;
                    if tcp.write_all(&[b]).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    if tcp_closed(&mut tcp, Duration::from_secs(1)).await {
                        break;
                    }
                }
                _ => {
                    if tcp.write_all(&frame(&ClientMessage::Ping { nonce: n })).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                    if tcp_closed(&mut tcp, Duration::from_secs(1)).await {
                        break;
                    }
                }
            }
        }
    }
}

/// Reads (and drops) what arrives for `wait`; true if the server closed the connection.
async fn tcp_closed(tcp: &mut TcpStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Legitimate logins every 500 ms until `stop`: (latencies in ms of the successes, refusals or failures).
async fn prober(to: SocketAddr, stop: Arc<AtomicBool>) -> (Vec<f64>, u64) {
    let (mut ok, mut failed) = (Vec::new(), 0);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let t0 = Instant::now();
        let Some(mut tcp) = connect_from(SocketAddr::from(([127, 0, 0, 1], 0)), to).await else {
            failed += 1;
            continue;
        };
        let mut rbuf = BytesMut::new();
        let answer = match tcp.write_all(&login("alice", "correct horse")).await {
            Ok(()) => next(&mut tcp, &mut rbuf, Duration::from_secs(10)).await,
            Err(_) => None,
        };
        match answer {
            Some(ServerMessage::LoginOk { .. }) => ok.push(t0.elapsed().as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
    }
    (ok, failed)
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let i = ((last as f64) * q).round() as usize;
    sorted.get(i.min(last)).map(|v| (v * 10.0).round() / 10.0)
}

/// RSS samples every 200 ms for `d`: the largest.
async fn sample_peak(pid: u32, d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut peak = 0;
    while Instant::now() < end {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    peak
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    let (m, t) = match args.cost.as_str() {
        "default" => (19_456, 2),
        "64m3" => (65_536, 3),
        other => bail!("--cost {other}: default or 64m3"),
    };
    let hash = voice_server::hash_password_with_params("correct horse", m, t, &mut voice_relay::SystemRng::new())?;
    let dir = std::env::temp_dir().join(format!("login-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("server.toml");
    let limits = args.limits.join("\n");
    std::fs::write(
        &config,
        format!(
            "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics_enabled = false\n\n[limits]\n{limits}\n\n\
             [[users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n"
        ),
    )?;
    let log = dir.join("server.log");
    let mut cmd = if args.server_fds > 0 {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(format!("ulimit -n {} && exec \"$0\" --config \"$1\"", args.server_fds));
        c.arg(&args.server_bin).arg(&config);
        c
    } else {
        let mut c = tokio::process::Command::new(&args.server_bin);
        c.arg("--config").arg(&config);
        c
    };
    cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(&log)?).kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("starting {}", args.server_bin.display()))?;
    let pid = child.id().context("server pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let to: SocketAddr = loop {
        let line = lines.next_line().await?.context("the server ended before listening")?;
        if let Some(addr) = line.trim().strip_prefix("control (TCP)") {
            break addr.trim().parse()?;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // Baseline: started, one login done, settled.
    let warm = prober_once(to).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let baseline = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..args.conns {
        tasks.push(tokio::spawn(attacker(i, Arc::clone(&args), to, Arc::clone(&stop), Arc::clone(&sent))));
    }
    let probe_stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn(prober(to, Arc::clone(&probe_stop)));
    let peak = sample_peak(pid, Duration::from_secs(args.flood_s)).await;
    stop.store(true, Ordering::Relaxed);
    probe_stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let (mut lat, refused) = probe.await?;
    lat.sort_by(f64::total_cmp);
    let after_peak = sample_peak(pid, Duration::from_secs(args.after_s)).await;
    let after = rss_kib(pid);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let warn_lines = log_text.lines().filter(|l| l.contains("WARN")).count();
    let out = serde_json::json!({
        "scenario": args.scenario,
        "cost": args.cost,
        "conns": args.conns,
        "from_one_ip": args.from_one_ip,
        "server_fds": args.server_fds,
        "limits": args.limits,
        "flood_s": args.flood_s,
        "after_s": args.after_s,
        "warm_login_ok": warm,
        "attack_messages_sent": sent.load(Ordering::Relaxed),
        "rss_baseline_mib": kib_to_mib(baseline),
        "rss_peak_mib": kib_to_mib(peak),
        "rss_max_after_mib": kib_to_mib(after_peak),
        "rss_after_mib": kib_to_mib(after),
        "after_vs_baseline": (after as f64 / baseline.max(1) as f64 * 1000.0).round() / 1000.0,
        "legit_logins_ok": lat.len(),
        "legit_logins_refused_or_failed": refused,
        "legit_login_p50_ms": percentile(&lat, 0.5),
        "legit_login_p99_ms": percentile(&lat, 0.99),
        "legit_login_max_ms": lat.last(),
        "server_warn_lines": warn_lines,
    });
    println!("{out}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn prober_once(to: SocketAddr) -> bool {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let h = tokio::spawn(prober(to, s));
    tokio::time::sleep(Duration::from_millis(10)).await;
    stop.store(true, Ordering::Relaxed);
    h.await.map(|(ok, _)| !ok.is_empty()).unwrap_or(false)
}

fn kib_to_mib(k: u64) -> f64 {
    (k as f64 / 1024.0 * 10.0).round() / 10.0
}
