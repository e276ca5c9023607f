//! Loopback tests of the tokio driver: real sockets on 127.0.0.1, bounded packet counts, every wait bounded by a
//! timeout that only turns a hang into a failure (no timing is asserted).
#![allow(
    clippy::disallowed_methods,
    reason = "a test harness: the origin of the relay's time, and deadlines for waits on real sockets"
)]
#![cfg(feature = "tokio")]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;
use voice_proto::control::{ClientMessage, Credential, ErrorCode, Message, ServerMessage, decode_frame};
use voice_proto::{
    AudioFlags, AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, ReplayWindow, Seq, SessionSecret,
    SessionToken, Timestamp, WhisperTarget,
};
use voice_relay::driver::{IdlePoll, MetricsHandle, Server, ShutdownHandle};
use voice_relay::{MemoryAuthenticator, Relay, RelayConfig, SeededRng};

/// Bound on any single wait: a hang fails the test instead of blocking CI.
const BOUND: Duration = Duration::from_secs(10);

type Running = std::thread::JoinHandle<Result<Relay, voice_relay::DriverError>>;

/// Starts a relay on its own thread; `finish` waits for it (off the test's runtime) after a shutdown.
async fn start() -> (SocketAddr, SocketAddr, ShutdownHandle, Running) {
    let (udp, tcp, _metrics, handle, running) = start_with_metrics().await;
    (udp, tcp, handle, running)
}

/// [`start`], also returning a handle to the metrics (third).
async fn start_with_metrics() -> (SocketAddr, SocketAddr, MetricsHandle, ShutdownHandle, Running) {
    start_with(Some(IdlePoll::default()), 1).await
}

/// [`start_with_metrics`] with the given idle polling and UDP threads.
async fn start_with(
    idle: Option<IdlePoll>,
    udp_threads: usize,
) -> (SocketAddr, SocketAddr, MetricsHandle, ShutdownHandle, Running) {
    let server = server_with(idle, udp_threads);
    let (udp, tcp, handle) = (server.udp_addr(), server.tcp_addr(), server.shutdown_handle());
    let metrics = server.metrics_handle();
    (udp, tcp, metrics, handle, server.spawn().expect("driver thread"))
}

/// A server on loopback with the given idle polling and UDP threads, not started.
fn server_with(idle: Option<IdlePoll>, udp_threads: usize) -> Server {
    let auth = MemoryAuthenticator::new()
        .with_user("alice", "pw-alice")
        .with_user("bob", "pw-bob")
        .with_user("carol", "pw-carol");
    let auth = (0..8).fold(auth, |a, i| a.with_user(format!("m{i}"), format!("pw-m{i}")));
    let relay = Relay::new(
        // Generous audio limits: the test sends its packets as fast as it can (bounded by count, not time).
        RelayConfig { packets_per_s: 100_000, packet_burst: 1_000, byte_burst: 1_000_000, ..RelayConfig::default() },
        Box::new(SeededRng::new(7)),
        Instant::now(),
        1_763_800_000_000,
    )
    .expect("valid config");
    let lo: SocketAddr = "127.0.0.1:0".parse().expect("address");
    Server::bind(relay, auth, lo, lo)
        .expect("binds on loopback")
        .with_idle_poll(idle)
        .with_udp_threads(udp_threads)
        .expect("SO_REUSEPORT sockets")
}

async fn finish(running: Running) -> Relay {
    let join = tokio::task::spawn_blocking(move || running.join().expect("driver thread").expect("driver runs"));
    timeout(BOUND, join).await.expect("server stops").expect("joins")
}

/// A client speaking the real protocol over real sockets.
struct Client {
    tcp: TcpStream,
    rbuf: BytesMut,
    udp: UdpSocket,
    token: SessionToken,
    public_id: PublicId,
    secret: SessionSecret,
    key: Option<(KeyId, [u8; 32])>,
    seq: u64,
}

