//! A shard: the forwarding state one UDP thread owns, and the data plane that runs on it.
//!
//! Every shard holds a replica of the tables forwarding needs — sessions (token, public id, secret, room, mute and
//! deafen, whisper lists, bound address), rooms (members, voice allowed) and the token / public id / address maps —
//! kept in step by the control plane's [`ShardCmd`]s, applied in order. The per-packet state of a session (rate
//! limit buckets, last datagram, speaking, receiver-report totals) lives in the shard that receives its datagrams:
//! the kernel steers one client address to one socket, so one shard. What the control plane must hear of
//! (speaking changes, bindings, expired bindings, loss reports) leaves as [`ShardEvent`]s.

mod data;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use voice_proto::{PublicId, ReplayWindow, SessionSecret, SessionToken, Transmit, UplinkKey};

use super::msg::{ShardCmd, ShardEvent};
use crate::counters::Counters;
use crate::ids::{RoomIdx, SessionIdx};
use crate::ratelimit::{BucketParams, TokenBucket};
use crate::session::Whisper;
use crate::slab::Slab;
use crate::timers::Deadlines;

/// What a shard needs of the relay's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardSettings {
    pub(crate) packets: BucketParams,
    pub(crate) bytes: BucketParams,
    pub(crate) speaking_timeout: Duration,
    pub(crate) binding_idle_timeout: Duration,
    pub(crate) housekeeping_interval: Duration,
    /// Origin of the housekeeping grid (the relay's creation).
    pub(crate) origin: Instant,
    /// Receiver-report totals are sent to the control plane this often (`None`: only when
    /// [`Shard::flush_loss`] is called, as the in-process [`Relay`](crate::Relay) does before each hint decision).
    pub(crate) loss_flush: Option<Duration>,
}

/// What receivers reported through this shard about a session as a sender, and its own round-trip time.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LossAcc {
    pub(crate) worst: u8,
    pub(crate) max_jitter_ms: u32,
    /// Some report about it arrived since the last flush.
    pub(crate) about: bool,
    /// Its own latest RTT, not yet flushed.
    pub(crate) rtt_ms: Option<u32>,
    /// In `Shard::loss_dirty`.
    pub(crate) dirty: bool,
}

/// A shard's record of one session.
#[derive(Debug)]
pub(crate) struct FwdSession {
    pub(crate) generation: u32,
    pub(crate) token: SessionToken,
    pub(crate) public_id: PublicId,
    pub(crate) secret: SessionSecret,
    /// Checks the uplink tag of the session's AUDIO_UPs, PINGs and reports (derived from `secret` once).
    pub(crate) uplink: UplinkKey,
    /// Sequence numbers of the AUDIO_UPs forwarded for this session (received here): a copied packet is refused
    /// before it is charged.
    pub(crate) seen: ReplayWindow,
    pub(crate) room: Option<RoomIdx>,
    pub(crate) muted: bool,
    pub(crate) deafened: bool,
    pub(crate) whispers: Vec<Whisper>,
    /// The bound address (replicated: the same in every shard once the control plane's `Bind` arrived).
    pub(crate) bound: Option<SocketAddr>,
    /// Counter of the newest HELLO known here (accepted here, or told by the control plane).
    pub(crate) hello_counter: Option<u64>,
    /// The binding was made by a HELLO this shard received: the address's datagrams come here, and this shard
    /// expires the binding when they stop.
    pub(crate) owner: bool,
    /// A HELLO accepted here whose HELLO_ACK waits for the control plane's `Bind` (address, counter).
    pub(crate) pending_ack: Option<(SocketAddr, u64)>,
    /// Last datagram from the bound address, received here.
    pub(crate) last_rx: Instant,
    /// Last accepted audio packet, received here.
    pub(crate) last_audio: Instant,
    pub(crate) speaking: bool,
    pub(crate) packet_bucket: TokenBucket,
    /// PINGs and RECEIVER_REPORTs: the packet rate again, in a bucket of their own. They carry no sequence number,
    /// so a copied genuine one passes the tag; here it cannot eat into the audio budget.
    pub(crate) probe_bucket: TokenBucket,
    pub(crate) byte_bucket: TokenBucket,
    pub(crate) loss: LossAcc,
    /// Deadlines armed in the shard's timer heap (the entry that matches is the live one).
    pub(crate) binding_timer: Option<Instant>,
    pub(crate) speaking_timer: Option<Instant>,
}

