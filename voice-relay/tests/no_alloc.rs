//! The forwarding path allocates nothing in steady state: a room of 8 bound members, every member talking in turn,
//! thousands of packets decoded, rate-limited, rewritten in place, frozen and fanned out (7 transmits each, sharing
//! one buffer), while the driver side reuses one receive buffer as a real driver would (`reserve` + `split`).
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_proto::{
    AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, Seq, SessionSecret, SessionToken, Timestamp,
    UplinkKey,
};
use voice_relay::{Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng};

const MEMBERS: usize = 8;

/// Gives an AUDIO_UP in `buf` the sequence number `seq` and tags it again (the relay refuses a seq it already
/// forwarded, as a real sender never repeats one). Allocation-free, in place.
fn resequence(buf: &mut [u8], seq: u64, uplink: &UplinkKey) {
    if buf.get(1) == Some(&0x01) {
        buf[8..16].copy_from_slice(&seq.to_be_bytes());
        uplink.sign_in_place(buf).expect("tagged datagram");
    }
}

struct Member {
    addr: SocketAddr,
    token: SessionToken,
    id: PublicId,
}

#[test]
fn forwarding_allocates_nothing_in_steady_state() {
    forwarding_allocates_nothing(1);
}

/// The same with the relay in 2 shards (as with 2 UDP threads): the members' addresses spread over them, HELLOs go
/// through the control plane and back to both shards as commands, and still nothing is allocated.
#[test]
fn forwarding_over_two_shards_allocates_nothing_in_steady_state() {
    forwarding_allocates_nothing(2);
}

