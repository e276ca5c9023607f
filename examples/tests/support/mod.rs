//! Starting the server application in-process (`voice_server::Server`, what the `voice-server` binary runs) and the
//! real `voice-client` binary on loopback, reading the clients' output lines, and comparing audio. Every wait is
//! bounded; every process is killed when its handle drops, and the server stops when its handle drops.
#![allow(clippy::disallowed_methods, reason = "a test harness: deadlines for child processes' output and exit")]
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Longest wait for one expected line.
pub const LINE_WAIT: Duration = Duration::from_secs(20);

/// A child process whose stdout lines are collected by a thread.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line seen so far.
    pub seen: Vec<String>,
    errors: Receiver<String>,
    /// Every stderr line seen so far (collected by [`wait`](Self::wait)).
    pub err_seen: Vec<String>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdin = child.stdin.take();
        let lines = forward(BufReader::new(stdout), format!("[{name}] "));
        let errors = forward(BufReader::new(stderr), format!("[{name} stderr] "));
        Self { name: name.into(), child, stdin, lines, seen: Vec::new(), errors, err_seen: Vec::new() }
    }

    /// Waits (bounded) for a line satisfying `pred`; returns it.
    pub fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: no {what} within {LINE_WAIT:?}: {:?}", self.name, self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => panic!("{}: ended before {what}: {:?}", self.name, self.seen),
            }
        }
    }

    /// Writes one command line to the process's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write to stdin");
    }

    /// Waits (bounded) for the process to exit by itself; collects the rest of its lines. Both output pipes end
    /// when the process does: their ends are the events waited for, then the exit status is collected.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        for (rx, seen) in [(&self.lines, &mut self.seen), (&self.errors, &mut self.err_seen)] {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(l) => seen.push(l),
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => panic!("{} did not exit within {limit:?}", self.name),
                }
            }
        }
        self.child.wait().expect("wait for the process")
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of `from`, echoed to this process's stderr with `tag`, on a channel.
fn forward(from: impl BufRead + Send + 'static, tag: String) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in from.lines() {
            let Ok(line) = line else { break };
            eprintln!("{tag}{line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh temporary directory for one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voice-e2e-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The password of every test user.
pub const PASSWORD: &str = "pw-e2e";

/// The server application running on its own thread; stops (gracefully) when dropped.
pub struct LocalServer {
    shutdown: voice_relay::driver::ShutdownHandle,
    thread: Option<std::thread::JoinHandle<Result<voice_relay::Relay, voice_server::Error>>>,
}

impl LocalServer {
    /// Shuts the server down gracefully (clients get Goodbye) and returns its relay.
    pub fn stop(mut self) -> voice_relay::Relay {
        self.shutdown.shutdown();
        let thread = self.thread.take().expect("running");
        thread.join().expect("server thread").expect("server ran")
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the server application with a config file on loopback (ports picked by the kernel), as
/// `voice-server --config FILE` does; returns it and its control address. `extra` is appended to the `[limits]`
/// section.
pub fn start_server(dir: &Path, users: &[&str], limits: &str) -> (LocalServer, SocketAddr) {
    // Cheap argon2id costs keep debug-build logins fast; the format is the production one.
    let mut rng = voice_relay::SeededRng::new(1);
    let hash = voice_server::hash_password_with_params(PASSWORD, 64, 1, &mut rng).expect("hash");
    let mut cfg = String::from(
        "[listen]\nudp = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n[limits]\n",
    );
    cfg.push_str(limits);
    for u in users {
        cfg.push_str(&format!("\n[[users]]\nname = \"{u}\"\npassword_hash = \"{hash}\"\n"));
    }
    let path = dir.join("server.toml");
    std::fs::write(&path, cfg).expect("write config");
    let config = voice_server::Config::from_path(&path).expect("valid config");
    let server = voice_server::Server::from_config(&config).expect("server starts");
    let (addr, shutdown) = (server.tcp_addr(), server.shutdown_handle());
    let thread = server.spawn().expect("server thread");
    (LocalServer { shutdown, thread: Some(thread) }, addr)
}

/// Writes a self-signed certificate for `localhost` and its key into `dir`; returns their paths and the lines that,
/// appended to [`start_server`]'s `limits`, close that section and serve TLS with them.
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    let tls = format!("\n[tls]\ncert = {:?}\nkey = {:?}\n", cert.display().to_string(), key.display().to_string());
    (cert, key, tls)
}

/// Starts a headless `voice-client` for `user` on `server`.
pub fn start_client(user: &str, server: SocketAddr, extra: &[&str]) -> Proc {
    start_client_in(&std::env::temp_dir(), user, server, extra)
}

/// [`start_client`] with `home` as HOME (where its bookmarks file lives, under `.config`).
pub fn start_client_in(home: &Path, user: &str, server: SocketAddr, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voice-client"));
    cmd.args([
        "--headless",
        "--server",
        &server.to_string(),
        "--user",
        user,
        "--password",
        PASSWORD,
        "--room",
        "lobby",
    ])
    .args(extra)
    .env("HOME", home)
    .env_remove("XDG_CONFIG_HOME");
    Proc::spawn(user, &mut cmd)
}

/// Energy per block of `block` samples.
fn envelope(x: &[f32], block: usize) -> Vec<f32> {
    x.chunks(block).map(|c| c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).collect()
}

/// How well `played` reproduces `sent` (both 48 kHz mono): the offset is found on 5 ms energy envelopes, then each
/// 250 ms window of speech in `sent` is matched within ±20 ms; the mean of the windows' best correlations.
pub fn speech_match(sent: &[f32], played: &[f32]) -> f32 {
    const BLOCK: usize = 240;
    let (es, ep) = (envelope(sent, BLOCK), envelope(played, BLOCK));
    let mut best = (f32::NEG_INFINITY, 0usize);
    for lag in 0..ep.len().saturating_sub(es.len() / 2) {
        let n = es.len().min(ep.len() - lag);
        let c = voice_sim::audio::correlation(&es[..n], &ep[lag..lag + n]);
        if c > best.0 {
            best = (c, lag);
        }
    }
    let offset = best.1 * BLOCK;
    let (window, slack) = (12_000, 960);
    let mut scores = Vec::new();
    let mut start = 0;
    while start + window <= sent.len() {
        let a = &sent[start..start + window];
        let energy = a.iter().map(|v| v * v).sum::<f32>() / window as f32;
        let from = (offset + start).saturating_sub(slack);
        if energy > 1e-4 && from + window + 2 * slack <= played.len() {
            let (c, _) = voice_sim::audio::best_correlation(a, &played[from..from + window + 2 * slack], 2 * slack);
            scores.push(c);
        }
        start += window;
    }
    if scores.is_empty() { 0.0 } else { scores.iter().sum::<f32>() / scores.len() as f32 }
}
