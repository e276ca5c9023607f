//! The network conditioner inside the threaded `Client`: real loopback sockets, voice-relay's tokio driver, the
//! file audio backend. Alice's client drops 20% of its UDP datagrams both ways, then none, changed at runtime;
//! bob's receiver statistics (losses counted from sequence numbers) follow. Bounded; no timing is asserted.
#![cfg(feature = "tokio")]

mod loopback;

use std::time::Duration;

use loopback::{TestRelay, run_for, temp_dir};
use voice_client::{Client, ConditionerConfig, Error};

/// (packets received, packets lost) of the one remote speaker bob hears.
fn heard(bob: &Client) -> (u64, u64) {
    let stats = bob.stats();
    stats.speakers.first().map_or((0, 0), |s| (s.packets, s.lost))
}

fn loss_between(a: (u64, u64), b: (u64, u64)) -> f64 {
    let (packets, lost) = (b.0 - a.0, b.1 - a.1);
    lost as f64 / (packets + lost).max(1) as f64
}

#[test]
fn loss_set_at_runtime_shows_in_the_receivers_stats() {
    let relay = TestRelay::start();
    let dir = temp_dir("network");
    let (alice, bob) = relay.tone_pair(&dir, 12);
    run_for(&bob, Duration::from_secs(1));
    let clean = heard(&bob);
    assert!(clean.0 > 10, "bob hears alice: {clean:?}");

    let bad = ConditionerConfig { loss: 1.5, ..ConditionerConfig::default() };
    assert!(matches!(alice.set_network(bad), Err(Error::Config(_))), "a bad setting is refused");
    alice.set_network(ConditionerConfig { loss: 0.2, ..ConditionerConfig::default() }).unwrap();
    run_for(&bob, Duration::from_secs(4));
    let lossy = heard(&bob);
    let net = alice.network_stats();
    alice.set_network(ConditionerConfig::default()).unwrap();
    run_for(&bob, Duration::from_millis(300));
    let healed = heard(&bob);
    run_for(&bob, Duration::from_secs(2));
    let end = heard(&bob);

    let (before, during, after) = (loss_between((0, 0), clean), loss_between(clean, lossy), loss_between(healed, end));
    eprintln!(
        "bob's loss of alice's packets: clean {:.1}%, at 20% {:.1}% ({} packets), after reset {:.1}%; alice's \
         conditioner {net:?}",
        before * 100.0,
        during * 100.0,
        lossy.0 - clean.0 + lossy.1 - clean.1,
        after * 100.0
    );
    alice.shutdown().unwrap();
    bob.shutdown().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!((net.up_config.loss, net.down_config.loss), (0.2, 0.2));
    assert!(net.up.dropped > 0 && net.up.dropped < net.up.pushed, "{net:?}");
    assert!((0.1..=0.32).contains(&during), "about 20% lost while set: {during}");
    assert!(after < 0.05, "loss stops once reset: {after}");
    assert!(before < 0.05, "no loss before: {before}");
}
