//! The load: talkers' sender, receivers, keepalives, the raw fan-out loop, and what they share.
#![allow(
    clippy::disallowed_methods,
    reason = "a load generator and benchmark: it paces traffic and measures on the wall clock"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use voice_proto::{AudioFlags, AudioHeader, Datagram, MAX_DATAGRAM_LEN, MediaKey, Timestamp, WhisperTarget};

use crate::*;

/// Shared between sender, receivers and the main thread.
pub(crate) struct Shared {
    pub(crate) phase: AtomicU8,
    pub(crate) stop: AtomicBool,
    /// Per talker × slot: send time in ns since `t0`, shifted left 8, phase in the low byte.
    pub(crate) sent_at: Vec<AtomicU64>,
    pub(crate) sent: [AtomicU64; 5],
    pub(crate) received: [AtomicU64; 5],
    pub(crate) hist: [Vec<AtomicU64>; 2],
    pub(crate) t0: Instant,
    /// Datagrams the raw loop handed to the kernel.
    pub(crate) raw_sent: AtomicU64,
    /// Per phase (relay, raw): how late each packet left against its deadline, 1 µs buckets.
    pub(crate) pace: [Vec<AtomicU64>; 2],
}

/// Kernel receive-buffer drops (last column of `/proc/net/udp`) summed over the sockets bound to `ports`.
pub(crate) fn udp_drops(ports: &std::collections::HashSet<u16>) -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else { return 0 };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
            if !ports.contains(&port) {
                return None;
            }
            cols.last()?.parse::<u64>().ok()
        })
        .sum()
}

