//! Replays the checked-in relay fuzz corpus (`fuzz/corpus/relay/`) through the fuzz body on stable Rust, plus
//! property tests that run the same body on arbitrary and on structured input sequences.

use std::path::Path;

use proptest::prelude::*;
use voice_sim::fuzzing::relay_inputs;

#[test]
fn relay_corpus() {
    let n = voice_sim::fuzzing::replay_corpus("relay", relay_inputs);
    assert!(n >= 10, "corpus has {n} files");
}

#[test]
fn seeds_reach_deep_states() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/relay");
    let run = |name: &str| voice_sim::fuzzing::relay_inputs_counters(&std::fs::read(dir.join(name)).unwrap());
    let talk = run("talk");
    assert!(talk.audio_forwarded >= 4, "{talk:?}");
    assert_eq!(talk.hellos_accepted, 2);
    let roaming = run("roaming");
    assert!(roaming.dropped(voice_relay::DropReason::Unbound) >= 1, "{roaming:?}");
    assert_eq!(roaming.hellos_accepted, 3);
    let replay = run("replayed_hello");
    assert!(replay.dropped(voice_relay::DropReason::StaleHello) >= 1, "{replay:?}");
    let expiry = run("expiry");
    assert!(expiry.sessions_ended >= 1 && expiry.bindings_expired >= 1, "{expiry:?}");
    let whisper = run("whisper");
    assert!(whisper.audio_forwarded >= 1, "{whisper:?}");
    let adhoc = run("adhoc");
    assert_eq!(adhoc.rooms, 5, "ad-hoc room recreated after removal: {adhoc:?}");
}

/// One well-formed operation of the fuzz program (ops 2–9 build valid actions; see `voice_sim::fuzzing`).
fn op() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u8..3, 0u8..3).prop_map(|(c, u)| vec![3, c, u]),
        (0u8..3, any::<u8>()).prop_map(|(c, r)| vec![4, c, r]),
        (0u8..4, 0u8..4, 0u8..4).prop_map(|(a, k, b)| vec![5, a, k, b]),
        (0u8..4, 0u8..4, any::<u8>(), 0u8..40).prop_map(|(a, k, b, l)| vec![6, a, k, b, l]),
        (0u8..4, 0u8..4, 0u8..3, any::<u8>()).prop_map(|(a, k, s, f)| vec![7, a, k, s, f]),
        (0u8..3, any::<u8>()).prop_map(|(c, b)| vec![8, c, b]),
        (0u8..3, any::<u8>()).prop_map(|(c, b)| vec![9, c, b]),
        (0u8..40).prop_map(|t| vec![2, 0, t]),
        any::<u8>().prop_map(|t| vec![2, t, 0]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_break_the_invariants(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        relay_inputs(&data);
    }

    #[test]
    fn structured_sequences_never_break_the_invariants(ops in proptest::collection::vec(op(), 0..120)) {
        relay_inputs(&ops.concat());
    }
}
