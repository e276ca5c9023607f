//! The configuration file: defaults, the documented example, and every kind of error reported by key and line.
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]

use std::time::{Duration, Instant};

use voice_relay::{Relay, RelayConfig, SeededRng};
use voice_server::{Config, ConfigError};

/// `(key, line)` of an error, whichever kind.
fn key_line(e: &ConfigError) -> (Option<String>, usize) {
    match e {
        ConfigError::Parse { key, line, .. } => (key.clone(), *line),
        ConfigError::Invalid { key, line, .. } => (Some(key.clone()), *line),
        other => panic!("unexpected error {other:?}"),
    }
}

fn err(text: &str) -> ConfigError {
    Config::from_toml_str(text).expect_err("the text must be refused")
}

#[test]
fn empty_file_is_the_defaults() {
    let cfg = Config::from_toml_str("").unwrap();
    assert_eq!(cfg, Config::default());
    let rc = cfg.relay_config();
    let d = RelayConfig::default();
    assert_eq!(format!("{rc:?}"), format!("{d:?}"));
    assert_eq!(cfg.listen.udp.port(), 7001);
    assert_eq!(cfg.listen.control.port(), 7000);
    assert!(cfg.listen.metrics.ip().is_loopback());
}

#[test]
fn example_file_parses_and_builds_a_relay() {
    let off = include_str!("../server.example.toml");
    // As shipped, the examples that would enable a known password or secret are off...
    let shipped = Config::from_toml_str(off).unwrap();
    assert_eq!(shipped.rooms.len(), 1);
    assert!(shipped.users.is_empty() && shipped.auth.jwt.is_none());
    assert_eq!(shipped.relay_config().rooms.len(), 1);
    // ...and valid once turned on.
    let text = off.replace("\n#: ", "\n");
    let cfg = Config::from_toml_str(&text).unwrap();
    assert_eq!(cfg.rooms.len(), 3);
    assert_eq!(cfg.rooms[1].password.as_deref(), Some("example-room-password"));
    assert_eq!(cfg.rooms[1].max_users, 8);
    assert!(!cfg.rooms[2].allow_voice);
    assert_eq!(cfg.users.len(), 1);
    let jwt = cfg.auth.jwt.as_ref().unwrap();
    assert_eq!(jwt.issuer.as_deref(), Some("api.example"));
    assert!(cfg.tls.cert.as_ref().is_some_and(|p| p.ends_with("fullchain.pem")));
    assert!(shipped.tls.cert.is_none() && shipped.tls.key.is_none(), "TLS is off as shipped");
    // Keys shown with their default values really are the defaults.
    assert_eq!(cfg.limits, Config::default().limits);
    assert_eq!(cfg.listen, Config::default().listen);
    let rc = cfg.relay_config();
    assert_eq!(rc.rooms.len(), 3);
    cfg.authenticator().unwrap();
    let relay = Relay::new(rc, Box::new(SeededRng::new(1)), Instant::now(), 0).unwrap();
    assert_eq!(relay.room_count(), 3);
}

#[test]
fn tls_cert_and_key_go_together() {
    let err = Config::from_toml_str("[tls]\ncert = \"a.pem\"\n").unwrap_err();
    assert_eq!(err.to_string(), "line 2, column 8: `tls.cert`: needs `tls.key` too");
    let err = Config::from_toml_str("[tls]\nkey = \"k.pem\"\n").unwrap_err();
    assert!(err.to_string().contains("`tls.key`: needs `tls.cert` too"), "{err}");
    let cfg = Config::from_toml_str("[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n").unwrap();
    assert_eq!(cfg.tls.key.as_deref(), Some(std::path::Path::new("k.pem")));
}