async fn send_msg(tcp: &mut TcpStream, msg: &ClientMessage) {
    let mut b = BytesMut::new();
    msg.encode(&mut b).expect("encodes");
    tcp.write_all(&b).await.expect("writes");
}

/// The next control message, or `None` at end of stream.
async fn recv_msg(tcp: &mut TcpStream, rbuf: &mut BytesMut) -> Option<ServerMessage> {
    loop {
        if let Some(frame) = decode_frame(rbuf).expect("valid framing from the relay")
            && let Some(msg) = ServerMessage::decode(&frame).expect("valid message from the relay")
        {
            return Some(msg);
        }
        let n = timeout(BOUND, tcp.read_buf(rbuf)).await.expect("relay answers").expect("reads");
        if n == 0 {
            return None;
        }
    }
}

impl Client {
    /// Connects, logs in as `user`, joins `lobby`, binds its UDP address with a HELLO.
    async fn ready(user: &str, tcp_addr: SocketAddr, relay_udp: SocketAddr) -> Self {
        let mut tcp = TcpStream::connect(tcp_addr).await.expect("connects");
        let mut rbuf = BytesMut::new();
        let credential = Credential::Password(format!("pw-{user}"));
        send_msg(&mut tcp, &ClientMessage::Login { user: user.into(), credential, client: "test".into() }).await;
        let (token, public_id, secret) = loop {
            match recv_msg(&mut tcp, &mut rbuf).await.expect("open") {
                ServerMessage::LoginOk { token, public_id, secret, .. } => break (token, public_id, secret),
                ServerMessage::Error { code, .. } => panic!("login refused: {code:?}"),
                _ => {}
            }
        };
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let mut c = Self { tcp, rbuf, udp, token, public_id, secret: SessionSecret::new(secret.0), key: None, seq: 0 };
        send_msg(&mut c.tcp, &ClientMessage::Join { room: "lobby".into(), password: None }).await;
        while c.key.is_none() {
            match c.recv().await.expect("open") {
                ServerMessage::MediaKey { key_id, key } => c.key = Some((key_id, key.0)),
                ServerMessage::Error { code, .. } => panic!("join refused: {code:?}"),
                _ => {}
            }
        }
        let mut hello = Vec::new();
        Datagram::Hello(c.secret.hello(c.token, 1)).encode(&mut hello);
        c.udp.send_to(&hello, relay_udp).await.expect("sends hello");
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let (n, _) = timeout(BOUND, c.udp.recv_from(&mut buf)).await.expect("hello-ack arrives").expect("recv");
        let Ok(Datagram::HelloAck(ack)) = Datagram::decode_from_relay(&buf[..n]) else { panic!("expected HELLO_ACK") };
        c.secret.verify_hello_ack(&ack).expect("hello-ack MAC");
        assert_eq!(ack.public_id, c.public_id);
        c
    }

    async fn recv(&mut self) -> Option<ServerMessage> {
        recv_msg(&mut self.tcp, &mut self.rbuf).await
    }

    async fn send(&mut self, msg: &ClientMessage) {
        send_msg(&mut self.tcp, msg).await;
    }

    /// Waits for the first message matching `pred`, skipping others.
    async fn expect(&mut self, mut pred: impl FnMut(&ServerMessage) -> bool) -> ServerMessage {
        loop {
            let m = self.recv().await.expect("connection open");
            if pred(&m) {
                return m;
            }
        }
    }

    fn audio(&mut self, plain: &[u8]) -> Vec<u8> {
        let (kid, key) = self.key.expect("has a key");
        self.seq += 1;
        let header = AudioHeader {
            flags: AudioFlags::NONE,
            key_id: kid,
            seq: Seq(self.seq),
            timestamp: Timestamp((self.seq as u32).wrapping_mul(960)),
            target: WhisperTarget(0),
        };
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let n = MediaKey::new(kid, &key)
            .seal_audio_up(&self.secret.uplink_key(), self.token, self.public_id, &header, plain, &mut buf)
            .expect("seals");
        buf[..n].to_vec()
    }
}