impl FwdSession {
    /// Whether this session receives forwarded audio: bound and not deafened.
    #[inline]
    pub(crate) fn audio_destination(&self) -> Option<SocketAddr> {
        if self.deafened { None } else { self.bound }
    }

    #[inline]
    pub(crate) fn whisper(&self, target: voice_proto::WhisperTarget) -> Option<&Whisper> {
        self.whispers.iter().find(|w| w.target == target)
    }
}

/// A shard's record of one room.
#[derive(Debug)]
pub(crate) struct FwdRoom {
    pub(crate) allow_voice: bool,
    /// Members in join order (the control plane's order).
    pub(crate) members: Vec<SessionIdx>,
}

/// A shard's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ShardTimer {
    Binding(SessionIdx),
    Speaking(SessionIdx),
}

/// Initial capacity of the transmit queue: one packet to a full room without growing.
const TRANSMIT_QUEUE_CAPACITY: usize = 1024;

/// The forwarding state of one UDP thread (see the module docs). Sans-IO like the rest of the core: fed
/// datagrams, commands and timeouts with `now`, polled for transmits and events.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) s: ShardSettings,
    pub(crate) sessions: Slab<SessionIdx, FwdSession>,
    pub(crate) by_token: HashMap<SessionToken, SessionIdx>,
    pub(crate) by_public: HashMap<PublicId, SessionIdx>,
    pub(crate) by_addr: HashMap<SocketAddr, SessionIdx>,
    pub(crate) rooms: Slab<RoomIdx, FwdRoom>,
    pub(crate) transmits: VecDeque<Transmit>,
    /// Buffers of the HELLO_ACKs (see `send_hello_ack`).
    pub(crate) ack_pool: BytesMut,
    pub(crate) events: VecDeque<ShardEvent>,
    pub(crate) counters: Counters,
    pub(crate) timers: Deadlines<ShardTimer>,
    /// Sessions with receiver-report totals not yet sent.
    pub(crate) loss_dirty: Vec<SessionIdx>,
    pub(crate) next_loss_flush: Option<Instant>,
    /// Timer entries looked at by `handle_timeout` (due ones, live or stale), for tests and benches.
    pub(crate) timer_visits: u64,
}

impl Shard {
    pub(crate) fn new(s: ShardSettings) -> Self {
        Self {
            s,
            sessions: Slab::new(),
            by_token: HashMap::new(),
            by_public: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: Slab::new(),
            transmits: VecDeque::with_capacity(TRANSMIT_QUEUE_CAPACITY),
            ack_pool: BytesMut::new(),
            events: VecDeque::with_capacity(64),
            counters: Counters::default(),
            timers: Deadlines::new(),
            loss_dirty: Vec::new(),
            next_loss_flush: None,
            timer_visits: 0,
        }
    }

