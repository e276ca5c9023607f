//! The messages between the control plane and the shards (see the crate docs, "Data plane without a lock").
//!
//! Commands go from the control plane to **every** shard, in the order the control plane made them: each shard
//! applies the same sequence to its replica of the forwarding tables, so all replicas pass through the same states.
//! Events go from one shard to the control plane, in the order that shard made them. Neither carries anything
//! that the receiver must answer: the control plane never waits for a shard, a shard never waits for anything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use voice_proto::{KEY_LEN, PublicId, SessionToken, WhisperTarget};

use crate::ids::{RoomIdx, SessionIdx, SessionRef};

/// A change of the forwarding state, from the control plane to every shard.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub(crate) enum ShardCmd {
    /// A room exists (configured, or created by a Join).
    AddRoom { room: RoomIdx, allow_voice: bool },
    /// An empty ad-hoc room is gone.
    RemoveRoom { room: RoomIdx },
    /// A session logged in (its slot, generation, token, public id and secret). `at`: its creation time (its rate
    /// limit buckets start full then).
    AddSession { session: SessionRef, token: SessionToken, public_id: PublicId, secret: [u8; KEY_LEN], at: Instant },
    /// A session ended: out of its room, its token, public id and address forgotten.
    RemoveSession { idx: SessionIdx },
    /// The session joined `room` (leaving its room, if any). Its speaking state and loss reports start afresh.
    Join { idx: SessionIdx, room: RoomIdx },
    /// The session left its room.
    Leave { idx: SessionIdx },
    /// Mute / deafen. Muting ends speaking (the control plane announces it).
    SetState { idx: SessionIdx, muted: bool, deafened: bool },
    /// A whisper list set (`Some`, shared by every shard) or removed (`None`).
    SetWhisper { idx: SessionIdx, target: WhisperTarget, members: Option<Arc<[PublicId]>> },
    /// The session's binding, as the control plane decided it: `addr`, proven by a HELLO with `counter`.
    Bind { idx: SessionIdx, addr: SocketAddr, counter: u64 },
    /// The binding to `addr` expired (if the session is still bound to it).
    Unbind { idx: SessionIdx, addr: SocketAddr },
}

/// Something a shard saw that the control plane must know, from one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ShardEvent {
    /// The session, in `room` as far as the shard knew, started or stopped speaking (first audio packet,
    /// END_OF_TALKSPURT, or the speaking timeout).
    Speaking { session: SessionRef, room: RoomIdx, speaking: bool },
    /// A HELLO with `counter` proved the session's secret from `addr` (a bind, a roam, or a repeat).
    Bound { session: SessionRef, addr: SocketAddr, counter: u64 },
    /// The binding to `addr` expired: nothing came from it for `binding_idle_timeout` (told by the shard that
    /// receives that address's datagrams).
    Unbound { session: SessionRef, addr: SocketAddr },
    /// What this shard's receivers reported about a sender over the last hint interval (`about`: worst
    /// `fraction_lost`, largest jitter in ms), and the sender's own latest round-trip time if it reported one here.
    Loss { session: SessionRef, about: Option<(u8, u32)>, rtt_ms: Option<u32> },
}