#[tokio::test]
async fn udp_driver_forwards_sealed_audio_between_real_sockets() {
    let (udp, tcp, shutdown, task) = start().await;
    let mut alice = Client::ready("alice", tcp, udp).await;
    let bob = Client::ready("bob", tcp, udp).await;
    // Bob joined after alice: both hold the room's current key (keys rotate only when someone leaves).
    assert_eq!(alice.key, bob.key);
    const N: u64 = 300;
    const WINDOW: u64 = 25;
    let (kid, key) = bob.key.expect("key");
    let key = MediaKey::new(kid, &key);
    let mut window = ReplayWindow::default();
    let mut opened = Vec::new();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    // Windows of 25 packets in flight: small enough never to overflow a loopback socket buffer.
    for start in (0..N).step_by(WINDOW as usize) {
        for i in start..start + WINDOW {
            let bytes = alice.audio(format!("frame {i}").as_bytes());
            alice.udp.send_to(&bytes, udp).await.expect("sends audio");
        }
        for _ in 0..WINDOW {
            let (n, from) = timeout(BOUND, bob.udp.recv_from(&mut buf)).await.expect("audio arrives").expect("recv");
            assert_eq!(from, udp);
            let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..n]) else { panic!("AUDIO_DOWN") };
            assert_eq!(a.sender, alice.public_id);
            let header = a.header;
            let start = n - a.payload.len();
            let plain = window.open(&key, alice.public_id, &header, &mut buf[start..n]).expect("opens");
            opened.push(String::from_utf8(plain.to_vec()).expect("utf-8"));
        }
    }
    let expected: Vec<String> = (0..N).map(|i| format!("frame {i}")).collect();
    assert_eq!(opened, expected, "every packet forwarded once, in order, and opens");
    // The talker does not hear itself.
    let mut one = [0u8; 8];
    assert!(alice.udp.try_recv_from(&mut one).is_err());

    shutdown.shutdown();
    let relay = finish(task).await;
    assert_eq!(relay.counters().audio_forwarded, N);
    drop(bob);
}

#[tokio::test]
async fn control_driver_chat_malformed_frame_and_graceful_shutdown() {
    let (udp, tcp, shutdown, task) = start().await;
    let mut alice = Client::ready("alice", tcp, udp).await;
    let mut bob = Client::ready("bob", tcp, udp).await;

    // Chat reaches the other member.
    alice.send(&ClientMessage::Chat { text: "hello bob".into() }).await;
    let m = bob.expect(|m| matches!(m, ServerMessage::Chat { .. })).await;
    let ServerMessage::Chat { from, text, .. } = m else { unreachable!() };
    assert_eq!((from, text.as_str()), (alice.public_id, "hello bob"));

    // A malformed frame closes only its own connection: Error BAD_REQUEST, then end of stream.
    let mut carol = TcpStream::connect(tcp).await.expect("connects");
    carol.write_all(&[0, 0, 0, 7, 1, 0, 0, 4, 0, 0, 7]).await.expect("writes");
    let mut rbuf = BytesMut::new();
    let m = recv_msg(&mut carol, &mut rbuf).await.expect("an error first");
    assert!(matches!(m, ServerMessage::Error { code: ErrorCode::BAD_REQUEST, .. }), "{m:?}");
    assert_eq!(recv_msg(&mut carol, &mut rbuf).await, None, "then the relay closes it");

    // Alice and bob are unaffected.
    alice.send(&ClientMessage::Ping { nonce: 42 }).await;
    alice.expect(|m| *m == ServerMessage::Pong { nonce: 42 }).await;
    bob.send(&ClientMessage::Chat { text: "still here".into() }).await;
    alice.expect(|m| matches!(m, ServerMessage::Chat { text, .. } if text == "still here")).await;

    // Graceful shutdown: every connection gets Goodbye SHUTTING_DOWN, then end of stream; run() returns.
    shutdown.shutdown();
    for c in [&mut alice, &mut bob] {
        let m = c.expect(|m| matches!(m, ServerMessage::Goodbye { .. })).await;
        assert!(matches!(m, ServerMessage::Goodbye { code: ErrorCode::SHUTTING_DOWN, .. }), "{m:?}");
        assert_eq!(c.recv().await, None);
    }
    let relay = finish(task).await;
    assert_eq!(relay.session_count(), 2, "sessions are kept (resumable) until the process ends");
}

