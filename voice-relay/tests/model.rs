//! Model-based property test of the fan-out: random sequences of joins, leaves, mutes, deafens, roams, spoofs,
//! whisper lists, talk and whispers by four clients, checked after every packet against a tiny model of who must
//! hear it. The harness checks
//! its usual invariants too (nothing to unauthenticated addresses, no reply larger than its trigger).

mod harness;

/// Shards of the simulated relay (see `harness::Sim::with_config`).
#[allow(dead_code, reason = "read by the harness when this file is the test crate's root")]
pub(crate) const SHARDS: usize = 1;

use std::net::SocketAddr;

use harness::{Sim, default_config};
use proptest::prelude::*;
use voice_proto::WhisperTarget;
use voice_proto::control::ClientMessage;
use voice_relay::RelayConfig;

const N: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Talk(usize),
    Mute(usize),
    Deafen(usize),
    Join(usize),
    Leave(usize),
    Roam(usize),
    Spoof(usize),
    /// Client `i` sets its whisper list 1 to the clients whose bits are set (no bit: the list is cleared).
    SetWhisper(usize, u8),
    /// Client `i` talks to its whisper list 1.
    Whisper(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..N;
    prop_oneof![
        4 => i.clone().prop_map(Op::Talk),
        1 => i.clone().prop_map(Op::Mute),
        1 => i.clone().prop_map(Op::Deafen),
        1 => i.clone().prop_map(Op::Join),
        1 => i.clone().prop_map(Op::Leave),
        1 => i.clone().prop_map(Op::Roam),
        1 => i.clone().prop_map(Op::Spoof),
        1 => (i.clone(), 0u8..16).prop_map(|(i, mask)| Op::SetWhisper(i, mask)),
        2 => i.prop_map(Op::Whisper),
    ]
}

#[derive(Clone, Copy, Default)]
struct Model {
    in_room: bool,
    muted: bool,
    deafened: bool,
    /// Whisper list 1: the clients it names (bit j = client j); 0 = no list.
    whisper: u8,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_packet_reaches_exactly_the_members_that_should_hear_it(ops in proptest::collection::vec(op(), 1..80)) {
        let cfg = RelayConfig { packet_burst: 10_000, byte_burst: 1_000_000, control_burst: 10_000, ..default_config() };
        let mut sim = Sim::with_config(cfg);
        let mut model = [Model::default(); N];
        for (i, m) in model.iter_mut().enumerate() {
            sim.add_client();
            sim.login(i);
            sim.hello(i);
            if i % 2 == 0 {
                sim.join(i, "lobby");
                m.in_room = true;
            }
        }
        let evil = sim.attacker(1);
        let mut roams = 0u16;
        for op in ops {
            match op {
                Op::Talk(i) | Op::Spoof(i) | Op::Whisper(i) if sim.clients[i].keys.is_empty() => {}
                Op::Talk(i) => {
                    let id = sim.clients[i].id();
                    let before: Vec<usize> = sim.clients.iter().map(|c| c.heard_from(id)).collect();
                    sim.audio(i, 0, b"model", false);
                    for j in 0..N {
                        let expect = model[i].in_room && !model[i].muted && j != i && model[j].in_room && !model[j].deafened;
                        let got = sim.clients[j].heard_from(id) - before[j];
                        prop_assert_eq!(got, usize::from(expect), "{} -> {}", i, j);
                    }
                }
                Op::Whisper(i) => {
                    let id = sim.clients[i].id();
                    let before: Vec<usize> = sim.clients.iter().map(|c| c.heard_from(id)).collect();
                    sim.audio(i, 1, b"whisper", false);
                    for j in 0..N {
                        // Only the members of the list still in the sender's room and not deafened (§2.4, §5.4).
                        let listed = model[i].whisper & (1 << j) != 0;
                        let expect = model[i].in_room
                            && !model[i].muted
                            && j != i
                            && listed
                            && model[j].in_room
                            && !model[j].deafened;
                        let got = sim.clients[j].heard_from(id) - before[j];
                        prop_assert_eq!(got, usize::from(expect), "whisper {} -> {}", i, j);
                    }
                }
                Op::SetWhisper(i, mask) => {
                    let members = (0..N).filter(|j| mask & (1 << j) != 0).map(|j| sim.clients[j].id()).collect();
                    sim.control(i, ClientMessage::SetWhisper { target: WhisperTarget(1), members });
                    model[i].whisper = mask;
                }
                Op::Spoof(i) => {
                    let id = sim.clients[i].id();
                    let before: usize = sim.clients.iter().map(|c| c.heard_from(id)).sum();
                    let bytes = sim.audio_bytes(i, 0, b"spoof", false);
                    sim.datagram(evil, &bytes);
                    prop_assert_eq!(sim.clients.iter().map(|c| c.heard_from(id)).sum::<usize>(), before);
                }
                Op::Mute(i) => {
                    model[i].muted = !model[i].muted;
                    let (muted, deafened) = (model[i].muted, model[i].deafened);
                    sim.control(i, ClientMessage::SetState { muted, deafened });
                }
                Op::Deafen(i) => {
                    model[i].deafened = !model[i].deafened;
                    let (muted, deafened) = (model[i].muted, model[i].deafened);
                    sim.control(i, ClientMessage::SetState { muted, deafened });
                }
                Op::Join(i) => {
                    sim.join(i, "lobby");
                    model[i].in_room = true;
                }
                Op::Leave(i) => {
                    sim.control(i, ClientMessage::Leave);
                    model[i].in_room = false;
                }
                Op::Roam(i) => {
                    roams += 1;
                    sim.clients[i].addr = SocketAddr::from(([10, 8, 0, 1], 10_000 + roams));
                    sim.hello(i);
                }
            }
        }
        for c in &sim.clients {
            prop_assert_eq!(c.undecryptable, 0, "{} could not open some audio", c.name);
        }
    }
}
