//! What a listener hears, on the conditions of the listening test (PESQ): jitter without loss is (almost) never
//! concealed, random losses are recovered by FEC whenever the successor arrived, and delay changes go into pauses
//! or into gentle shrinks. Seeded traces and virtual time only.

use std::time::{Duration, Instant};

use voice_jitter::{Action, Config, JitterBuffer, Packet, Stretch};
use voice_proto::{Seq, Timestamp};
use voice_sim::{self as sim, Model, TraceSpec};

/// One packet of a hand-made stream: sequence number, send and arrival time (ms), end of talkspurt.
#[derive(Clone, Copy)]
struct Sent {
    seq: u64,
    send_ms: f64,
    arrival_ms: Option<f64>,
    eot: bool,
}

/// One slot as the listener gets it.
struct Slot {
    action: Action<u64>,
    stretch: Stretch,
    /// The buffer's delay and target at that decision, ms.
    delay_ms: f64,
    target_ms: f64,
}

/// Drives `stream` through a default buffer like the audio side would: slots start at the first arrival and last
/// one frame plus the stretch asked (applied in full), until every packet was pushed and the buffer is empty.
fn drive(stream: &[Sent]) -> Vec<Slot> {
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(Config::default(), t0).expect("valid config");
    let mut arrivals: Vec<(f64, usize)> =
        stream.iter().enumerate().filter_map(|(i, p)| p.arrival_ms.map(|a| (a, i))).collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |ms: f64| t0 + Duration::from_micros((ms * 1_000.0).round() as u64);
    let mut slot_ms = arrivals[0].0;
    let mut next = 0;
    let mut slots = Vec::new();
    while next < arrivals.len() || jb.depth() > 0 {
        while next < arrivals.len() && arrivals[next].0 <= slot_ms {
            let p = stream[arrivals[next].1];
            let packet = Packet {
                seq: Seq(p.seq),
                // The media clock runs on through pauses: 48 samples per ms of send time.
                timestamp: Timestamp(((p.send_ms - 1_000.0) * 48.0).round() as u32),
                end_of_talkspurt: p.eot,
                payload: p.seq,
            };
            let _ = jb.push(at(arrivals[next].0), packet);
            next += 1;
        }
        let decision = jb.poll_playout(at(slot_ms));
        let stats = jb.stats();
        let stretch_ms = match decision.stretch {
            Stretch::None => 0.0,
            Stretch::Shrink { samples } => -f64::from(samples) / 48.0,
            Stretch::Expand { samples } => f64::from(samples) / 48.0,
        };
        // A silence slot may be shorter than a frame (`Tuning::idle_slot`).
        let slot_len_ms = match decision.action {
            Action::Silence { samples } => f64::from(samples) / 48.0,
            _ => 20.0,
        };
        slots.push(Slot {
            action: decision.action,
            stretch: decision.stretch,
            delay_ms: stats.current_delay.as_secs_f64() * 1_000.0,
            target_ms: stats.target_delay.as_secs_f64() * 1_000.0,
        });
        slot_ms += slot_len_ms + stretch_ms;
        assert!(slots.len() < 100_000, "the stream never drains");
    }
    slots
}

#[test]
fn lossless_jitter_is_almost_never_concealed() {
    // 30 ms latency plus Gaussian jitter (σ 10, 20, 40 ms, independent per packet, so packets reorder): at most
    // 0.2% of the frames are concealed or lost late, counting both.
    for model in [Model::Jitter10, Model::Jitter20, Model::Jitter40] {
        for seed in [1, 2] {
            let trace = sim::generate(&TraceSpec::new(model, seed, 15_000));
            let report = sim::replay(&trace, Config::default(), 0).expect("valid config");
            let name = format!("{} seed {seed}", model.name());
            assert_eq!(report.network_lost, 0, "{name}");
            assert_eq!(report.violations, 0, "{name}");
            let pct = report.conceal_or_late_pct();
            assert!(pct <= 0.2, "{name}: {pct}% concealed or late ({} concealed)", report.concealed);
            // And the delay stays tight: about the 99.7% quantile of the jitter, not a huge fixed buffer.
            let sigma = match model {
                Model::Jitter10 => 10.0,
                Model::Jitter20 => 20.0,
                _ => 40.0,
            };
            assert!(report.mean_delay_ms <= 3.3 * sigma + 5.0, "{name}: mean {}", report.mean_delay_ms);
        }
    }
}