/// The value of the sample line starting with `series ` in a Prometheus text body.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} missing in\n{body}"))
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn metrics_handle_snapshots_counters_and_forward_latency() {
    let (udp, tcp, metrics, shutdown, task) = start_with_metrics().await;
    let mut alice = Client::ready("alice", tcp, udp).await;
    let bob = Client::ready("bob", tcp, udp).await;
    const N: usize = 40;
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    for i in 0..N {
        let bytes = alice.audio(format!("frame {i}").as_bytes());
        alice.udp.send_to(&bytes, udp).await.expect("sends audio");
        timeout(BOUND, bob.udp.recv_from(&mut buf)).await.expect("audio arrives").expect("recv");
    }
    // A datagram from an address bound to no session is dropped and counted.
    alice.udp.send_to(&[], udp).await.expect("sends");
    let stray = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    stray.send_to(&[], udp).await.expect("sends");
    // Their drops are counted by the time a later datagram to the same socket (one UDP thread, handled in order)
    // has its answer: a UDP PING from alice, answered with a PONG.
    let mut ping = Vec::new();
    let p = voice_proto::Ping { token: alice.token, echo: 7, tag: [0; 8] };
    alice.secret.uplink_key().tagged(Datagram::Ping(p)).encode(&mut ping);
    alice.udp.send_to(&ping, udp).await.expect("sends ping");
    let (n, _) = timeout(BOUND, alice.udp.recv_from(&mut buf)).await.expect("pong arrives").expect("recv");
    assert!(matches!(Datagram::decode_from_relay(&buf[..n]), Ok(Datagram::Pong(_))), "a PONG");

    // Every forwarded packet and the PONG have a forward latency (a HELLO_ACK waits for the control plane to
    // confirm the binding: it is not an answer to a received batch). The snapshot asks the UDP thread for a fresh
    // copy first, so one scrape after the PONG shows them all.
    let expected = (N + 1) as f64;
    let body = metrics.snapshot().await.expect("server runs").render_prometheus();
    let body = body.as_str();
    assert_eq!(sample(body, "voice_relay_forward_latency_seconds_count"), expected, "{body}");
    assert_eq!(sample(body, "voice_relay_sessions"), 2.0);
    assert_eq!(sample(body, "voice_relay_audio_forwarded_total"), N as f64);
    assert_eq!(sample(body, "voice_relay_dropped_packets_total{reason=\"stray_keepalive\"}"), 1.0);
    let count = sample(body, "voice_relay_forward_latency_seconds_count");
    assert_eq!(count, expected, "buckets are cumulative, nothing counted twice");
    assert_eq!(sample(body, "voice_relay_forward_latency_seconds_bucket{le=\"+Inf\"}"), count);
    // Each quantity once: datagrams are the relay's packets_total; the driver adds only its own counters.
    assert!(sample(body, "voice_relay_packets_total{direction=\"out\"}") >= count);
    assert_eq!(sample(body, "voice_relay_udp_send_errors_total"), 0.0);
    assert!(!body.contains("op=\""), "no duplicated op= family: {body}");

    shutdown.shutdown();
    finish(task).await;
    drop(bob);
}

