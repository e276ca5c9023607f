//! The data plane (`PROTOCOL.md` §2) on a shard: validation, address binding, and zero-copy fan-out.
//!
//! Steady-state audio costs one token lookup, one uplink tag check (SipHash-2-4 over the datagram), one replay
//! window check, two token buckets, one in-place rewrite and truncation, one `freeze`, and one refcount bump plus
//! one queue push per recipient: no allocation, no lock, no message, no copy.
//!
//! Order matters (`PROTOCOL.md` §2.3, §2.8): token → bound address → uplink tag, and only then anything that reads
//! or writes the session's per-packet state (binding refresh, replay window, buckets). A datagram forged with a
//! sniffed token from the member's own address stops at the tag and is counted relay-wide only.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use voice_proto::{
    AudioFlags, Datagram, DecodeError, Hello, PacketKind, PublicId, ReceiverReport, Seq, SessionToken, Transmit,
    WhisperTarget, rewrite_up_to_down,
};

use super::{FwdSession, Shard, ShardTimer};
use crate::counters::{Counters, DropReason};
use crate::ids::{RoomIdx, SessionIdx, SessionRef};
use crate::ratelimit::take_both;
use crate::relay::msg::ShardEvent;
use crate::slab::Slab;
use crate::timers::round_up;

fn reason_of(e: DecodeError) -> DropReason {
    match e {
        DecodeError::Oversize { .. } => DropReason::Oversize,
        DecodeError::WrongDirection(_) => DropReason::WrongDirection,
        _ => DropReason::Malformed,
    }
}

