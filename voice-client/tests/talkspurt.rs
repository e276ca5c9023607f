//! END_OF_TALKSPURT when muting, when voice activation closes its gate, when push-to-talk is selected mid-talkspurt,
//! when the whisper target changes, when leaving the room and when quitting, in simulation (relay core + sessions,
//! clean simulated network, virtual clock): the receiver stops at once — no concealment after the talker stops,
//! and the relay reports "not speaking" within a couple of frames instead of after its 400 ms timeout.

mod sim;

use sim::World;
use voice_client::{ConditionerConfig, Event, TalkMode};
use voice_sim::audio::{speech_like, voiced};

fn world(mode: TalkMode) -> World {
    let mut w = World::new(2, "lobby", ConditionerConfig::default(), mode);
    w.connect_all();
    w
}

/// Frames bob concealed for alice so far.
fn concealed(w: &World) -> u64 {
    concealed_at(w, 1, 0)
}

/// Ticks until bob hears that alice stopped speaking (bounded by `max`).
fn ticks_until_not_speaking(w: &mut World, max: usize) -> Option<usize> {
    let alice = w.id(0);
    let seen = w.peers[1].events.len();
    for t in 1..=max {
        w.tick();
        if w.peers[1].events[seen..].contains(&Event::Speaking { id: alice, speaking: false }) {
            return Some(t);
        }
    }
    None
}

#[test]
fn muting_mid_talkspurt_ends_it_at_once() {
    let mut w = world(TalkMode::Continuous);
    w.speak(0, voiced(48_000 * 4));
    w.run(50);
    let (before, sent) = (concealed(&w), w.peers[0].session.stats().packets_sent);
    assert!(sent > 40, "alice talks: {sent}");
    w.peers[0].session.set_muted(true);
    let ticks = ticks_until_not_speaking(&mut w, 15);
    w.run(30);
    let alice = w.id(0);
    eprintln!("not speaking after {ticks:?} ticks; concealed {before} → {}", concealed(&w));
    assert_eq!(w.peers[0].session.stats().packets_sent, sent + 1, "one END_OF_TALKSPURT datagram, then nothing");
    assert!(ticks.is_some_and(|t| t <= 2), "the relay saw the end of the talkspurt: {ticks:?}");
    assert_eq!(concealed(&w), before, "bob did not conceal after the mute");
    assert!(w.peers[1].events.iter().any(|e| matches!(e, Event::MemberUpdated(m) if m.id == alice && m.muted)));
    // Unmuting starts a new talkspurt.
    w.peers[0].session.set_muted(false);
    w.run(10);
    assert!(w.peers[0].session.stats().packets_sent > sent + 5);
}

#[test]
fn voice_activation_closing_the_gate_ends_the_talkspurt() {
    let mut w = world(TalkMode::VoiceActivation);
    // One second of speech, then silence.
    let mut mic = speech_like(48_000, 8);
    mic.extend(std::iter::repeat_n(0.0, 48_000 * 2));
    w.speak(0, mic);
    let mut ends = 0;
    let mut talking = false;
    for _ in 0..150 {
        w.tick();
        let now = w.peers[0].media.is_talking();
        ends += usize::from(talking && !now);
        talking = now;
    }
    let sent = w.peers[0].session.stats().packets_sent;
    let stats = w.peers[1].session.stats();
    eprintln!("{ends} gate closings, {sent} packets sent; bob: {:?}", stats.speakers);
    assert!(sent > 10 && ends >= 1, "alice talked and stopped");
    assert_eq!(concealed(&w), 0, "every talkspurt ended with END_OF_TALKSPURT: nothing concealed");
    let alice = w.id(0);
    assert_eq!(
        w.peers[1].events.iter().rev().find_map(|e| match e {
            Event::Speaking { id, speaking } if *id == alice => Some(*speaking),
            _ => None,
        }),
        Some(false),
        "alice is not speaking at the end"
    );
}

#[test]
fn a_key_released_while_muted_sends_nothing_after_unmuting() {
    let mut w = world(TalkMode::PushToTalk);
    w.speak(0, voiced(48_000 * 4));
    w.peers[0].session.set_ptt(true);
    w.run(20);
    w.peers[0].session.set_muted(true);
    w.run(5);
    let sent = w.peers[0].session.stats().packets_sent;
    w.peers[0].session.set_ptt(false);
    w.run(5);
    w.peers[0].session.set_muted(false);
    w.run(20);
    assert_eq!(w.peers[0].session.stats().packets_sent, sent, "key up: nothing sent after unmuting");
    assert_eq!(concealed(&w), 0, "the mute ended the talkspurt");
}