#[test]
fn full_file_sets_every_section() {
    let text = r#"
[server]
name = "home"
[listen]
udp = "127.0.0.1:9001"
control = "[::1]:9000"
metrics = "127.0.0.1:9999"
metrics_enabled = false
udp_threads = 2
idle_poll_ms = 0
[limits]
max_sessions = 10
max_rooms = 5
max_whisper_lists = 2
packets_per_s = 60
packet_burst = 10
bytes_per_s = 20000
byte_burst = 4000
control_per_s = 5
control_burst = 6
chat_history = 7
chat_history_bytes = 8000
resume_grace_s = 120
binding_idle_timeout_s = 11
control_idle_timeout_s = 12
speaking_timeout_ms = 300
hint_interval_ms = 1500
housekeeping_interval_ms = 250
[[rooms]]
name = "a"
password = "pw"
max_users = 3
allow_voice = false
bitrate_bps = 64000
frame_ms = 40
channels = 2
fec = false
dtx = false
[adhoc]
allowed = false
linger_s = 60
max_users = 4
"#;
    let cfg = Config::from_toml_str(text).unwrap();
    assert_eq!((cfg.listen.udp_threads, cfg.listen.idle_poll_ms, cfg.listen.metrics_enabled), (2, 0, false));
    let rc = cfg.relay_config();
    assert_eq!(rc.server_name, "home");
    assert_eq!(rc.udp_port, 9001);
    assert_eq!((rc.max_sessions, rc.max_rooms, rc.max_whisper_lists), (10, 5, 2));
    assert_eq!((rc.packets_per_s, rc.packet_burst, rc.bytes_per_s, rc.byte_burst), (60, 10, 20_000, 4000));
    assert_eq!((rc.control_per_s, rc.control_burst, rc.chat_history, rc.chat_history_bytes), (5, 6, 7, 8000));
    assert_eq!(rc.resume_grace, Duration::from_secs(120));
    assert_eq!(rc.binding_idle_timeout, Duration::from_secs(11));
    assert_eq!(rc.control_idle_timeout, Duration::from_secs(12));
    assert_eq!(rc.speaking_timeout, Duration::from_millis(300));
    assert_eq!(rc.hint_interval, Duration::from_millis(1500));
    assert_eq!(rc.housekeeping_interval, Duration::from_millis(250));
    assert_eq!(rc.rooms.len(), 1);
    let room = &rc.rooms[0];
    assert_eq!((room.name.as_str(), room.password.as_deref()), ("a", Some("pw")));
    let c = room.config;
    assert_eq!(
        (c.max_users, c.allow_voice, c.bitrate_bps, c.frame_ms, c.channels, c.fec, c.dtx),
        (3, false, 64_000, 40, 2, false, false)
    );
    assert!(!rc.allow_adhoc_rooms);
    assert_eq!(rc.adhoc_linger, Duration::from_secs(60));
    assert_eq!(rc.adhoc_config.max_users, 4);
    Relay::new(rc, Box::new(SeededRng::new(1)), Instant::now(), 0).unwrap();
}

#[test]
fn syntax_error_is_reported_by_line() {
    let e = err("[limits]\nmax_sessions = 10\nmax_rooms = = 3\n");
    assert_eq!(key_line(&e).1, 3, "{e}");
    assert!(e.to_string().starts_with("line 3, column "), "{e}");
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let e = err("[limits]\nmax_sessions = 10\n\nmax_sesions = 3\n");
    assert_eq!(key_line(&e), (Some("limits.max_sesions".into()), 4), "{e}");
    assert!(e.to_string().contains("unknown field `max_sesions`"), "{e}");
    let e = err("[server]\nname = \"x\"\n[bogus]\nx = 1\n");
    assert_eq!(key_line(&e).1, 3, "{e}");
    assert!(e.to_string().contains("bogus"), "{e}");
    let e = err("[[rooms]]\nname = \"a\"\n[[rooms]]\nname = \"b\"\npasword = \"x\"\n");
    assert_eq!(key_line(&e), (Some("rooms[1].pasword".into()), 5), "{e}");
}

#[test]
fn wrong_type_is_named_with_its_line() {
    let e = err("[server]\nname = \"x\"\n\n[limits]\nmax_sessions = \"many\"\n");
    assert_eq!(key_line(&e), (Some("limits.max_sessions".into()), 5), "{e}");
    let e = err("[listen]\nudp = \"not an address\"\n");
    assert_eq!(key_line(&e), (Some("listen.udp".into()), 2), "{e}");
    let e = err("[limits]\npackets_per_s = -1\n");
    assert_eq!(key_line(&e), (Some("limits.packets_per_s".into()), 2), "{e}");
}

