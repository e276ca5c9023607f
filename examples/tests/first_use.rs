//! A first-time user's bad inputs, through the real `voice-client` binary on loopback: a wrong password, a server
//! that is not there, and a plain client at a TLS port each end the program with a non-zero status and a sentence
//! that says what is wrong (not a code, not silence, not a retry loop). Every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{PASSWORD, Proc, start_server, temp_dir};

/// A headless client for `user` with `password` at `server`, with `extra` arguments.
fn client(user: &str, password: &str, server: SocketAddr, extra: &[&str]) -> Proc {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_voice-client"));
    cmd.args(["--headless", "--server", &server.to_string(), "--user", user, "--password", password])
        .args(extra)
        .env("HOME", std::env::temp_dir())
        .env_remove("XDG_CONFIG_HOME");
    Proc::spawn(user, &mut cmd)
}

fn stderr(p: &Proc) -> String {
    p.err_seen.join("\n")
}

#[test]
fn a_wrong_password_exits_non_zero_in_words() {
    let dir = temp_dir("wrong-password");
    let (_server, addr) = start_server(&dir, &["alice"], "");
    let mut alice = client("alice", "not-the-password", addr, &["--seconds", "20"]);
    let status = alice.wait(Duration::from_secs(20));
    assert!(!status.success(), "a refused login is a failure");
    let err = stderr(&alice);
    assert!(err.contains("the server refused the login: wrong user name, password or token"), "{err}");
    assert!(!err.contains("closed 3"), "words, not codes: {err}");
    // The right one still works, and `/quit` is a success.
    let mut ok = client("alice", PASSWORD, addr, &["--seconds", "20"]);
    ok.expect_line("logged in", |l| l.starts_with("logged-in"));
    ok.send("/quit");
    assert!(ok.wait(Duration::from_secs(20)).success());
}

#[test]
fn an_unreachable_server_is_given_up_in_words() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("address");
    let mut c = client("alice", "pw", closed, &["--give-up-after", "1"]);
    let status = c.wait(Duration::from_secs(20));
    assert!(!status.success(), "giving up is a failure");
    let err = stderr(&c);
    assert!(err.contains(&format!("cannot reach the server: nothing listens at {closed}")), "{err}");
    assert!(err.contains("gave up after 1 s"), "{err}");
}

#[test]
fn a_plain_client_at_a_tls_port_is_told_so() {
    let dir = temp_dir("plain-at-tls");
    let (_, _, tls) = support::tls_files(&dir);
    let (_server, addr) = start_server(&dir, &["alice"], &tls);
    let mut c = client("alice", PASSWORD, addr, &["--give-up-after", "15"]);
    let status = c.wait(Duration::from_secs(20));
    assert!(!status.success());
    let err = stderr(&c);
    assert!(err.contains(&format!("the server at {addr} expects TLS on this port: add --tls")), "{err}");
    assert!(err.contains("--ca-cert"), "{err}");
}