impl Shared {
    pub(crate) fn record(&self, talker: usize, seq: u64, now: Instant) {
        let v = self.sent_at[talker * SLOTS as usize + (seq % SLOTS) as usize].load(Ordering::Relaxed);
        let phase = (v & 0xff) as u8;
        self.received[phase as usize].fetch_add(1, Ordering::Relaxed);
        let h = match phase {
            PHASE_RELAY => &self.hist[0],
            PHASE_RAW => &self.hist[1],
            _ => return,
        };
        let sent_ns = v >> 8;
        let now_ns = now.duration_since(self.t0).as_nanos() as u64;
        let us = (now_ns.saturating_sub(sent_ns) / 1000) as usize;
        h[us.min(HIST_US)].fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) fn percentile(h: &[AtomicU64], p: f64) -> Option<u64> {
    let counts: Vec<u64> = h.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let want = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (us, c) in counts.iter().enumerate() {
        acc += c;
        if acc >= want {
            return Some(us as u64);
        }
    }
    None
}

/// The plain fan-out loop: recvmmsg a batch, sendmmsg each packet to its room's other members; no parsing.
pub(crate) fn raw_loop(sock: UdpSocket, fanout: HashMap<SocketAddr, Vec<SocketAddr>>, shared: Arc<Shared>) -> Duration {
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
    const B: usize = 64;
    let fd = sock.as_raw_fd();
    sock.set_read_timeout(Some(Duration::from_millis(20))).expect("set timeout");
    // The same buffers as the relay's socket (voice_relay::driver::UDP_BUFFER_BYTES).
    let size = voice_relay::driver::UDP_BUFFER_BYTES;
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBuf, &size);
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBuf, &size);
    let fanout: HashMap<SocketAddr, Vec<SockaddrStorage>> =
        fanout.into_iter().map(|(k, v)| (k, v.into_iter().map(SockaddrStorage::from).collect())).collect();
    let mut bufs = vec![[0u8; MAX_DATAGRAM_LEN + 1]; B];
    let mut rh = MultiHeaders::<SockaddrStorage>::preallocate(B, None);
    let mut sh = MultiHeaders::<SockaddrStorage>::preallocate(B, None);
    let mut got: Vec<(usize, SocketAddr)> = Vec::with_capacity(B);
    let mut out: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(B);
    let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(B);
    let mut cpu0 = None;
    loop {
        let phase = shared.phase.load(Ordering::Relaxed);
        if phase == PHASE_RAW && cpu0.is_none() {
            cpu0 = Some(thread_cpu());
        }
        if phase == PHASE_DONE {
            return cpu0.map_or(Duration::ZERO, |c| thread_cpu() - c);
        }
        got.clear();
        {
            let mut it = bufs.iter_mut();
            let mut slices: [[IoSliceMut<'_>; 1]; B] =
                std::array::from_fn(|_| [IoSliceMut::new(it.next().map_or(&mut [][..], |b| &mut b[..]))]);
            match recvmmsg(fd, &mut rh, slices.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(res) => {
                    for m in res {
                        if let Some(a) = m.address.and_then(|a| a.as_sockaddr_in().map(|v| SocketAddr::V4((*v).into())))
                        {
                            got.push((m.bytes, a));
                        }
                    }
                }
                Err(_) => continue, // timeout: look at the phase again
            }
        }
        let flush = |out: &mut Vec<(usize, Option<SockaddrStorage>)>,
                     addrs: &mut Vec<Option<SockaddrStorage>>,
                     sh: &mut MultiHeaders<SockaddrStorage>| {
            let mut start = 0;
            while start < out.len() {
                let n = (out.len() - start).min(B);
                addrs.clear();
                addrs.extend(out[start..start + n].iter().map(|(_, a)| *a));
                let slices: [[IoSlice<'_>; 1]; B] = std::array::from_fn(|k| {
                    [IoSlice::new(out.get(start + k).map_or(&[][..], |&(i, _)| &bufs[i][..got[i].0]))]
                });
                let cm: [ControlMessage<'_>; 0] = [];
                match sendmmsg(fd, sh, slices[..n].iter(), &addrs[..], cm, MsgFlags::empty()) {
                    Ok(r) => {
                        let sent = r.count();
                        shared.raw_sent.fetch_add(sent as u64, Ordering::Relaxed);
                        start += sent.max(1);
                    }
                    Err(_) => start += 1,
                }
            }
            out.clear();
        };
        for (i, (_, from)) in got.iter().enumerate() {
            let Some(dests) = fanout.get(from) else { continue };
            for d in dests {
                out.push((i, Some(*d)));
                if out.len() == B {
                    flush(&mut out, &mut addrs, &mut sh);
                }
            }
        }
        flush(&mut out, &mut addrs, &mut sh);
    }
}

/// Sends one packet per talker every 20 ms, sealing each (its seq indexes the send-time table). Each talker has a
/// fixed phase in the period (`Pacing`); in the spread and random modes every packet is sent at its own deadline
/// (sleep with a 1 ns timer slack, then spin for the last `spin_us`), and the lateness of each send against its
/// deadline is recorded (`Shared::pace`). The offered rate is exact: deadlines are absolute, never re-based.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sender(
    talkers: Vec<(usize, usize)>,
    members: Arc<Vec<Member>>,
    relay_addr: SocketAddr,
    raw_addr: SocketAddr,
    payload: usize,
    pacing: Pacing,
    spin: Duration,
    shared: Arc<Shared>,
) -> Duration {
    let period = Duration::from_millis(20);
    let t = talkers.len() as u32;
    // Fine sleeps: the default 50 µs timer slack would make every wake-up up to 50 µs late.
    let _ = nix::sys::prctl::set_timerslack(1);
    let keys: Vec<MediaKey> = talkers
        .iter()
        .map(|&(_, m)| {
            let (kid, k) = members[m].key;
            MediaKey::new(kid, &k)
        })
        .collect();
    // (offset in the period, talker index), in send order.
    let mut order: Vec<(Duration, usize)> = (0..talkers.len())
        .map(|ti| {
            let offset = match pacing {
                Pacing::Burst | Pacing::Spread => period * (ti as u32) / t,
                Pacing::Random => {
                    // splitmix64 of the talker index: a fixed, uniform phase per talker.
                    let mut z = (ti as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^= z >> 31;
                    Duration::from_nanos(z % period.as_nanos() as u64)
                }
            };
            (offset, ti)
        })
        .collect();
    order.sort();
    let plain: Vec<u8> = (0..payload).map(|i| (i * 7) as u8).collect();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let start = Instant::now();
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        seq += 1;
        let cycle = start + period * (seq as u32);
        if talkers.is_empty() {
            std::thread::sleep(period);
        }
        for &(offset, ti) in &order {
            let m = talkers[ti].1;
            let due = cycle + offset;
            let now = Instant::now();
            if pacing == Pacing::Burst {
                // The old 1 ms grid: sleep only when the next due packet is ≥ 1 ms away, then send all that are due.
                if due > now + Duration::from_millis(1) {
                    std::thread::sleep(due - now);
                }
            } else {
                if due > now + spin {
                    std::thread::sleep(due - now - spin);
                }
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
            let phase = shared.phase.load(Ordering::Relaxed);
            let dest = match phase {
                PHASE_RELAY | PHASE_WARMUP => relay_addr,
                PHASE_RAW => raw_addr,
                _ => continue,
            };
            let member = &members[m];
            let header = AudioHeader {
                flags: AudioFlags::NONE,
                key_id: member.key.0,
                seq: voice_proto::Seq(seq),
                timestamp: Timestamp((seq as u32).wrapping_mul(960)),
                target: WhisperTarget(0),
            };
            let Ok(n) =
                keys[ti].seal_audio_up(&member.uplink, member.token, member.public_id, &header, &plain, &mut buf)
            else {
                continue;
            };
            let sent_at = Instant::now();
            let sent_ns = sent_at.duration_since(shared.t0).as_nanos() as u64;
            shared.sent_at[ti * SLOTS as usize + (seq % SLOTS) as usize]
                .store((sent_ns << 8) | u64::from(phase), Ordering::Relaxed);
            if member.udp.send_to(&buf[..n], dest).is_ok() {
                shared.sent[phase as usize].fetch_add(1, Ordering::Relaxed);
            }
            let late_us = (sent_at.saturating_duration_since(due).as_micros() as usize).min(HIST_US);
            match phase {
                PHASE_RELAY => shared.pace[0][late_us].fetch_add(1, Ordering::Relaxed),
                PHASE_RAW => shared.pace[1][late_us].fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    }
    thread_cpu()
}

/// Idle mode: every member sends a 0-byte keepalive every 10 s, spread evenly.
pub(crate) fn keepalives(
    members: Arc<Vec<Member>>,
    relay_addr: SocketAddr,
    period_s: f64,
    shared: Arc<Shared>,
) -> Duration {
    if period_s <= 0.0 {
        while !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        return thread_cpu();
    }
    let period = Duration::from_secs_f64(period_s);
    let count = members.len().max(1) as u32;
    let start = Instant::now();
    let mut cycle = 0u32;
    'outer: loop {
        for (i, m) in members.iter().enumerate() {
            if shared.stop.load(Ordering::Relaxed) {
                break 'outer;
            }
            let due = start + period * cycle + period * (i as u32) / count;
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
            let _ = m.udp.send_to(&[], relay_addr);
        }
        cycle += 1;
    }
    thread_cpu()
}

/// Receives on every member socket (one current-thread runtime, one task per socket).
pub(crate) fn receivers(
    members: Arc<Vec<Member>>,
    by_public: Arc<HashMap<u32, usize>>,
    by_token: Arc<HashMap<u32, usize>>,
    shared: Arc<Shared>,
) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    for m in 0..members.len() {
        let (members, by_public, by_token, shared) =
            (Arc::clone(&members), Arc::clone(&by_public), Arc::clone(&by_token), Arc::clone(&shared));
        local.spawn_local(async move {
            let std = members[m].udp.try_clone().expect("clone socket");
            let sock = tokio::net::UdpSocket::from_std(std).expect("register socket");
            let mut buf = [0u8; MAX_DATAGRAM_LEN + 1];
            loop {
                if sock.readable().await.is_err() {
                    return;
                }
                while let Ok(n) = sock.try_recv(&mut buf) {
                    let now = Instant::now();
                    let id = match Datagram::decode_from_relay(&buf[..n]) {
                        Ok(Datagram::AudioDown(a)) => by_public.get(&a.sender.0).map(|&t| (t, a.header.seq.0)),
                        _ => match Datagram::decode_from_client(&buf[..n]) {
                            Ok(Datagram::AudioUp(a)) => by_token.get(&a.token.0).map(|&t| (t, a.header.seq.0)),
                            _ => None,
                        },
                    };
                    if let Some((talker, seq)) = id {
                        shared.record(talker, seq, now);
                    }
                }
            }
        });
    }
    rt.block_on(local.run_until(async {
        while !shared.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }));
    thread_cpu()
}