/// Frames `listener` concealed for `talker` so far.
fn concealed_at(w: &World, listener: usize, talker: usize) -> u64 {
    let id = w.id(talker);
    w.peers[listener].session.stats().speakers.iter().find(|s| s.id == id).map_or(0, |s| s.concealed)
}

#[test]
fn switching_to_push_to_talk_mid_talkspurt_ends_it() {
    let mut w = world(TalkMode::Continuous);
    w.speak(0, voiced(48_000 * 4));
    w.run(50);
    let (before, sent) = (concealed(&w), w.peers[0].session.stats().packets_sent);
    // Push-to-talk with the key up: sending stops, and the talkspurt is ended rather than cut off.
    w.peers[0].session.set_talk_mode(TalkMode::PushToTalk);
    let ticks = ticks_until_not_speaking(&mut w, 15);
    w.run(30);
    assert_eq!(w.peers[0].session.stats().packets_sent, sent + 1, "one END_OF_TALKSPURT datagram, then nothing");
    assert!(ticks.is_some_and(|t| t <= 2), "the relay saw the end of the talkspurt: {ticks:?}");
    assert_eq!(concealed(&w), before, "bob did not conceal after the switch");
}

#[test]
fn changing_the_whisper_target_mid_talkspurt_ends_it_for_those_no_longer_addressed() {
    let mut w = World::new(3, "lobby", ConditionerConfig::default(), TalkMode::Continuous);
    w.connect_all();
    let carol = w.id(2);
    w.peers[0].session.set_whisper(voice_proto::WhisperTarget(1), &[carol]).expect("whisper list");
    w.speak(0, voiced(48_000 * 4));
    w.run(50);
    let (bob_before, carol_before) = (concealed_at(&w, 1, 0), concealed_at(&w, 2, 0));
    let sent = w.peers[0].session.stats().packets_sent;
    // Alice now whispers to carol only: bob's stream from her ends (END_OF_TALKSPURT to the room), carol's goes on.
    w.peers[0].session.select_whisper_target(voice_proto::WhisperTarget(1));
    w.run(40);
    let sent_after = w.peers[0].session.stats().packets_sent;
    let bob_packets = w.peers[1].session.stats().speakers.iter().map(|s| s.packets).sum::<u64>();
    eprintln!("sent {sent} → {sent_after}; bob concealed {bob_before} → {}", concealed_at(&w, 1, 0));
    assert_eq!(sent_after, sent + 1 + 40, "one END_OF_TALKSPURT to the room, then every frame to carol");
    assert_eq!(concealed_at(&w, 1, 0), bob_before, "bob did not conceal when alice turned to carol");
    assert_eq!(concealed_at(&w, 2, 0), carol_before, "carol kept hearing alice without a gap");
    assert!(bob_packets > 0);
}

#[test]
fn leaving_mid_talkspurt_ends_it_first() {
    let mut w = world(TalkMode::Continuous);
    w.speak(0, voiced(48_000 * 4));
    w.run(50);
    let (before, sent) = (concealed(&w), w.peers[0].session.stats().packets_sent);
    w.peers[0].session.leave().expect("in a room");
    assert_eq!(w.peers[0].session.stats().packets_sent, sent + 1, "the END_OF_TALKSPURT goes out with the leave");
    w.run(30);
    assert_eq!(w.peers[0].session.stats().packets_sent, sent + 1, "one END_OF_TALKSPURT datagram, then nothing");
    assert_eq!(concealed(&w), before, "bob did not conceal after alice left");
}

#[test]
fn closing_mid_talkspurt_ends_it_first() {
    let mut w = world(TalkMode::Continuous);
    w.speak(0, voiced(48_000 * 4));
    w.run(50);
    let (before, sent) = (concealed(&w), w.peers[0].session.stats().packets_sent);
    w.peers[0].session.close();
    assert_eq!(w.peers[0].session.stats().packets_sent, sent + 1, "the END_OF_TALKSPURT goes out with the close");
    w.run(30);
    assert_eq!(w.peers[0].session.stats().packets_sent, sent + 1, "one END_OF_TALKSPURT datagram, then nothing");
    assert_eq!(concealed(&w), before, "bob did not conceal after alice quit");
}