/// The idle poll's path (UDP read on a timer tick instead of on readiness) forwards everything too: here the loop
/// is idle from the start and stays idle (`after` = 0), so every HELLO and audio packet goes through it.
#[tokio::test]
async fn idle_poll_mode_binds_and_forwards() {
    let idle = IdlePoll { after: Duration::ZERO, period: Duration::from_millis(2) };
    let (udp, tcp, _metrics, shutdown, task) = start_with(Some(idle), 1).await;
    let mut alice = Client::ready("alice", tcp, udp).await;
    let bob = Client::ready("bob", tcp, udp).await;
    const N: u64 = 50;
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    for i in 0..N {
        let bytes = alice.audio(format!("frame {i}").as_bytes());
        alice.udp.send_to(&bytes, udp).await.expect("sends audio");
        let (n, _) = timeout(BOUND, bob.udp.recv_from(&mut buf)).await.expect("audio arrives").expect("recv");
        assert!(matches!(Datagram::decode_from_relay(&buf[..n]), Ok(Datagram::AudioDown(_))));
    }
    shutdown.shutdown();
    assert_eq!(finish(task).await.counters().audio_forwarded, N);
}

/// `Server::run` as an ordinary task: it is `Send`.
#[tokio::test]
async fn server_runs_as_a_task_spawned_on_the_callers_runtime() {
    // `Server::run` is `Send` (this would not compile otherwise): here it shares the test's runtime.
    let server = server_with(Some(IdlePoll::default()), 1);
    let (udp, tcp, shutdown) = (server.udp_addr(), server.tcp_addr(), server.shutdown_handle());
    let task = tokio::spawn(server.run());
    let mut alice = Client::ready("alice", tcp, udp).await;
    let bob = Client::ready("bob", tcp, udp).await;
    let bytes = alice.audio(b"hello from a spawned relay");
    alice.udp.send_to(&bytes, udp).await.expect("sends audio");
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let (n, _) = timeout(BOUND, bob.udp.recv_from(&mut buf)).await.expect("audio arrives").expect("recv");
    let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..n]) else { panic!("AUDIO_DOWN") };
    assert_eq!(a.sender, alice.public_id);
    shutdown.shutdown();
    let relay = timeout(BOUND, task).await.expect("server stops").expect("task joins").expect("server ran");
    assert_eq!(relay.counters().audio_forwarded, 1);
}

/// A `Server::run` task that is aborted stops and joins its UDP threads as it is dropped: the port is free once
/// the aborted task has ended.
#[tokio::test]
async fn aborting_the_server_task_releases_the_udp_port() {
    let server = server_with(Some(IdlePoll::default()), 1);
    let (udp, tcp) = (server.udp_addr(), server.tcp_addr());
    let task = tokio::spawn(server.run());
    // A client bound over UDP: the UDP thread is running. Then the task is aborted.
    let alice = Client::ready("alice", tcp, udp).await;
    task.abort();
    let _ = task.await;
    assert!(std::net::UdpSocket::bind(udp).is_ok(), "the UDP port is free once the aborted task ended");
    drop(alice);
}

/// Four UDP threads on one port (`SO_REUSEPORT`), each with its own shard: eight clients spread over them by the
/// kernel; every packet still reaches every other member exactly once (whichever thread received it fans it out),
/// and speaking state seen by whichever thread got the audio reaches every member over the control connections
/// (a shard event to the core task).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn several_udp_threads_share_one_relay() {
    let (udp, tcp, _metrics, shutdown, task) = start_with(Some(IdlePoll::default()), 4).await;
    const CLIENTS: usize = 8;
    const PER_TALKER: usize = 10;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(Client::ready(&format!("m{i}"), tcp, udp).await);
    }
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    for t in 0..CLIENTS {
        for i in 0..PER_TALKER {
            let bytes = clients[t].audio(format!("{t}/{i}").as_bytes());
            clients[t].udp.send_to(&bytes, udp).await.expect("sends audio");
            for (r, c) in clients.iter().enumerate().filter(|&(r, _)| r != t) {
                let (n, _) = timeout(BOUND, c.udp.recv_from(&mut buf)).await.expect("audio arrives").expect("recv");
                let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..n]) else { panic!("AUDIO_DOWN") };
                assert_eq!(a.sender, clients[t].public_id, "client {r} got talker {t}'s packet {i}");
            }
        }
    }
    for t in 0..CLIENTS {
        let id = clients[t].public_id;
        for c in clients.iter_mut() {
            c.expect(|m| *m == ServerMessage::Speaking { id, speaking: true }).await;
        }
    }
    shutdown.shutdown();
    let relay = finish(task).await;
    assert_eq!(relay.counters().audio_forwarded, (CLIENTS * PER_TALKER * (CLIENTS - 1)) as u64);
}