#[test]
fn random_losses_are_recovered_by_fec_not_concealed() {
    // Random loss without jitter: only frames whose successor was lost too (no FEC can recover them) are concealed;
    // every other lost frame is decoded from its successor's FEC.
    for model in [Model::Loss2, Model::Loss5, Model::Loss10] {
        let trace = sim::generate(&TraceSpec::new(model, 3, 15_000));
        let report = sim::replay(&trace, Config::default(), 0).expect("valid config");
        let name = model.name();
        let recoverable = report.network_lost - report.unrecoverable;
        // A few losses in the first seconds, before the buffer has made room for FEC, are concealed (a link that
        // shows no jitter starts at the lowest delay, so the first losses find no successor buffered yet).
        assert!(
            report.concealed <= report.unrecoverable + 8,
            "{name}: concealed {} unrecoverable {}",
            report.concealed,
            report.unrecoverable
        );
        assert!(report.fec_recovered + 5 >= recoverable, "{name}: {} of {recoverable}", report.fec_recovered);
        assert_eq!(report.late_lost, 0, "{name}");
    }
    // With jitter as well, concealment stays within the unrecoverable losses plus the lossless-jitter budget.
    let trace = sim::generate(&TraceSpec::new(Model::Jitter20Loss5, 3, 15_000));
    let report = sim::replay(&trace, Config::default(), 0).expect("valid config");
    assert!(report.concealed <= report.unrecoverable + 30, "{report:?}");
}

#[test]
fn an_isolated_loss_is_decoded_from_fec_when_the_successor_is_there() {
    // 40 ms transit with up to 15 ms of jitter; every 50th frame lost. Once the buffer has seen a few losses that
    // FEC could recover (and made room for the successor to be there in time), each lost frame's slot decodes the
    // successor's FEC, and no slot is concealed.
    let mut rng = sim::Rng::new(7);
    let stream: Vec<Sent> = (0..1_500u64)
        .map(|seq| {
            let send_ms = 1_000.0 + 20.0 * seq as f64;
            let lost = seq % 50 == 25;
            Sent { seq, send_ms, arrival_ms: (!lost).then(|| send_ms + 40.0 + 15.0 * rng.uniform()), eot: false }
        })
        .collect();
    let slots = drive(&stream);
    let mut fec = Vec::new();
    let mut concealed_early = 0;
    for (i, slot) in slots.iter().enumerate() {
        match &slot.action {
            Action::DecodeFec { missing, next_payload } => {
                assert_eq!(missing.0 + 1, *next_payload);
                fec.push(missing.0);
            }
            Action::Conceal { .. } if i < 400 => concealed_early += 1,
            Action::Conceal { .. } => panic!("slot {i} concealed"),
            _ => {}
        }
    }
    assert!(concealed_early <= 6, "{concealed_early} slots concealed in the first 8 s");
    let expected: Vec<u64> = (425..1_500).step_by(50).collect();
    assert!(fec.ends_with(&expected), "FEC for {fec:?}");
}

