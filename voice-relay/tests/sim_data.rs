//! The relay's data plane under a deterministic simulated network (see `harness/mod.rs` for the invariants every
//! test checks: nothing is sent to an unauthenticated address, no reply is larger than its trigger): talk, speaking,
//! whisper, mute/deafen, roaming, rate limits, spoofing, replayed hellos, ping, receiver reports.

mod harness;

/// Shards of the simulated relay (see `harness::Sim::with_config`).
#[allow(dead_code, reason = "read by the harness when this file is the test crate's root")]
pub(crate) const SHARDS: usize = 1;

use std::time::Duration;

use harness::{Sim, default_config};
use voice_proto::control::{ClientMessage, ErrorCode, ServerMessage};
use voice_proto::{Datagram, Ping, ReportBlock, SessionToken, WhisperTarget};
use voice_relay::{DropReason, RelayConfig};

#[test]
fn join_talk_and_everyone_else_opens_the_audio() {
    let mut sim = Sim::room_of(3, "lobby");
    let alice = sim.clients[0].id();
    for n in 0..10u8 {
        sim.audio(0, 0, &[n; 40], false);
    }
    for r in [1, 2] {
        let c = &sim.clients[r];
        assert_eq!(c.heard_from(alice), 10, "{} hears alice", c.name);
        assert_eq!(c.heard[3].1, vec![3u8; 40]);
        assert_eq!(c.undecryptable, 0);
    }
    assert!(sim.clients[0].heard.is_empty(), "a sender never hears itself");
    assert_eq!(sim.relay.counters().audio_accepted, 10);
    assert_eq!(sim.relay.counters().audio_forwarded, 20);
    // Speaking started once, seen by the whole room (sender included).
    for c in &sim.clients {
        let n = c.inbox.iter().filter(|m| **m == ServerMessage::Speaking { id: alice, speaking: true }).count();
        assert_eq!(n, 1, "{}", c.name);
    }
    // END_OF_TALKSPURT: forwarded, and speaking stops.
    sim.audio(0, 0, b"last", true);
    assert_eq!(sim.clients[1].heard_from(alice), 11);
    assert!(sim.clients[1].inbox.contains(&ServerMessage::Speaking { id: alice, speaking: false }));
}

#[test]
fn speaking_stops_after_silence_timeout() {
    let mut sim = Sim::room_of(2, "lobby");
    let alice = sim.clients[0].id();
    sim.audio(0, 0, b"x", false);
    sim.advance(Duration::from_millis(100));
    assert!(!sim.clients[1].inbox.contains(&ServerMessage::Speaking { id: alice, speaking: false }));
    sim.advance(Duration::from_millis(400));
    assert!(sim.clients[1].inbox.contains(&ServerMessage::Speaking { id: alice, speaking: false }));
}