/// Receives the next AUDIO_DOWN on `c`'s socket: its sender and sequence number.
async fn next_audio(c: &Client) -> (PublicId, Seq) {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let (n, _) = timeout(BOUND, c.udp.recv_from(&mut buf)).await.expect("audio arrives").expect("recv");
    let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..n]) else { panic!("AUDIO_DOWN") };
    (a.sender, a.header.seq)
}

/// Control changes reach every UDP thread's shard before the client hears of them: once a client has its
/// MemberUpdated, no thread forwards it audio while it is deafened, nor forwards its audio while it is muted —
/// whichever thread receives the talkers' packets. Checked by what arrives next, not by waiting for silence.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn control_changes_reach_every_udp_thread_before_the_answer() {
    let (udp, tcp, _metrics, shutdown, task) = start_with(Some(IdlePoll::default()), 4).await;
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(Client::ready(&format!("m{i}"), tcp, udp).await);
    }
    let ids: Vec<PublicId> = clients.iter().map(|c| c.public_id).collect();
    let updated = |id: PublicId, muted: bool, deafened: bool| {
        move |m: &ServerMessage| {
            matches!(m, ServerMessage::MemberUpdated { member }
                if member.id == id && member.muted == muted && member.deafened == deafened)
        }
    };
    // Client 1 deafens: the others' packets (seq 1) reach everyone but it.
    clients[1].send(&ClientMessage::SetState { muted: false, deafened: true }).await;
    clients[1].expect(updated(ids[1], false, true)).await;
    for t in [0, 2, 3] {
        let bytes = clients[t].audio(b"while 1 is deafened");
        clients[t].udp.send_to(&bytes, udp).await.expect("sends audio");
        for r in [0, 2, 3].into_iter().filter(|&r| r != t) {
            assert_eq!(next_audio(&clients[r]).await, (ids[t], Seq(1)));
        }
    }
    // Undeafened: the first packets it gets are the next ones (seq 2), from each talker.
    clients[1].send(&ClientMessage::SetState { muted: false, deafened: false }).await;
    clients[1].expect(updated(ids[1], false, false)).await;
    for t in [0, 2, 3] {
        let bytes = clients[t].audio(b"after");
        clients[t].udp.send_to(&bytes, udp).await.expect("sends audio");
        for r in (0..4).filter(|&r| r != t) {
            assert_eq!(next_audio(&clients[r]).await, (ids[t], Seq(2)), "client {r}, talker {t}");
        }
    }
    // Client 2 mutes: its packet goes nowhere; client 3's next one is what everybody gets next.
    clients[2].send(&ClientMessage::SetState { muted: true, deafened: false }).await;
    clients[2].expect(updated(ids[2], true, false)).await;
    let muted = clients[2].audio(b"muted");
    clients[2].udp.send_to(&muted, udp).await.expect("sends audio");
    let bytes = clients[3].audio(b"after the mute");
    clients[3].udp.send_to(&bytes, udp).await.expect("sends audio");
    for r in [0, 1, 2] {
        assert_eq!(next_audio(&clients[r]).await, (ids[3], Seq(3)), "client {r}");
    }
    shutdown.shutdown();
    let relay = finish(task).await;
    assert_eq!(relay.counters().dropped(voice_relay::DropReason::Muted), 1);
}
