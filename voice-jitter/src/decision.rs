//! The playout decision: the contract between the jitter buffer (which decides) and the decoder pipeline in
//! voice-codec (which carries it out on audio).

use voice_proto::{Seq, Timestamp};

/// What to do for one playout slot (one frame period), plus an optional time-stretch of that slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playout<P> {
    /// What produces this slot's audio.
    pub action: Action<P>,
    /// Shorten or lengthen this slot's audio, to move the buffer depth toward its target.
    pub stretch: Stretch,
}

/// How to produce one slot of audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Decode this packet normally.
    Play {
        /// Its sequence number.
        seq: Seq,
        /// Its media timestamp.
        timestamp: Timestamp,
        /// The Opus payload.
        payload: P,
    },
    /// Frame `missing` was lost but its successor is buffered: decode the in-band FEC data carried in
    /// `next_payload` (Opus `decode_fec = true`) for this slot. The successor stays buffered and is played normally
    /// at the next slot.
    DecodeFec {
        /// The lost frame this slot stands for.
        missing: Seq,
        /// Payload of the packet that follows it.
        next_payload: P,
    },
    /// Nothing usable: packet loss concealment (Opus PLC) for `samples` per channel at 48 kHz — exactly the missing
    /// duration, as libopus requires.
    Conceal {
        /// Samples per channel to synthesize, 48 kHz.
        samples: u32,
    },
    /// The stream is not active (not started yet, DTX, end of talkspurt): output `samples` of silence — up to a
    /// frame: a quarter frame while nothing is buffered (`Tuning::idle_slot`), and before a talkspurt exactly what
    /// it takes for its first frame to start at the target delay.
    Silence {
        /// Samples per channel of silence, 48 kHz.
        samples: u32,
    },
}

/// A time-stretch request for one slot. The audio side applies it where the signal allows (low-energy or periodic
/// regions) and may apply less than asked; the buffer only needs it to move the depth in the asked direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stretch {
    /// Play the slot at its natural length.
    #[default]
    None,
    /// Remove up to `samples` (48 kHz, per channel) from this slot: the buffer is deeper than its target.
    Shrink {
        /// Samples per channel to remove.
        samples: u32,
    },
    /// Add up to `samples` (48 kHz, per channel) to this slot: the buffer is shallower than its target.
    Expand {
        /// Samples per channel to add.
        samples: u32,
    },
}