#[test]
fn zero_rate_limit_is_named_with_its_line() {
    let e = err("# comment\n[limits]\nmax_sessions = 10\npackets_per_s = 0\n");
    assert_eq!(key_line(&e), (Some("limits.packets_per_s".into()), 4), "{e}");
    assert_eq!(e.to_string(), "line 4, column 17: `limits.packets_per_s`: must be at least 1");
    let e = err("[limits]\nbyte_burst = 100\n");
    assert_eq!(key_line(&e), (Some("limits.byte_burst".into()), 2), "{e}");
    let e = err("[limits]\nresume_grace_s = 70000\n");
    assert_eq!(key_line(&e), (Some("limits.resume_grace_s".into()), 2), "{e}");
}

#[test]
fn duplicate_room_is_named_with_its_line() {
    let e = err("[[rooms]]\nname = \"a\"\n\n[[rooms]]\nname = \"b\"\n\n[[rooms]]\nmax_users = 2\nname = \"a\"\n");
    assert_eq!(key_line(&e), (Some("rooms[2].name".into()), 9), "{e}");
    assert!(e.to_string().contains("configured twice"), "{e}");
}

#[test]
fn bad_room_and_user_values_are_named_with_their_lines() {
    let e = err("[[rooms]]\nname = \"a\"\nframe_ms = 25\n");
    assert_eq!(key_line(&e), (Some("rooms[0].frame_ms".into()), 3), "{e}");
    let e = err("[[rooms]]\nmax_users = 3\n");
    assert_eq!(key_line(&e), (Some("rooms[0].name".into()), 1), "missing name points at the table: {e}");
    let e = err("[[users]]\nname = \"bob\"\npassword_hash = \"plaintext\"\n");
    assert_eq!(key_line(&e), (Some("users[0].password_hash".into()), 3), "{e}");
    let e = err("[[users]]\nname = \"bob\"\n");
    assert_eq!(key_line(&e).1, 1, "missing required key: {e}");
    assert!(e.to_string().contains("password_hash"), "{e}");
    let e = err("[auth.jwt]\nsecret = \"short\"\n");
    assert_eq!(key_line(&e), (Some("auth.jwt.secret".into()), 2), "{e}");
    let e = err("[adhoc]\nchannels = 3\n");
    assert_eq!(key_line(&e), (Some("adhoc.channels".into()), 2), "{e}");
}

#[test]
fn from_path_reads_a_file_and_reports_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("voice-server-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("relay.toml");
    std::fs::write(&path, "[server]\nname = \"from-file\"\n").unwrap();
    assert_eq!(Config::from_path(&path).unwrap().server.name, "from-file");
    let missing = dir.join("missing.toml");
    assert!(matches!(Config::from_path(&missing), Err(ConfigError::Read { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

mod never_panics {
    use proptest::prelude::*;
    use voice_server::Config;

    const KEYS: &[&str] = &[
        "[server]",
        "[listen]",
        "[limits]",
        "[[rooms]]",
        "[adhoc]",
        "[[users]]",
        "[auth.jwt]",
        "name = \"x\"",
        "udp = \"127.0.0.1:1\"",
        "max_sessions = 0",
        "packets_per_s = -3",
        "frame_ms = 25",
        "password_hash = \"$\"",
        "secret = \"s\"",
        "bogus = 1",
        "name = \"ü\"",
        "= =",
        "[",
        "\"",
        "max_users = 9999",
    ];

    proptest! {
        /// Any text, and any mix of plausible lines, gives a config or an error — never a panic.
        #[test]
        fn arbitrary_text(text in ".{0,200}") {
            let _ = Config::from_toml_str(&text);
        }

        #[test]
        fn plausible_lines(lines in proptest::collection::vec(0..KEYS.len(), 0..20)) {
            let text: Vec<&str> = lines.iter().map(|&i| KEYS[i]).collect();
            if let Err(e) = Config::from_toml_str(&text.join("\n")) {
                let _ = e.to_string();
            }
        }
    }
}
