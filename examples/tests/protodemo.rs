//! The protocol demo over real loopback sockets, bounded: 10 packets per client, sent unpaced (no sleeps).

#[test]
fn protocol_demo_delivers_everything_once_and_drops_spoofs() {
    let r = voice_examples::protodemo::run(10, std::time::Duration::ZERO).expect("demo runs");
    assert_eq!(r.sent, 30);
    assert_eq!(r.received, 60, "every packet reaches both other clients once");
    // Packet 0 of each client was duplicated by the "network": 3 duplicates × 2 recipients.
    assert_eq!(r.replays_refused, 6);
    assert_eq!(r.spoofed_dropped, 3);
}