    #[inline]
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub(crate) fn poll_event(&mut self) -> Option<ShardEvent> {
        self.events.pop_front()
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Applies one command of the control plane.
    pub(crate) fn apply(&mut self, cmd: ShardCmd) {
        match cmd {
            ShardCmd::AddRoom { room, allow_voice } => {
                self.rooms.insert_at(room, FwdRoom { allow_voice, members: Vec::new() });
            }
            ShardCmd::RemoveRoom { room } => {
                self.rooms.remove(room);
            }
            ShardCmd::AddSession { session, token, public_id, secret, at } => {
                let secret = SessionSecret::new(secret);
                let record = FwdSession {
                    generation: session.generation,
                    token,
                    public_id,
                    uplink: secret.uplink_key(),
                    seen: ReplayWindow::new(),
                    secret,
                    room: None,
                    muted: false,
                    deafened: false,
                    whispers: Vec::new(),
                    bound: None,
                    hello_counter: None,
                    owner: false,
                    pending_ack: None,
                    last_rx: at,
                    last_audio: at,
                    speaking: false,
                    packet_bucket: TokenBucket::full(self.s.packets, at),
                    probe_bucket: TokenBucket::full(self.s.packets, at),
                    byte_bucket: TokenBucket::full(self.s.bytes, at),
                    loss: LossAcc::default(),
                    binding_timer: None,
                    speaking_timer: None,
                };
                if self.sessions.insert_at(session.idx, record) {
                    self.by_token.insert(token, session.idx);
                    self.by_public.insert(public_id, session.idx);
                }
            }
            ShardCmd::RemoveSession { idx } => {
                self.leave(idx);
                if let Some(s) = self.sessions.remove(idx) {
                    self.by_token.remove(&s.token);
                    self.by_public.remove(&s.public_id);
                    if let Some(addr) = s.bound {
                        self.forget_addr(addr, idx);
                    }
                }
            }
            ShardCmd::Join { idx, room } => {
                self.leave(idx);
                let Some(s) = self.sessions.get_mut(idx) else { return };
                s.room = Some(room);
                s.loss = LossAcc { dirty: s.loss.dirty, ..LossAcc::default() };
                if let Some(r) = self.rooms.get_mut(room) {
                    r.members.push(idx);
                }
            }
            ShardCmd::Leave { idx } => self.leave(idx),
            ShardCmd::SetState { idx, muted, deafened } => {
                if let Some(s) = self.sessions.get_mut(idx) {
                    s.muted = muted;
                    s.deafened = deafened;
                    if muted {
                        s.speaking = false;
                    }
                }
            }
            ShardCmd::SetWhisper { idx, target, members } => {
                let Some(s) = self.sessions.get_mut(idx) else { return };
                match members {
                    None => s.whispers.retain(|w| w.target != target),
                    Some(members) => match s.whispers.iter_mut().find(|w| w.target == target) {
                        Some(w) => w.members = members,
                        None => s.whispers.push(Whisper { target, members }),
                    },
                }
            }
            ShardCmd::Bind { idx, addr, counter } => {
                let Some(s) = self.sessions.get_mut(idx) else { return };
                // A newer HELLO accepted here is on its way to the control plane, which will send it back.
                if s.hello_counter.is_some_and(|c| counter < c) {
                    return;
                }
                s.hello_counter = Some(counter);
                if s.bound != Some(addr) {
                    s.owner = false;
                }
                let ack = s.pending_ack.take_if(|p| *p == (addr, counter)).is_some();
                self.bind(idx, addr);
                // The HELLO accepted here won: every shard is being told (this command went to all of them), so
                // the client may hear that it is bound.
                if ack {
                    self.send_hello_ack(idx, addr, counter);
                }
            }
            ShardCmd::Unbind { idx, addr } => {
                if let Some(s) = self.sessions.get_mut(idx)
                    && s.bound == Some(addr)
                {
                    s.bound = None;
                    s.owner = false;
                    self.forget_addr(addr, idx);
                }
            }
        }
    }

    /// Takes session `idx` out of its room here (no event: the control plane made the change).
    fn leave(&mut self, idx: SessionIdx) {
        let Some(s) = self.sessions.get_mut(idx) else { return };
        s.speaking = false;
        let Some(room) = s.room.take() else { return };
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.retain(|&m| m != idx);
        }
    }

    /// Binds `addr` to session `idx` (it must exist): an address belongs to one session, the latest to prove a
    /// secret from it.
    pub(crate) fn bind(&mut self, idx: SessionIdx, addr: SocketAddr) {
        let Some(s) = self.sessions.get_mut(idx) else { return };
        let old = s.bound.replace(addr);
        if old == Some(addr) {
            return;
        }
        if let Some(old) = old {
            self.forget_addr(old, idx);
        }
        if let Some(other) = self.by_addr.insert(addr, idx)
            && other != idx
            && let Some(o) = self.sessions.get_mut(other)
        {
            o.bound = None;
            o.owner = false;
        }
    }

    fn forget_addr(&mut self, addr: SocketAddr, idx: SessionIdx) {
        if self.by_addr.get(&addr) == Some(&idx) {
            self.by_addr.remove(&addr);
        }
    }
}