impl Shard {
    /// Handles one UDP datagram received from `from` (see [`Relay::handle_datagram`](crate::Relay::handle_datagram)).
    pub(crate) fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: BytesMut) {
        self.counters.packets_in += 1;
        self.counters.bytes_in += datagram.len() as u64;
        let parsed = match Datagram::decode_from_client(&datagram) {
            Ok(d) => d,
            Err(e) => return self.counters.drop(reason_of(e)),
        };
        let result = match parsed {
            Datagram::Keepalive => self.keepalive(now, from),
            Datagram::Hello(h) => self.hello(now, from, h),
            Datagram::Ping(p) => self.ping(now, from, p.token, datagram),
            Datagram::ReceiverReport(r) => self.report(now, from, &r, &datagram),
            Datagram::AudioUp(a) => {
                let (token, target, seq) = (a.token, a.header.target, a.header.seq);
                let end = a.header.flags.contains(AudioFlags::END_OF_TALKSPURT);
                self.audio(now, from, (token, seq), target, end, datagram)
            }
            // `decode_from_client` refuses relay → client kinds.
            Datagram::AudioDown(_) | Datagram::HelloAck(_) | Datagram::Pong(_) => Err(DropReason::WrongDirection),
        };
        if let Err(reason) = result {
            self.counters.drop(reason);
        }
    }

    /// The session named by `token` if `from` is its bound address and `datagram` (a whole AUDIO_UP, PING or
    /// RECEIVER_REPORT) ends with a valid uplink tag under its key; only then refreshes the binding. A failure here
    /// has touched nothing of the session.
    #[inline]
    fn bound_session(
        &mut self,
        now: Instant,
        from: SocketAddr,
        token: SessionToken,
        datagram: &[u8],
    ) -> Result<SessionIdx, DropReason> {
        let &idx = self.by_token.get(&token).ok_or(DropReason::UnknownToken)?;
        let s = self.sessions.get_mut(idx).ok_or(DropReason::UnknownToken)?;
        if s.bound != Some(from) {
            return Err(DropReason::Unbound);
        }
        s.uplink.verify(datagram).map_err(|_| DropReason::BadTag)?;
        s.last_rx = now;
        Ok(idx)
    }

    fn keepalive(&mut self, now: Instant, from: SocketAddr) -> Result<(), DropReason> {
        let &idx = self.by_addr.get(&from).ok_or(DropReason::StrayKeepalive)?;
        let s = self.sessions.get_mut(idx).ok_or(DropReason::StrayKeepalive)?;
        s.last_rx = now;
        Ok(())
    }

    /// A HELLO that proves the session's secret binds `from` here at once (so the client's own datagrams are
    /// accepted) and goes to the control plane; the HELLO_ACK waits until the control plane's `Bind` for it comes
    /// back (`Shard::apply`), so that an acknowledged client is known to every shard.
    fn hello(&mut self, now: Instant, from: SocketAddr, h: Hello) -> Result<(), DropReason> {
        let &idx = self.by_token.get(&h.token).ok_or(DropReason::UnknownToken)?;
        let params = self.s.packets;
        let s = self.sessions.get_mut(idx).ok_or(DropReason::UnknownToken)?;
        s.secret.verify_hello(&h).map_err(|_| DropReason::BadMac)?;
        if s.hello_counter.is_some_and(|c| h.counter <= c) {
            return Err(DropReason::StaleHello);
        }
        // Every accepted HELLO goes to the control plane and back to every shard: a repeat or a roam is charged to the
        // packet bucket, so a session cannot make the relay work harder than its packet limit allows (binding an
        // unbound session is free: its audio starts with a full burst). Only the member can spend it: a HELLO needs
        // the secret and a fresh counter.
        if s.bound.is_some() && !s.packet_bucket.take(params, now, 1) {
            return Err(DropReason::RateLimited);
        }
        s.hello_counter = Some(h.counter);
        s.last_rx = now;
        s.owner = true;
        s.pending_ack = Some((from, h.counter));
        let session = SessionRef { idx, generation: s.generation };
        if s.binding_timer.is_none() {
            let at = round_up(now + self.s.binding_idle_timeout, self.s.origin, self.s.housekeeping_interval);
            s.binding_timer = Some(at);
            self.timers.arm(at, ShardTimer::Binding(idx));
        }
        self.bind(idx, from);
        self.events.push_back(ShardEvent::Bound { session, addr: from, counter: h.counter });
        self.counters.hellos_accepted += 1;
        Ok(())
    }

    /// Sends the HELLO_ACK for `counter` to `to` (as long as the HELLO: 32 bytes), from the shard's small buffer
    /// pool: no allocation once the pool is warm (its earlier acks are sent and dropped when it is refilled).
    pub(crate) fn send_hello_ack(&mut self, idx: SessionIdx, to: SocketAddr, counter: u64) {
        let Some(s) = self.sessions.get(idx) else { return };
        let ack = s.secret.hello_ack(s.public_id, counter);
        if self.ack_pool.capacity() < voice_proto::HELLO_LEN {
            self.ack_pool.reserve(ACK_POOL);
        }
        Datagram::HelloAck(ack).encode(&mut self.ack_pool);
        let payload = self.ack_pool.split().freeze();
        self.push_reply(to, payload);
    }

    /// Takes one token from the session's bucket for pings and reports: the packet rate, but apart from the audio
    /// budget, so that a copy of a genuine PING or report (which has no sequence number the relay could refuse it
    /// by, `PROTOCOL.md` §2.8) replayed from the member's address cannot silence the member's audio.
    fn charge(&mut self, idx: SessionIdx, now: Instant) -> Result<(), DropReason> {
        let params = self.s.packets;
        let s = self.sessions.get_mut(idx).ok_or(DropReason::UnknownToken)?;
        if s.probe_bucket.take(params, now, 1) { Ok(()) } else { Err(DropReason::RateLimited) }
    }

    fn ping(
        &mut self,
        now: Instant,
        from: SocketAddr,
        token: SessionToken,
        mut buf: BytesMut,
    ) -> Result<(), DropReason> {
        let idx = self.bound_session(now, from, token, &buf)?;
        self.charge(idx, now)?;
        // PONG has the PING's layout with kind 0x06, bytes 4..8 zero and no uplink tag (`PROTOCOL.md` §2.6); `decode`
        // checked the length is exactly 24.
        buf[1] = PacketKind::Pong as u8;
        buf[4..8].fill(0);
        buf.truncate(voice_proto::PING_LEN);
        self.push_reply(from, buf.freeze());
        Ok(())
    }

    fn push_reply(&mut self, to: SocketAddr, payload: Bytes) {
        self.counters.packets_out += 1;
        self.counters.bytes_out += payload.len() as u64;
        self.transmits.push_back(Transmit { destination: to, payload });
    }

    fn report(
        &mut self,
        now: Instant,
        from: SocketAddr,
        r: &ReceiverReport<'_>,
        datagram: &[u8],
    ) -> Result<(), DropReason> {
        let idx = self.bound_session(now, from, r.token, datagram)?;
        self.charge(idx, now)?;
        let Some(room) = self.sessions.get(idx).and_then(|s| s.room) else { return Err(DropReason::NotInRoom) };
        if let Some(rtt) = r.rtt_ms
            && let Some(s) = self.sessions.get_mut(idx)
        {
            s.loss.rtt_ms = Some(u32::from(rtt));
            mark_dirty(s, idx, &mut self.loss_dirty);
        }
        for b in r.blocks() {
            let Some(&src) = self.by_public.get(&b.source) else { continue };
            if src == idx {
                continue;
            }
            if let Some(s) = self.sessions.get_mut(src)
                && s.room == Some(room)
            {
                s.loss.worst = s.loss.worst.max(b.fraction_lost);
                s.loss.max_jitter_ms = s.loss.max_jitter_ms.max(b.jitter_samples / 48);
                s.loss.about = true;
                mark_dirty(s, src, &mut self.loss_dirty);
            }
        }
        if let (Some(period), None) = (self.s.loss_flush, self.next_loss_flush)
            && !self.loss_dirty.is_empty()
        {
            self.next_loss_flush = Some(now + period);
        }
        Ok(())
    }

    fn audio(
        &mut self,
        now: Instant,
        from: SocketAddr,
        (token, seq): (SessionToken, Seq),
        target: WhisperTarget,
        end_of_talkspurt: bool,
        mut buf: BytesMut,
    ) -> Result<(), DropReason> {
        let idx = self.bound_session(now, from, token, &buf)?;
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let (packets, bytes) = (self.s.packets, self.s.bytes);
        let s = self.sessions.get_mut(idx).ok_or(DropReason::UnknownToken)?;
        let room_idx = s.room.ok_or(DropReason::NotInRoom)?;
        if s.muted {
            return Err(DropReason::Muted);
        }
        let room = self.rooms.get(room_idx).ok_or(DropReason::NotInRoom)?;
        if !room.allow_voice {
            return Err(DropReason::VoiceNotAllowed);
        }
        if !target.is_room() && s.whisper(target).is_none() {
            return Err(DropReason::UnknownWhisperTarget);
        }
        // A copy of a packet already forwarded (its tag is genuine) costs the member nothing either.
        s.seen.check(seq).map_err(|_| DropReason::Replayed)?;
        if !take_both((&mut s.packet_bucket, packets, 1), (&mut s.byte_bucket, bytes, len), now) {
            return Err(DropReason::RateLimited);
        }
        s.seen.commit(seq);
        let public_id = s.public_id;
        let was_speaking = s.speaking;
        s.last_audio = now;
        // The datagram decoded as AUDIO_UP above, so the rewrite cannot fail; stay panic-free anyway. The uplink tag
        // is cut off by truncation: the bytes stay where they are.
        let down_len = rewrite_up_to_down(&mut buf, public_id).map_err(|_| DropReason::Malformed)?;
        buf.truncate(down_len);
        let payload = buf.freeze();
        self.counters.audio_accepted += 1;
        if target.is_room() {
            fan_out_room(&self.sessions, &room.members, idx, &payload, &mut self.transmits, &mut self.counters);
        } else {
            let out = (&mut self.transmits, &mut self.counters);
            fan_out_whisper(&self.sessions, &self.by_public, idx, room_idx, target, &payload, out);
        }
        if end_of_talkspurt {
            if was_speaking {
                self.set_speaking(idx, room_idx, false, now);
            }
        } else if !was_speaking {
            self.set_speaking(idx, room_idx, true, now);
        }
        Ok(())
    }

    /// Changes a session's speaking state and tells the control plane (which tells the room).
    pub(crate) fn set_speaking(&mut self, idx: SessionIdx, room: RoomIdx, speaking: bool, now: Instant) {
        let Some(s) = self.sessions.get_mut(idx) else { return };
        if s.speaking == speaking {
            return;
        }
        s.speaking = speaking;
        if speaking && s.speaking_timer.is_none() {
            let at = now + self.s.speaking_timeout;
            s.speaking_timer = Some(at);
            self.timers.arm(at, ShardTimer::Speaking(idx));
        }
        let session = SessionRef { idx, generation: s.generation };
        self.events.push_back(ShardEvent::Speaking { session, room, speaking });
    }
}