fn forwarding_allocates_nothing(shards: usize) {
    let mut now = Instant::now();
    let mut auth = MemoryAuthenticator::new();
    for i in 0..MEMBERS {
        auth = auth.with_user(format!("u{i}"), "pw");
    }
    let cfg = RelayConfig {
        packets_per_s: 10_000,
        packet_burst: 1_000,
        bytes_per_s: 10_000_000,
        byte_burst: 1_000_000,
        ..RelayConfig::default()
    };
    let mut relay = Relay::new(cfg, Box::new(SeededRng::new(9)), now, 0).unwrap().with_shards(shards, now);
    assert_eq!(relay.shard_count(), shards);
    let mut pool = BytesMut::with_capacity(64 * 1024);
    let mut members = Vec::new();
    let mut secrets: Vec<SessionSecret> = Vec::new();
    let mut key = None;
    for i in 0..MEMBERS {
        let conn = ConnId(i as u64);
        let login = ClientMessage::Login {
            user: format!("u{i}"),
            credential: Credential::Password("pw".into()),
            client: "t".into(),
        };
        relay.handle_control(now, conn, login);
        let Some(Event::Authenticate(request)) = relay.poll_event() else { panic!("a credential check") };
        relay.handle_auth_result(now, request.id(), auth.authenticate(&request));
        relay.handle_control(now, conn, ClientMessage::Join { room: "lobby".into(), password: None });
        let (mut token, mut id, mut secret) = (None, None, None);
        while let Some(e) = relay.poll_event() {
            if let Event::Send { conn: c, msg } = e {
                match msg {
                    ServerMessage::LoginOk { token: t, public_id, secret: s, .. } if c == conn => {
                        token = Some(t);
                        id = Some(public_id);
                        secret = Some(SessionSecret::new(s.0));
                    }
                    ServerMessage::MediaKey { key_id, key: k } if c == conn => key = Some((key_id, k.0)),
                    _ => {}
                }
            }
        }
        let addr = SocketAddr::from(([10, 1, 0, i as u8 + 1], 9000));
        let secret_copy = secret.clone();
        let mut hello = BytesMut::new();
        Datagram::Hello(secret.unwrap().hello(token.unwrap(), 1)).encode(&mut hello);
        relay.handle_datagram(now, addr, hello);
        assert!(relay.poll_transmit().is_some(), "hello-ack");
        members.push(Member { addr, token: token.unwrap(), id: id.unwrap() });
        secrets.push(secret_copy.unwrap());
    }
    let (kid, kbytes) = key.unwrap();
    let key = MediaKey::new(kid, &kbytes);
    let uplinks: Vec<UplinkKey> = secrets.iter().map(SessionSecret::uplink_key).collect();
    let t0 = now;
    // Each round's sequence number (the relay refuses a repeated one): rounds are 20 ms apart.
    let round_seq = move |now: Instant| u64::try_from(now.duration_since(t0).as_millis()).unwrap_or(0) / 20;
    // Pre-sealed packets, one per member (the relay never looks at the payload; each round gives them a new seq).
    let packets: Vec<Vec<u8>> = members
        .iter()
        .map(|m| {
            let h =
                AudioHeader { key_id: KeyId(kid.0), seq: Seq(1), timestamp: Timestamp(960), ..AudioHeader::default() };
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let uplink = &uplinks[members.iter().position(|o| o.addr == m.addr).expect("member")];
            let n = key.seal_audio_up(uplink, m.token, m.id, &h, &[0x55; 80], &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();

    let run = |relay: &mut Relay, now: &mut Instant, pool: &mut BytesMut, rounds: usize| {
        let mut forwarded = 0usize;
        for _ in 0..rounds {
            *now += Duration::from_millis(20);
            for ((m, p), uplink) in members.iter().zip(&packets).zip(&uplinks) {
                pool.reserve(MAX_DATAGRAM_LEN);
                pool.put_slice(p);
                let mut buf = pool.split();
                resequence(&mut buf, round_seq(*now), uplink);
                relay.handle_datagram(*now, m.addr, buf);
                while let Some(t) = relay.poll_transmit() {
                    forwarded += 1;
                    drop(t);
                }
                while relay.poll_event().is_some() {}
            }
        }
        forwarded
    };
    // Warm-up: queues reach their working size, everyone starts speaking.
    run(&mut relay, &mut now, &mut pool, 50);
    let mut n = 0;
    let info = allocation_counter::measure(|| n = run(&mut relay, &mut now, &mut pool, 500));
    assert_eq!(n, 500 * MEMBERS * (MEMBERS - 1), "every packet reached the 7 others");
    println!("forwarded {n} transmits ({} packets in): {info:?}", 500 * MEMBERS);
    assert_eq!(info.count_total, 0, "forwarding path allocated: {info:?}");
    assert_eq!(relay.counters().dropped_total(), 0);

    // The other per-packet inputs: whisper audio, PING (answered in place), RECEIVER_REPORT, 0-byte keepalive,
    // and a re-HELLO from the same address (MAC check + in-place HELLO_ACK).
    let whisper_to: Vec<PublicId> = members[1..4].iter().map(|m| m.id).collect();
    relay.handle_control(
        now,
        ConnId(0),
        ClientMessage::SetWhisper { target: voice_proto::WhisperTarget(5), members: whisper_to },
    );
    while relay.poll_event().is_some() {}
    let whisper = {
        let h = AudioHeader {
            key_id: KeyId(kid.0),
            seq: Seq(2),
            target: voice_proto::WhisperTarget(5),
            ..AudioHeader::default()
        };
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let n = key.seal_audio_up(&uplinks[0], members[0].token, members[0].id, &h, &[0x66; 60], &mut buf).unwrap();
        buf[..n].to_vec()
    };
    let mut ping = Vec::new();
    let p = voice_proto::Ping { token: members[1].token, echo: 1, tag: [0; 8] };
    uplinks[1].tagged(Datagram::Ping(p)).encode(&mut ping);
    let blocks = [voice_proto::ReportBlock { source: members[0].id, fraction_lost: 3, ..Default::default() }];
    let mut report = Vec::new();
    let r = voice_proto::ReceiverReport::new(members[2].token, Some(30), &blocks).unwrap();
    uplinks[2].tagged(Datagram::ReceiverReport(r)).encode(&mut report);
    let mut hellos: Vec<Vec<u8>> = Vec::new();
    for counter in 2..700u64 {
        let mut v = Vec::new();
        Datagram::Hello(secrets[3].hello(members[3].token, counter)).encode(&mut v);
        hellos.push(v);
    }
    let inputs: Vec<(SocketAddr, &[u8])> =
        vec![(members[0].addr, &whisper), (members[1].addr, &ping), (members[2].addr, &report), (members[4].addr, &[])];
    let feed = |relay: &mut Relay, now: &mut Instant, pool: &mut BytesMut, rounds: std::ops::Range<usize>| {
        let mut out = 0;
        for r in rounds {
            *now += Duration::from_millis(20);
            for &(addr, bytes) in inputs.iter().chain(std::iter::once(&(members[3].addr, hellos[r].as_slice()))) {
                pool.reserve(MAX_DATAGRAM_LEN);
                pool.put_slice(bytes);
                let mut buf = pool.split();
                // Only members[0] sends audio here (the whisper).
                resequence(&mut buf, round_seq(*now) + 1_000_000, &uplinks[0]);
                relay.handle_datagram(*now, addr, buf);
                while relay.poll_transmit().is_some() {
                    out += 1;
                }
                while relay.poll_event().is_some() {}
            }
        }
        out
    };
    feed(&mut relay, &mut now, &mut pool, 0..50);
    let mut out = 0;
    let info = allocation_counter::measure(|| out = feed(&mut relay, &mut now, &mut pool, 50..650));
    println!("whisper/ping/report/keepalive/hello: {out} transmits: {info:?}");
    // Per round: 3 whisper copies, 1 pong, 1 hello-ack.
    assert_eq!(out, 600 * 5);
    assert_eq!(info.count_total, 0, "other datagram paths allocated: {info:?}");
    assert_eq!(relay.counters().dropped_total(), 0);
}

/// Documents why drivers should hand the relay shared-kind buffers: a `BytesMut` that owns a plain `Vec` allocates
/// once when frozen and cloned (the promotion to a shared buffer), one split off a larger buffer does not.
#[test]
fn shared_kind_buffers_freeze_and_clone_without_allocating() {
    let mut pool = BytesMut::with_capacity(4096);
    pool.put_slice(&[0u8; 100]);
    let _warm = pool.split(); // the pool itself becomes shared-kind on its first split
    drop(_warm);
    let vec_kind = BytesMut::from(&[1u8; 100][..]);
    pool.reserve(200);
    pool.put_slice(&[2u8; 100]);
    let split_kind = pool.split();
    let a = allocation_counter::measure(|| {
        let b = vec_kind.freeze();
        let _c = b.clone();
    });
    let b = allocation_counter::measure(|| {
        let b = split_kind.freeze();
        let _c = b.clone();
    });
    println!("Vec-kind freeze+clone: {a:?}; split-kind freeze+clone: {b:?}");
    assert_eq!(a.count_total, 1);
    assert_eq!(b.count_total, 0);
}
