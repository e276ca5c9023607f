//! The media thread's per-frame work allocates nothing once a call is under way: capture (DSP, Opus encode,
//! seal), every received datagram (opened in place, its payload kept in the receive buffer through the jitter
//! buffer), playout decisions, decode, mix, and the stats published every frame. In simulation (relay core,
//! sessions, media pipelines, a virtual clock), counted per call with the allocation counter.

mod sim;

use sim::World;
use voice_client::{ConditionerConfig, TalkMode};
use voice_sim::audio::speech_like;

#[test]
fn a_call_under_way_allocates_nothing_per_frame() {
    // 2 % loss and some jitter, so FEC, concealment and time-stretching run too.
    let net = ConditionerConfig {
        loss: 0.02,
        latency: std::time::Duration::from_millis(20),
        jitter: std::time::Duration::from_millis(5),
        ..ConditionerConfig::default()
    };
    let mut w = World::new(3, "lobby", net, TalkMode::Continuous);
    w.connect_all();
    w.speak(0, speech_like(48_000 * 12, 5));
    w.speak(1, speech_like(48_000 * 12, 6));
    // Warm-up: speakers appear (their pipelines are built then), buffers and statistics reach their size.
    w.run(150);
    w.reset_allocations();
    w.run(400);
    for (i, p) in w.peers.iter().enumerate() {
        let st = p.session.stats();
        eprintln!(
            "peer {i}: {} allocations in 8 s; {} packets sent; speakers {:?}",
            p.media_allocations, st.packets_sent, st.speakers
        );
        assert!(st.speakers.iter().any(|s| s.packets > 300), "peer {i} heard a speaker");
        assert_eq!(p.media_allocations, 0, "peer {i}'s media work allocated");
        // The counter does see allocations (`stats` builds a new speaker list; `stats_into` reuses one).
        assert!(allocation_counter::measure(|| drop(p.session.stats())).count_total > 0);
    }
}
