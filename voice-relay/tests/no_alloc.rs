//! The forwarding path allocates nothing in steady state: a room of 8 bound members, every member talking in turn,
//! thousands of packets decoded, rate-limited, rewritten in place, frozen and fanned out (7 transmits each, sharing
//! one buffer), while the driver side reuses one receive buffer as a real driver would (`reserve` + `split`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_proto::{
    AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, Seq, SessionSecret, SessionToken, Timestamp,
};
use voice_relay::{ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng};

const MEMBERS: usize = 8;

struct Member {
    addr: SocketAddr,
    token: SessionToken,
    id: PublicId,
}

#[test]
fn forwarding_allocates_nothing_in_steady_state() {
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
    let mut relay = Relay::new(cfg, Box::new(auth), Box::new(SeededRng::new(9)), now, 0).unwrap();
    let mut pool = BytesMut::with_capacity(64 * 1024);
    let mut members = Vec::new();
    let mut key = None;
    for i in 0..MEMBERS {
        let conn = ConnId(i as u64);
        let login = ClientMessage::Login {
            user: format!("u{i}"),
            credential: Credential::Password("pw".into()),
            client: "t".into(),
        };
        relay.handle_control(now, conn, login);
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
        let mut hello = BytesMut::new();
        Datagram::Hello(secret.unwrap().hello(token.unwrap(), 1)).encode(&mut hello);
        relay.handle_datagram(now, addr, hello);
        assert!(relay.poll_transmit().is_some(), "hello-ack");
        members.push(Member { addr, token: token.unwrap(), id: id.unwrap() });
    }
    let (kid, kbytes) = key.unwrap();
    let key = MediaKey::new(kid, &kbytes);
    // Pre-sealed packets, one per member (the relay never looks at the payload; seq does not matter to it).
    let packets: Vec<Vec<u8>> = members
        .iter()
        .map(|m| {
            let h =
                AudioHeader { key_id: KeyId(kid.0), seq: Seq(1), timestamp: Timestamp(960), ..AudioHeader::default() };
            let mut buf = [0u8; MAX_DATAGRAM_LEN];
            let n = key.seal_audio_up(m.token, m.id, &h, &[0x55; 80], &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();

    let run = |relay: &mut Relay, now: &mut Instant, pool: &mut BytesMut, rounds: usize| {
        let mut forwarded = 0usize;
        for _ in 0..rounds {
            *now += Duration::from_millis(20);
            for (m, p) in members.iter().zip(&packets) {
                pool.reserve(MAX_DATAGRAM_LEN);
                pool.put_slice(p);
                let buf = pool.split();
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
}