#[test]
fn delay_changes_go_into_pauses_or_gentle_shrinks() {
    // Talkspurts of 1.5 s with pauses of 600–700 ms (not whole frames: every talkspurt starts at another phase of
    // the playout slots) over a 40 ms link with up to 30 ms of jitter; the fourth talkspurt ends in a 200 ms delay
    // spike.
    let mut rng = sim::Rng::new(3);
    let mut stream = Vec::new();
    let mut send_ms = 1_000.0;
    let mut seq = 0u64;
    for spurt in 0..8u64 {
        for i in 0..75u64 {
            let spike = if spurt == 3 && i >= 60 { 200.0 - 20.0 * (i - 60) as f64 } else { 0.0 };
            let arrival_ms = send_ms + 40.0 + 30.0 * rng.uniform() + spike.max(0.0);
            stream.push(Sent { seq, send_ms, arrival_ms: Some(arrival_ms), eot: i == 74 });
            seq += 1;
            send_ms += 20.0;
        }
        send_ms += 600.0 + 13.0 * spurt as f64;
    }
    let slots = drive(&stream);
    let mut starts = Vec::new();
    let mut previous_silent = true;
    let mut last_played = 0;
    for slot in &slots {
        let silent = matches!(slot.action, Action::Silence { .. });
        if let Action::Play { payload, .. } = slot.action {
            if previous_silent {
                starts.push((payload, slot.delay_ms, slot.target_ms));
            }
            if let Stretch::Shrink { samples } = slot.stretch {
                // Inside a talkspurt, a shrink is gentle (≤ 2 ms) unless a backlog far above the target is drained.
                let backlog = slot.delay_ms - slot.target_ms;
                assert!(samples <= 96 || backlog > 40.0, "frame {payload}: shrink {samples} with backlog {backlog}");
            }
        }
        if let Action::Play { payload, .. } = slot.action {
            last_played = payload;
        }
        // Only the spike (frames 285..300 arrive up to 200 ms late) is concealed, while its frames are waited for.
        if matches!(slot.action, Action::Conceal { .. }) {
            assert!((280..300).contains(&last_played), "concealed after frame {last_played}");
        }
        previous_silent = silent;
    }
    assert_eq!(starts.len(), 8, "{starts:?}");
    // Every talkspurt after the first starts at the target: the silence before it was stretched so that it does —
    // exactly, unless its first packet arrived less than a frame before it was due (then it starts at once, at
    // most a frame above the target). Before, the start delay fell anywhere within ±half a frame of the target.
    let mut exact = 0;
    for &(payload, delay, target) in &starts[1..] {
        assert!(
            (-0.5..20.0).contains(&(delay - target)),
            "talkspurt at frame {payload}: delay {delay}, target {target}"
        );
        if (delay - target).abs() <= 0.5 {
            exact += 1;
        }
    }
    assert!(exact >= 5, "{exact} of 7 talkspurts start exactly at the target: {starts:?}");
    // The spike raised the delay at the end of the fourth talkspurt; the fifth starts back at the target: the big
    // reduction happened in the pause.
    let end_of_fourth = slots
        .iter()
        .filter_map(|s| match s.action {
            Action::Play { payload: 299, .. } => Some(s.delay_ms),
            _ => None,
        })
        .next()
        .expect("frame 299 played");
    // (The spike empties the buffer for longer than a stall: its frames restart playout within a quarter frame of
    // arriving, so the fourth talkspurt ends about 20 ms lower than with whole-frame silence slots.)
    assert!(
        end_of_fourth > starts[4].1 + 15.0 && (starts[4].1 - starts[4].2).abs() <= 0.5,
        "end of the spike talkspurt {end_of_fourth}, next start {:?} (all {starts:?})",
        starts[4]
    );
}

/// A stalled playout side (the media thread starved of CPU for 600 ms: no slots, while packets keep arriving and
/// are pushed with their true arrival times once it runs again) is recovered from within 3 s: the backlog is
/// played out faster and the delay is back near what it was, instead of the stall being learned as a network
/// delay spike that holds the delay up for the histogram's memory.
#[test]
fn a_stalled_playout_side_recovers_within_three_seconds() {
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb: JitterBuffer<u64> = JitterBuffer::new(Config::default(), t0).expect("valid config");
    let at = |ms: f64| t0 + Duration::from_micros((ms * 1_000.0).round() as u64);
    let (stall_from, stall_ms) = (10_000.0, 600.0);
    let mut slot_ms = 1_005.0;
    let mut next_seq = 0u64;
    let mut before = None;
    let mut recovered_at = None;
    while slot_ms < 20_000.0 {
        // Every packet sent until this slot has arrived (5 ms one-way, no jitter).
        while 1_000.0 + next_seq as f64 * 20.0 + 5.0 <= slot_ms {
            let arrival = 1_000.0 + next_seq as f64 * 20.0 + 5.0;
            let packet = Packet {
                seq: Seq(next_seq),
                timestamp: Timestamp((next_seq * 960) as u32),
                end_of_talkspurt: false,
                payload: next_seq,
            };
            let _ = jb.push(at(arrival), packet);
            next_seq += 1;
        }
        let decision = jb.poll_playout(at(slot_ms));
        let delay = jb.stats().current_delay.as_secs_f64() * 1e3;
        if slot_ms < stall_from {
            before = Some(delay);
        } else if recovered_at.is_none() && before.is_some_and(|b| delay <= b + 10.0) {
            recovered_at = Some(slot_ms - stall_from - stall_ms);
        }
        let stretch_ms = match decision.stretch {
            Stretch::None => 0.0,
            Stretch::Shrink { samples } => -f64::from(samples) / 48.0,
            Stretch::Expand { samples } => f64::from(samples) / 48.0,
        };
        let slot_len_ms = match decision.action {
            Action::Silence { samples } => f64::from(samples) / 48.0,
            _ => 20.0,
        };
        slot_ms += slot_len_ms + stretch_ms;
        if (stall_from..stall_from + 20.0).contains(&slot_ms) {
            slot_ms += stall_ms;
        }
    }
    let recovered_ms = recovered_at.expect("the delay came back near its level before the stall");
    eprintln!(
        "delay before the stall {:.1} ms; back within 10 ms of it {recovered_ms:.0} ms after",
        before.unwrap_or(0.0)
    );
    assert!(recovered_ms <= 3_000.0, "recovered after {recovered_ms} ms");
}
