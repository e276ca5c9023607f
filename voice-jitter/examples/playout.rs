//! A stream of 20 ms frames over a jittery, lossy path, played out through the adaptive jitter buffer: what it
//! decides slot by slot, and its statistics at the end.
//!
//! `cargo run -p voice-jitter --example playout`

use std::time::{Duration, Instant};

use voice_jitter::{Action, Config, JitterBuffer, Packet, Seq, Stretch, Timestamp};

fn main() -> Result<(), voice_jitter::ConfigError> {
    // Simulated time: one origin read from the clock, every later time an offset from it. (A real driver reads its
    // clock at each call; the buffer itself never does.)
    #[allow(clippy::disallowed_methods, reason = "the simulated clock's origin: every time after it is t0 + an offset")]
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new(Config::default(), t0)?;
    let frame = Duration::from_millis(20);
    // Arrival of frame i: sent at i × 20 ms, 30 ms of latency plus up to 45 ms of jitter (a fixed pseudo-random
    // pattern); every 17th frame is lost.
    let arrival = |i: u32| {
        let jitter_ms = u64::from(i.wrapping_mul(2_654_435_761) >> 24) * 45 / 255;
        frame * i + Duration::from_millis(30 + jitter_ms)
    };
    let mut arrivals: Vec<(Duration, u32)> = (0..500).filter(|i| i % 17 != 5).map(|i| (arrival(i), i)).collect();
    arrivals.sort();

    let mut next = 0;
    let mut now = Duration::ZERO;
    let mut slot = 0;
    while next < arrivals.len() || jb.depth() > 0 {
        // Everything that arrived by now goes in, with its own arrival time.
        while let Some(&(at, i)) = arrivals.get(next).filter(|(at, _)| *at <= now) {
            let packet =
                Packet { seq: Seq(u64::from(i)), timestamp: Timestamp(960 * i), end_of_talkspurt: false, payload: i };
            if let Err(e) = jb.push(t0 + at, packet) {
                println!("{:>6} ms  frame {i} refused: {e}", at.as_millis());
            }
            next += 1;
        }
        // One decision per playout slot; the audio side would decode, conceal or stay silent, and stretch.
        let decision = jb.poll_playout(t0 + now);
        let (what, samples) = match decision.action {
            Action::Play { payload, .. } => (format!("play frame {payload}"), 960),
            Action::DecodeFec { next_payload, .. } => {
                (format!("frame {} from the FEC of the next", next_payload - 1), 960)
            }
            Action::Conceal { samples } => ("conceal".to_string(), samples),
            Action::Silence { samples } => ("silence".to_string(), samples),
        };
        let stretch = match decision.stretch {
            Stretch::None => 0,
            Stretch::Shrink { samples } => -i64::from(samples),
            Stretch::Expand { samples } => i64::from(samples),
        };
        if slot < 12 || !matches!(decision.action, Action::Play { .. }) {
            println!("{:>6} ms  {what}, stretch {stretch:+} samples, depth {}", now.as_millis(), jb.depth());
        }
        // The slot lasts what the audio side played: its samples plus the stretch (48 kHz).
        let played = (i64::from(samples) + stretch).max(48) as u64;
        now += Duration::from_micros(played * 1_000 / 48);
        slot += 1;
    }
    let s = jb.stats();
    println!(
        "\n{} slots: {} played, {} from FEC, {} concealed, {} silence; {} late; target {} ms, delay {} ms",
        slot,
        s.played,
        s.fec_recovered,
        s.concealed_frames,
        s.silence_frames,
        s.late,
        s.target_delay.as_millis(),
        s.current_delay.as_millis()
    );
    Ok(())
}
