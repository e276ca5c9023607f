//! The control connection over TLS: voice-relay's tokio driver serving TLS with a self-signed certificate, two
//! threaded `Client`s that trust it log in, join and talk (real loopback sockets, file audio backend); a client
//! that does not trust the certificate never logs in. Bounded; no timing is asserted.
#![allow(
    clippy::disallowed_methods,
    reason = "the threaded client on real sockets: waits are bounded by wall-clock deadlines"
)]
#![cfg(feature = "tokio")]

mod loopback;

use std::time::{Duration, Instant};

use loopback::{BOUND, TestRelay, run_for, temp_dir};
use voice_client::{Client, ClientConfig, ControlTls, Event, FileAudio, MediaConfig, SessionConfig};
use voice_proto::control::Credential;

#[test]
fn clients_log_in_and_talk_over_tls() {
    let dir = temp_dir("tls");
    let relay = TestRelay::start_tls(&dir);
    let (_alice, bob) = relay.tone_pair(&dir, 6);
    run_for(&bob, Duration::from_secs(1));
    let heard = bob.stats().speakers.first().map_or(0, |s| s.packets);
    assert!(heard > 10, "bob hears alice through a relay reached over TLS: {heard} packets");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_that_does_not_trust_the_certificate_never_logs_in() {
    let dir = temp_dir("tls-untrusted");
    let relay = TestRelay::start_tls(&dir);
    // Trusts the Mozilla roots only: the relay's self-signed certificate fails verification.
    let session = SessionConfig::new(relay.tcp, "carol", Credential::Password("pw-carol".into()));
    let tls = Some(ControlTls::public_roots("localhost").expect("roots"));
    let audio = Box::new(FileAudio::new(None, None).expect("file audio"));
    let carol = Client::connect(ClientConfig { session, media: MediaConfig::default(), audio, seed: 3, tls }).unwrap();
    // She is told why (and never logs in).
    let deadline = Instant::now() + BOUND;
    let reason = loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("a connect failure is reported");
        match carol.next_event(left.min(Duration::from_millis(100))) {
            Some(Event::ConnectFailed(reason)) => break reason,
            Some(e) => assert!(!matches!(e, Event::LoggedIn { .. }), "logged in without a trusted certificate"),
            None => {}
        }
    };
    assert!(reason.contains("certificate"), "the reason names the certificate: {reason}");
    assert!(matches!(
        ControlTls::with_ca_file("localhost", &dir.join("missing.pem")),
        Err(voice_client::Error::Tls(_))
    ));
    assert!(matches!(ControlTls::public_roots("not a name!"), Err(voice_client::Error::Tls(_))));
    let _ = std::fs::remove_dir_all(&dir);
}
