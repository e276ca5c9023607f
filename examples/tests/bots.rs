//! `voice-bots` in small: a handful of bots in two rooms against the in-process loopback relay for a few seconds.
//! Bounded by the talk time; asserts only what a loaded machine cannot break (packets flow, loss is small, turns are
//! heard, the figures are present), not timings.

use clap::Parser;
use voice_examples::bots::{Args, run};

#[test]
fn a_few_bots_talk_and_the_summary_is_sane() {
    let args = Args::parse_from(["voice-bots", "--bots", "5", "--rooms", "2", "--seconds", "4", "--quiet"]);
    let s = run(&args).expect("bots run");
    let json = serde_json::to_string(&s).expect("summary serializes");
    eprintln!("{json}");
    assert_eq!(s.bots, 5);
    // Rooms of 3 and 2, two talkers each: 4 talkers, each heard by 2 or 1 others. The default rooms have DTX, so the
    // silence between turns is not sent (4 talkers × 4 s would be 800 frames; about half of it is speech).
    assert!(s.packets.sent > 4 * 60, "{json}");
    assert!(s.packets.received > 0 && s.packets.received <= s.packets.expected, "{json}");
    assert!(s.packets.loss_pct < 5.0, "{json}");
    assert!(s.latency.samples > 0, "{json}");
    assert!(s.latency.missed * 4 <= s.latency.samples + s.latency.missed, "most turns heard: {json}");
    assert!(s.latency.ms.mean > 0.0 && s.latency.ms.p99 >= s.latency.ms.mean, "{json}");
    assert!(s.cpu.process_pct.is_some(), "{json}");
    let relay = s.relay.as_ref().expect("in-process relay figures");
    assert!(relay.datagrams_sent > 0, "{json}");
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let args = Args::parse_from(["voice-bots", "--bots", "2", "--rooms", "3", "--quiet"]);
    assert!(run(&args).is_err());
    let args = Args::parse_from(["voice-bots", "--bots", "2", "--seconds", "0", "--quiet"]);
    assert!(run(&args).is_err());
    let args = Args::parse_from(["voice-bots", "--bots", "2", "--rooms", "1", "--wav", "/nonexistent.wav", "--quiet"]);
    assert!(run(&args).is_err());
}

#[test]
fn bots_against_a_server_given_by_address() {
    // A relay of our own stands for the external server: the bots only know its address and the bot users.
    let users: Vec<(String, String)> = (0..3).map(|i| (format!("ext{i}"), "ext-pw".to_string())).collect();
    let relay = voice_examples::bots::local::LocalRelay::start(&users, &["x-0".into()]).expect("relay");
    let server = relay.tcp.to_string();
    let args = Args::parse_from([
        "voice-bots",
        "--bots",
        "3",
        "--rooms",
        "1",
        "--seconds",
        "2",
        "--server",
        &server,
        "--user-prefix",
        "ext",
        "--password",
        "ext-pw",
        "--room-prefix",
        "x",
        "--quiet",
    ]);
    let s = run(&args).expect("bots run against the address");
    let json = serde_json::to_string(&s).expect("summary serializes");
    eprintln!("{json}");
    assert!(s.packets.received > 0 && s.packets.loss_pct < 5.0, "{json}");
    assert!(s.relay.is_none() && s.cpu.relay_pct.is_none(), "an external server's CPU is not measured: {json}");
    assert!(s.cpu.bots_pct.is_some(), "{json}");
    // Wrong password: refused, an error in words rather than a hang, a panic or `Some((ErrorCode(3), …))`.
    let mut bad = args.clone();
    bad.password = "wrong".into();
    let e = format!("{:#}", run(&bad).expect_err("refused"));
    assert!(e.contains("the server refused the login: wrong user name, password or token"), "{e}");
    assert!(!e.contains("ErrorCode") && !e.contains("Some("), "{e}");
    relay.stop();
}

/// Against an address where nothing listens, the bots give up after `--give-up-after` with the reason in words
/// (they used to wait a minute at "connecting…").
#[test]
fn bots_give_up_on_an_unreachable_server() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("address");
    let server = closed.to_string();
    let args = Args::parse_from(
        ["voice-bots", "--bots", "2", "--rooms", "1", "--seconds", "1", "--quiet"].into_iter().chain([
            "--server",
            &server,
            "--give-up-after",
            "0.5",
        ]),
    );
    let e = format!("{:#}", run(&args).expect_err("unreachable"));
    assert!(e.contains(&format!("nothing listens at {server}")), "{e}");
    assert!(e.contains("gave up after 0.5 s"), "{e}");
}