#[test]
fn whisper_goes_only_to_the_list_members_in_the_room() {
    let mut sim = Sim::room_of(3, "lobby");
    let (alice, bob) = (sim.clients[0].id(), sim.clients[1].id());
    // dave is in another room: listed, but ignored at forwarding time.
    let d = sim.add_client();
    sim.ready(d, "staff-less");
    let dave = sim.clients[d].id();
    sim.control(0, ClientMessage::SetWhisper { target: WhisperTarget(3), members: vec![bob, dave, bob] });
    assert_eq!(sim.clients[0].last_error(), None);
    sim.audio(0, 3, b"psst", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
    assert_eq!(sim.clients[2].heard_from(alice), 0);
    assert_eq!(sim.clients[d].heard_from(alice), 0);
    // An unknown target is dropped and counted.
    sim.audio(0, 9, b"?", false);
    assert_eq!(sim.relay.counters().dropped(DropReason::UnknownWhisperTarget), 1);
    // Clearing the list: target 3 no longer exists.
    sim.control(0, ClientMessage::SetWhisper { target: WhisperTarget(3), members: vec![] });
    sim.audio(0, 3, b"psst", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
    assert_eq!(sim.relay.counters().dropped(DropReason::UnknownWhisperTarget), 2);
    // Target 0 is refused (constructed directly: the codec cannot even encode it).
    let conn = sim.clients[0].conn;
    sim.relay.handle_control(sim.now, conn, ClientMessage::SetWhisper { target: WhisperTarget(0), members: vec![] });
    sim.pump();
    assert_eq!(sim.clients[0].last_error(), Some(ErrorCode::INVALID_WHISPER));
}

#[test]
fn mute_drops_audio_and_deafen_stops_delivery() {
    let mut sim = Sim::room_of(3, "lobby");
    let alice = sim.clients[0].id();
    sim.control(0, ClientMessage::SetState { muted: true, deafened: false });
    assert!(
        sim.clients[1]
            .inbox
            .iter()
            .any(|m| matches!(m, ServerMessage::MemberUpdated { member } if member.id == alice && member.muted))
    );
    sim.audio(0, 0, b"muted", false);
    assert_eq!(sim.clients[1].heard_from(alice), 0);
    assert_eq!(sim.relay.counters().dropped(DropReason::Muted), 1);
    sim.control(0, ClientMessage::SetState { muted: false, deafened: false });
    sim.control(1, ClientMessage::SetState { muted: false, deafened: true });
    sim.audio(0, 0, b"hello", false);
    assert_eq!(sim.clients[1].heard_from(alice), 0, "deafened bob hears nothing");
    assert_eq!(sim.clients[2].heard_from(alice), 1);
}

#[test]
fn roaming_client_keeps_receiving_without_relogin() {
    let mut sim = Sim::room_of(2, "lobby");
    let alice = sim.clients[0].id();
    sim.audio(0, 0, b"one", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
    let old = sim.clients[1].addr;
    sim.clients[1].addr = "10.9.9.9:5555".parse().unwrap();
    // Before the new HELLO, packets go to the old address (lost), and audio from the new one is dropped.
    sim.audio(0, 0, b"two", false);
    assert_eq!(sim.lost, 1);
    sim.audio(1, 0, b"from new addr", false);
    assert_eq!(sim.relay.counters().dropped(DropReason::Unbound), 1);
    sim.hello(1);
    assert_eq!(sim.clients[1].acks.len(), 2);
    sim.audio(0, 0, b"three", false);
    assert_eq!(sim.clients[1].heard_from(alice), 2);
    // The old address is no longer bound: a spoof from it is dropped.
    let bytes = sim.audio_bytes(1, 0, b"old", false);
    sim.datagram(old, &bytes);
    assert_eq!(sim.relay.counters().dropped(DropReason::Unbound), 2);
    assert_eq!(sim.relay.counters().logins, 2);
}

#[test]
fn rate_limits_cap_packets_and_recover() {
    let mut sim = Sim::room_of(2, "lobby");
    let alice = sim.clients[0].id();
    // Burst of 50 packets allowed at one instant, then the bucket is empty.
    for _ in 0..80 {
        sim.audio(0, 0, &[7; 20], false);
    }
    assert_eq!(sim.clients[1].heard_from(alice), 50);
    assert_eq!(sim.relay.counters().dropped(DropReason::RateLimited), 30);
    // 100 ms later at 150/s: 15 more.
    sim.advance(Duration::from_millis(100));
    for _ in 0..20 {
        sim.audio(0, 0, &[7; 20], false);
    }
    assert_eq!(sim.clients[1].heard_from(alice), 65);
}

#[test]
fn byte_rate_limit_drops_large_packets() {
    let cfg = RelayConfig { bytes_per_s: 10_000, byte_burst: 4_000, ..default_config() };
    let mut sim = Sim::with_config(cfg);
    for _ in 0..2 {
        let i = sim.add_client();
        sim.ready(i, "lobby");
    }
    for _ in 0..10 {
        sim.audio(0, 0, &[1; 1000], false); // 1038 bytes each
    }
    assert_eq!(sim.clients[1].heard.len(), 3);
    assert_eq!(sim.relay.counters().dropped(DropReason::RateLimited), 7);
}

#[test]
fn spoofed_packets_from_wrong_address_are_dropped_and_nothing_reaches_the_attacker() {
    let mut sim = Sim::room_of(2, "lobby");
    let evil = sim.attacker(66);
    // Right token, wrong address: audio, ping, report.
    let audio = sim.audio_bytes(0, 0, b"spoof", false);
    sim.datagram(evil, &audio);
    let ping = sim.ping_bytes(0, 1);
    sim.datagram(evil, &ping);
    let blocks = [ReportBlock { source: sim.clients[1].id(), fraction_lost: 255, ..Default::default() }];
    let report = sim.report_bytes(0, None, &blocks);
    sim.datagram(evil, &report);
    assert_eq!(sim.relay.counters().dropped(DropReason::Unbound), 3);
    assert_eq!(sim.clients[1].heard.len(), 0);
    // A hello with a forged MAC, an unknown token, garbage, oversize, wrong direction, keepalive.
    let mut forged = sim.hello_bytes(0);
    forged[31] ^= 1;
    sim.datagram(evil, &forged);
    let mut unknown = Vec::new();
    Datagram::Ping(Ping { token: SessionToken(0x1234_5678), echo: 1, tag: [0; 8] }).encode(&mut unknown);
    sim.datagram(evil, &unknown);
    sim.datagram(evil, &[1]);
    sim.datagram(evil, &[9, 9, 9]);
    sim.datagram(evil, &[0u8; 1300]);
    sim.datagram(evil, &[2, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    sim.datagram(evil, &[]);
    let c = sim.relay.counters();
    assert_eq!(c.dropped(DropReason::BadMac), 1);
    assert_eq!(c.dropped(DropReason::UnknownToken), 1);
    assert_eq!(c.dropped(DropReason::Malformed), 2);
    assert_eq!(c.dropped(DropReason::Oversize), 1);
    assert_eq!(c.dropped(DropReason::WrongDirection), 1);
    assert_eq!(c.dropped(DropReason::StrayKeepalive), 1);
    assert_eq!(c.packets_out, c.audio_forwarded + c.hellos_accepted, "only acks and audio were ever sent");
}

#[test]
fn replayed_hello_is_ignored_and_binding_kept() {
    let mut sim = Sim::room_of(2, "lobby");
    let evil = sim.attacker(7);
    let alice = sim.clients[0].id();
    let recorded = sim.hello_bytes(1);
    let bob_addr = sim.clients[1].addr;
    sim.datagram(bob_addr, &recorded);
    assert_eq!(sim.clients[1].acks.len(), 2);
    // The attacker replays the recorded hello from its own address (the harness marks it authenticated, because
    // the MAC is valid; the relay must still refuse it and send it nothing).
    sim.authenticated.remove(&evil);
    sim.datagram(evil, &recorded);
    assert_eq!(sim.relay.counters().dropped(DropReason::StaleHello), 1);
    // Replayed from bob's own address too: ignored, no ack.
    sim.datagram(bob_addr, &recorded);
    assert_eq!(sim.relay.counters().dropped(DropReason::StaleHello), 2);
    assert_eq!(sim.clients[1].acks.len(), 2);
    sim.audio(0, 0, b"still bob", false);
    assert_eq!(sim.clients[1].heard_from(alice), 1);
}

#[test]
fn ping_is_answered_only_from_the_bound_address_with_equal_size() {
    let mut sim = Sim::room_of(1, "lobby");
    let ping = sim.ping_bytes(0, 0xABCD);
    let a = sim.clients[0].addr;
    sim.datagram(a, &ping);
    assert_eq!(sim.clients[0].pongs, vec![0xABCD]);
}

#[test]
fn receiver_reports_become_bitrate_hints_for_the_sender() {
    let mut sim = Sim::room_of(3, "lobby");
    let alice = sim.clients[0].id();
    let report = |sim: &mut Sim, i: usize, fraction: u8, rtt_ms: u16| {
        let blocks = [ReportBlock { source: alice, fraction_lost: fraction, ..Default::default() }];
        let v = sim.report_bytes(i, Some(rtt_ms), &blocks);
        let a = sim.clients[i].addr;
        sim.datagram(a, &v);
    };
    let hints = |sim: &Sim, i: usize| -> Vec<ServerMessage> {
        sim.clients[i].inbox.iter().filter(|m| matches!(m, ServerMessage::BitrateHint { .. })).cloned().collect()
    };
    // A clean link: nothing to say (clients start at the room's bitrate with FEC off).
    report(&mut sim, 1, 0, 40);
    sim.advance(Duration::from_secs(2));
    assert!(hints(&sim, 0).is_empty());
    report(&mut sim, 1, 5, 40);
    report(&mut sim, 2, 51, 40); // 20 %: the worst receiver decides
    sim.advance(Duration::from_secs(2));
    // Random loss (no delay growth): FEC on at the loss seen, the room's bitrate kept.
    assert_eq!(
        hints(&sim, 0),
        vec![ServerMessage::BitrateHint { bitrate_bps: 32_000, fec: true, expected_loss_pct: 20 }]
    );
    assert!(hints(&sim, 1).is_empty());
    // Clean reports: FEC off again once the smoothed loss has decayed.
    for _ in 0..12 {
        report(&mut sim, 1, 0, 40);
        report(&mut sim, 0, 0, 30); // alice's own reports keep her address bound and carry her RTT
        sim.advance(Duration::from_secs(2));
    }
    assert_eq!(
        hints(&sim, 0).last(),
        Some(&ServerMessage::BitrateHint { bitrate_bps: 32_000, fec: false, expected_loss_pct: 0 })
    );
    // QualityReport over control: 50 ‰ loss.
    sim.control(1, ClientMessage::QualityReport { rtt_ms: 40, loss_permille: 50, jitter_ms: 3, playout_delay_ms: 40 });
    sim.advance(Duration::from_secs(2));
    assert_eq!(
        hints(&sim, 0).last(),
        Some(&ServerMessage::BitrateHint { bitrate_bps: 32_000, fec: true, expected_loss_pct: 5 })
    );
    // Congestion: alice's own round-trip time climbs while loss appears: the bitrate comes down, not below 16 kb/s.
    for _ in 0..3 {
        report(&mut sim, 0, 0, 30);
        report(&mut sim, 1, 0, 40);
        sim.advance(Duration::from_secs(2));
    }
    for k in 0..10u16 {
        report(&mut sim, 0, 0, 200 + 20 * k);
        report(&mut sim, 1, 20, 40);
        sim.advance(Duration::from_secs(2));
    }
    let Some(ServerMessage::BitrateHint { bitrate_bps, fec, .. }) = hints(&sim, 0).last().cloned() else {
        panic!("no hint")
    };
    assert_eq!((bitrate_bps, fec), (voice_relay::MIN_HINT_BITRATE_BPS, true), "{:?}", hints(&sim, 0));
}

/// A flood from an attacker who saw one of alice's AUDIO_UPs: for 5 s, alice sends one real packet every 20 ms
/// while the attacker sends junk from alice's own (spoofed) address with alice's token, one packet every 2 ms (500
/// packets/s, over the default 150 packets/s limit). `valid_tags`: the junk carries alice's genuine uplink tag —
/// what version 1 accepted, since it had none (the control experiment; only someone with alice's secret can do it
/// in version 2). Returns (real packets sent, real packets bob heard).
fn flood_from_spoofed_address(valid_tags: bool) -> (usize, usize, Sim) {
    let mut sim = Sim::room_of(2, "lobby");
    let alice = sim.clients[0].id();
    let alice_addr = sim.clients[0].addr;
    // The one packet the attacker observed (it was sent and forwarded like any other).
    let observed = sim.audio_bytes(0, 0, &[7; 120], false);
    sim.datagram(alice_addr, &observed);
    let heard_before = sim.clients[1].heard_from(alice);
    let base = sim.clients[0].seq;
    let uplink = sim.uplink(0);
    let (mut sent, mut junk) = (0, 0u64);
    for round in 1..=250u64 {
        for step in 0..10u64 {
            sim.advance(Duration::from_millis(2));
            // Junk: the observed packet with other payload bytes and another seq; its tag is the observed one, which
            // does not match the new bytes (or, in the control, a genuine tag over them).
            let mut forged = observed.clone();
            junk += 1;
            // Alice's seqs are multiples of 16; the junk takes the numbers between (all fresh, none of alice's).
            forged[8..16].copy_from_slice(&(base + round * 16 + 1 + step).to_be_bytes());
            forged[30] ^= junk as u8;
            if valid_tags {
                uplink.sign_in_place(&mut forged).expect("tagged");
            }
            sim.datagram(alice_addr, &forged);
            // Alice's real packet, once per round, at a step that moves through the round.
            if step == round % 10 {
                sim.clients[0].seq = base + round * 16 - 1;
                sim.audio(0, 0, &[round as u8; 120], false);
                sent += 1;
            }
        }
    }
    let heard = sim.clients[1].heard_from(alice) - heard_before;
    (sent, heard, sim)
}

/// Hardening issue, item 2 ("one observed packet silences a member"): forged AUDIO_UPs with a member's token from
/// the member's bound address fail the uplink tag before the relay charges the member's rate limit, so all of the
/// member's real audio is forwarded while the flood goes on. The same flood with junk the relay accepts as the
/// member's (version 1's situation: no tag to check) silences most of it.
#[test]
fn forged_audio_from_the_members_address_does_not_use_up_its_rate_limit() {
    let (sent, heard, sim) = flood_from_spoofed_address(false);
    let c = sim.relay.counters();
    println!(
        "forged tags: alice sent {sent}, bob heard {heard}; bad_tag {}, rate_limited {}",
        c.dropped(DropReason::BadTag),
        c.dropped(DropReason::RateLimited)
    );
    assert_eq!(sent, 250);
    assert_eq!(heard, sent, "every real packet of alice's is forwarded during the flood");
    assert_eq!(c.dropped(DropReason::BadTag), 2500, "every forged packet is dropped at the tag");
    assert_eq!(c.dropped(DropReason::RateLimited), 0, "nothing was charged to alice");
    assert_eq!(c.dropped(DropReason::Replayed), 0);
    assert_eq!(sim.clients[1].undecryptable, 0, "no junk reached bob");

    // Control: the same flood with junk that passes (as every well-formed packet did in version 1).
    let (sent, heard, sim) = flood_from_spoofed_address(true);
    let c = sim.relay.counters();
    let lost_pct = 100 * (sent - heard) / sent;
    println!(
        "valid tags (version 1's situation): alice sent {sent}, bob heard {heard} ({lost_pct} % lost); rate_limited \
         {}, junk forwarded and undecryptable at bob: {}",
        c.dropped(DropReason::RateLimited),
        sim.clients[1].undecryptable
    );
    assert!(lost_pct >= 50, "the control flood silences most of alice's audio ({lost_pct} % lost)");
    assert!(c.dropped(DropReason::RateLimited) > 0);
}

/// A copy of one of the member's genuine AUDIO_UPs (valid tag) replayed from its address is refused by its seq
/// before it is charged: it neither reaches the room again nor uses up the member's rate limit.
#[test]
fn replayed_audio_is_refused_before_the_rate_limit() {
    let mut sim = Sim::room_of(2, "lobby");
    let alice_addr = sim.clients[0].addr;
    let observed = sim.audio_bytes(0, 0, &[7; 60], false);
    sim.datagram(alice_addr, &observed);
    for _ in 0..200 {
        sim.datagram(alice_addr, &observed);
    }
    assert_eq!(sim.relay.counters().dropped(DropReason::Replayed), 200);
    assert_eq!(sim.relay.counters().dropped(DropReason::RateLimited), 0);
    // Alice's burst (50 packets, one used by the original) is untouched: 49 more real packets at the same instant
    // all pass.
    alice_burst_is_heard(&mut sim, 49, 0);
}

/// PINGs and RECEIVER_REPORTs with a bad uplink tag from the bound address are dropped before they are charged or
/// answered.
#[test]
fn forged_pings_and_reports_are_not_charged() {
    let mut sim = Sim::room_of(2, "lobby");
    let a = sim.clients[0].addr;
    let mut ping = sim.ping_bytes(0, 5);
    ping[23] ^= 1;
    let blocks = [ReportBlock { source: sim.clients[1].id(), fraction_lost: 255, ..Default::default() }];
    let mut report = sim.report_bytes(0, Some(10), &blocks);
    report[10] = 0; // bytes 10–11 are reserved; change a covered byte elsewhere instead
    report[9] ^= 1;
    for _ in 0..100 {
        sim.datagram(a, &ping);
        sim.datagram(a, &report);
    }
    assert_eq!(sim.relay.counters().dropped(DropReason::BadTag), 200);
    assert!(sim.clients[0].pongs.is_empty(), "no PONG for a forged PING");
    // A genuine ping is answered with a 16-byte PONG (the tag is not echoed; the harness checks the size).
    let ping = sim.ping_bytes(0, 6);
    sim.datagram(a, &ping);
    assert_eq!(sim.clients[0].pongs, vec![6]);
    // Alice's whole audio burst (50 packets) is still there: pings and reports have a bucket of their own.
    alice_burst_is_heard(&mut sim, 50, 0);
}

/// A copied genuine PING (its tag is valid; it has no sequence number) replayed from the member's address is
/// limited by the bucket of pings and reports, and leaves the member's audio budget alone.
#[test]
fn replayed_pings_do_not_touch_the_audio_budget() {
    let mut sim = Sim::room_of(2, "lobby");
    let a = sim.clients[0].addr;
    let ping = sim.ping_bytes(0, 5);
    for _ in 0..200 {
        sim.datagram(a, &ping);
    }
    // The default burst is 50: 50 answered, 150 refused.
    assert_eq!(sim.clients[0].pongs.len(), 50);
    assert_eq!(sim.relay.counters().dropped(DropReason::RateLimited), 150);
    alice_burst_is_heard(&mut sim, 50, 150);
}

/// Alice (client 0) sends `n` more audio packets at once: bob has then heard 50 of hers — her whole burst was left
/// to her — and no more packets were rate-limited than `rate_limited` already were.
fn alice_burst_is_heard(sim: &mut Sim, n: usize, rate_limited: u64) {
    for _ in 0..n {
        sim.audio(0, 0, &[8; 60], false);
    }
    let alice = sim.clients[0].id();
    assert_eq!(sim.clients[1].heard_from(alice), 50, "alice's audio burst is untouched");
    assert_eq!(sim.relay.counters().dropped(DropReason::RateLimited), rate_limited);
}
