//! The driver's UDP path allocates nothing per forwarded packet: real loopback sockets, the same `recvmmsg` →
//! `Relay` → `sendmmsg` code the UDP threads run (`driver::UdpPath`), allocations counted on this thread around
//! each batch. Bounded: a fixed number of rounds, every wait under a timeout (the sockets' read timeouts).
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]
#![cfg(all(feature = "tokio", target_os = "linux"))]

use std::net::UdpSocket as StdUdp;
use std::time::{Duration, Instant};

use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_proto::{AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, Seq, SessionSecret, Timestamp};
use voice_relay::driver::UdpPath;
use voice_relay::{Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng};

const MEMBERS: usize = 8;
const BOUND: Duration = Duration::from_secs(10);

/// Feeds the path until `expected` datagrams went through it; returns the allocations counted inside the turns.
fn pump(path: &mut UdpPath, udp: &StdUdp, expected: usize) -> u64 {
    let (mut got, mut allocations) = (0, 0);
    while got < expected {
        let mut n = 0;
        // `turn` blocks in `recvmmsg` for the first datagram, at most the socket's read timeout.
        let info = allocation_counter::measure(|| n = path.turn(udp).expect("udp path"));
        assert!(n > 0, "datagrams arrive within {BOUND:?}");
        got += n;
        allocations += info.count_total;
    }
    allocations
}

/// Receives `n` datagrams on each member socket (outside the measurement).
fn drain(members: &[StdUdp], n: usize) {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    for m in members {
        for _ in 0..n {
            m.recv_from(&mut buf).expect("forwarded datagram arrives");
        }
    }
}

#[test]
fn driver_udp_path_allocates_nothing_per_forwarded_packet() {
    forward_without_allocating(voice_relay::driver::DEFAULT_UDP_CHUNK);
}

/// The same with the copies of every datagram (and of every 3) sent before the next is handled.
#[test]
fn driver_udp_path_in_small_chunks_allocates_nothing_and_forwards_everything() {
    forward_without_allocating(1);
    forward_without_allocating(3);
}

fn forward_without_allocating(chunk: usize) {
    let now = Instant::now();
    let mut auth = MemoryAuthenticator::new();
    for i in 0..MEMBERS {
        auth = auth.with_user(format!("u{i}"), "pw");
    }
    let cfg = RelayConfig { packets_per_s: 10_000, packet_burst: 1_000, byte_burst: 1_000_000, ..Default::default() };
    let relay = Relay::new(cfg, Box::new(SeededRng::new(5)), now, 0).expect("config");
    let mut path = UdpPath::new(relay).with_chunk(chunk);
    let udp = StdUdp::bind("127.0.0.1:0").expect("binds");
    udp.set_read_timeout(Some(BOUND)).expect("timeout");
    let relay_addr = udp.local_addr().expect("addr");
    let members: Vec<StdUdp> = (0..MEMBERS)
        .map(|_| {
            let s = StdUdp::bind("127.0.0.1:0").expect("binds");
            s.set_read_timeout(Some(BOUND)).expect("timeout");
            s
        })
        .collect();

    // Log in and join through the core; bind each member's socket with a HELLO through the driver path.
    let mut sessions = Vec::new();
    let mut key = None;
    for i in 0..MEMBERS {
        let conn = ConnId(i as u64);
        let r = path.relay_mut();
        let credential = Credential::Password("pw".into());
        r.handle_control(now, conn, ClientMessage::Login { user: format!("u{i}"), credential, client: "t".into() });
        let Some(Event::Authenticate(request)) = r.poll_event() else { panic!("a credential check") };
        r.handle_auth_result(now, request.id(), auth.authenticate(&request));
        r.handle_control(now, conn, ClientMessage::Join { room: "lobby".into(), password: None });
        while let Some(e) = r.poll_event() {
            match e {
                Event::Send { conn: c, msg: ServerMessage::LoginOk { token, public_id, secret, .. } } if c == conn => {
                    sessions.push((token, public_id, SessionSecret::new(secret.0)));
                }
                Event::Send { conn: c, msg: ServerMessage::MediaKey { key_id, key: k } } if c == conn => {
                    key = Some((key_id, k.0));
                }
                _ => {}
            }
        }
        let (token, _, secret) = &sessions[i];
        let mut hello = Vec::new();
        Datagram::Hello(secret.hello(*token, 1)).encode(&mut hello);
        members[i].send_to(&hello, relay_addr).expect("sends hello");
    }
    // Binding addresses allocates (the address table grows): proof that the counter sees inside the turns.
    let setup_allocations = pump(&mut path, &udp, MEMBERS);
    assert!(setup_allocations > 0, "allocations inside UdpPath::turn are counted");
    drain(&members, 1); // HELLO_ACKs

    let (kid, kbytes) = key.expect("media key");
    let media = MediaKey::new(kid, &kbytes);
    let packets: Vec<Vec<u8>> = sessions
        .iter()
        .map(|(token, id, secret)| {
            let h = AudioHeader { key_id: KeyId(kid.0), seq: Seq(1), timestamp: Timestamp(960), ..Default::default() };
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let n = media.seal_audio_up(&secret.uplink_key(), *token, *id, &h, &[0x55; 80], &mut buf).expect("seals");
            buf[..n].to_vec()
        })
        .collect();
    let uplinks: Vec<_> = sessions.iter().map(|(_, _, secret)| secret.uplink_key()).collect();
    // Each round sends every packet with the next sequence number, tagged again (the relay refuses a seq it already
    // forwarded for the session, as a copied packet).
    let seq = std::cell::Cell::new(1u64);
    let round = |members: &[StdUdp]| {
        seq.set(seq.get() + 1);
        for ((m, p), uplink) in members.iter().zip(&packets).zip(&uplinks) {
            let mut p = p.clone();
            p[8..16].copy_from_slice(&seq.get().to_be_bytes());
            uplink.sign_in_place(&mut p).expect("tagged");
            m.send_to(&p, relay_addr).expect("sends audio");
        }
    };
    // Warm-up: buffers and queues reach their working size.
    for _ in 0..40 {
        round(&members);
        pump(&mut path, &udp, MEMBERS);
        drain(&members, MEMBERS - 1);
    }
    let sent0 = path.sent();
    const ROUNDS: usize = 300;
    let mut allocations = 0;
    for _ in 0..ROUNDS {
        round(&members);
        allocations += pump(&mut path, &udp, MEMBERS);
        drain(&members, MEMBERS - 1);
    }
    let forwarded = path.sent() - sent0;
    assert_eq!(forwarded, (ROUNDS * MEMBERS * (MEMBERS - 1)) as u64, "every packet reached the 7 others");
    println!("{forwarded} datagrams forwarded through recvmmsg/relay/sendmmsg: {allocations} allocations");
    assert_eq!(allocations, 0, "the driver's UDP path allocated");
}