/// Bytes of the shard's HELLO_ACK pool (refilled when it runs out).
const ACK_POOL: usize = 1024;

fn mark_dirty(s: &mut FwdSession, idx: SessionIdx, dirty: &mut Vec<SessionIdx>) {
    if !s.loss.dirty {
        s.loss.dirty = true;
        dirty.push(idx);
    }
}

#[inline]
fn push_audio(to: SocketAddr, payload: &Bytes, transmits: &mut VecDeque<Transmit>, c: &mut Counters) {
    c.packets_out += 1;
    c.audio_forwarded += 1;
    c.bytes_out += payload.len() as u64;
    transmits.push_back(Transmit { destination: to, payload: payload.clone() });
}

fn fan_out_room(
    sessions: &Slab<SessionIdx, FwdSession>,
    members: &[SessionIdx],
    sender: SessionIdx,
    payload: &Bytes,
    transmits: &mut VecDeque<Transmit>,
    c: &mut Counters,
) {
    for &m in members {
        if m == sender {
            continue;
        }
        if let Some(to) = sessions.get(m).and_then(FwdSession::audio_destination) {
            push_audio(to, payload, transmits, c);
        }
    }
}

fn fan_out_whisper(
    sessions: &Slab<SessionIdx, FwdSession>,
    by_public: &HashMap<PublicId, SessionIdx>,
    sender: SessionIdx,
    room: RoomIdx,
    target: WhisperTarget,
    payload: &Bytes,
    (transmits, c): (&mut VecDeque<Transmit>, &mut Counters),
) {
    let Some(list) = sessions.get(sender).and_then(|s| s.whisper(target)) else { return };
    for id in list.members.iter() {
        let Some(&m) = by_public.get(id) else { continue };
        if m == sender {
            continue;
        }
        if let Some(s) = sessions.get(m)
            && s.room == Some(room)
            && let Some(to) = s.audio_destination()
        {
            push_audio(to, payload, transmits, c);
        }
    }
}
