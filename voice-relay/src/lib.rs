//! # voice-relay — the sans-IO relay core of the voice stack
//!
//! What it is: [`Relay`], a deterministic state machine holding sessions, rooms, whisper lists and timers. It is
//! fed UDP datagrams (with their source address), control-channel messages, credential-check results and
//! timeouts, always with the current time as an argument, and it is polled for datagrams to send
//! ([`voice_proto::Transmit`]), control-plane output ([`Event`]) and its next timeout. It implements `PROTOCOL.md`
//! (the normative wire spec at the repository root): address binding by authenticated HELLO (and roaming),
//! PING/PONG, zero-copy fan-out of AUDIO_UP rewritten in place into AUDIO_DOWN (one `Bytes` shared by every
//! recipient), whisper lists, mute/deafen, speaking state, per-session token-bucket rate limits, receiver reports
//! turned into bitrate hints, login, resume within a grace period, rooms (configured and ad-hoc), chat with bounded
//! history, media-key rotation when a member leaves, and graceful shutdown. It never decrypts audio.
//!
//! Beside the core, the [`driver`] module (feature `tokio`, on by default) runs it on real sockets: batched UDP
//! on Linux (optionally on several threads with `SO_REUSEPORT`, each owning a shard of the forwarding state: no
//! lock), one task per TCP control connection (optionally TLS), credential checks on a bounded verification pool,
//! and snapshots of the counters and the forward-latency histogram ([`driver::MetricsHandle`]).
//!
//! # A data plane without a lock
//!
//! Inside, the relay is two sans-IO halves joined by messages. The **control plane** owns logins, rooms, chat,
//! mute/deafen, whisper lists, media keys, the sessions' lifetime and the authoritative view of address bindings.
//! A **shard** owns forwarding: a replica of the tables forwarding reads (sessions' tokens, public ids, secrets,
//! rooms and members, mute/deafen, whisper lists, bound addresses) and the per-packet state of the addresses it
//! receives (rate-limit buckets, last datagram, speaking, receiver-report totals). In the driver each UDP thread owns
//! one shard; the kernel's `SO_REUSEPORT` hash sends one client address to one thread, and that thread forwards
//! its packets to the whole room from its own socket, touching nothing another thread touches.
//!
//! * Control changes reach the shards as commands (join / leave, mute / deafen, whisper lists, session start and
//!   end, bindings), sent to every shard in one order; a UDP thread applies them between receiving a batch and
//!   handling it. Media-key rotation stays in the control plane: shards never see keys.
//! * What only a shard sees comes back as events: speaking on / off, an accepted HELLO (the control plane keeps the
//!   newest HELLO counter and sends the binding to every shard, so replicas converge and a replay raced onto
//!   another shard loses; the HELLO_ACK leaves when that command is back at the shard that took the HELLO, so an
//!   acknowledged client is known to every shard), a binding that went idle, receiver-report totals once per hint
//!   interval.
//! * Housekeeping is driven by deadlines: each session, connection or room that can expire has one entry in a
//!   binary heap (the control plane's or its shard's), re-armed lazily when it was active meanwhile, so a timeout
//!   looks at what came due and nothing else ([`Relay::timer_visits`] counts it).
//!
//! [`Relay`] joins the control plane and one shard (or several: [`Relay::with_shards`]) in-process and delivers
//! their messages before each input returns, so it behaves as one deterministic state machine.
//!
//! What it does **not** do:
//! * the core [`Relay`] has no sockets, no threads, no async runtime, no clock reads (the driver reads the clock
//!   and passes `now`; the workspace's `clippy.toml` forbids clock reads outside the places allowed to);
//! * it checks no credential: a Login becomes [`Event::Authenticate`] with an [`AuthRequest`], and the driver
//!   answers with [`Relay::handle_auth_result`] (module [`auth`]). Only [`MemoryAuthenticator`] (plaintext, for
//!   tests and demos) is here;
//! * no configuration file, no password hashing, no JWT, no HTTP: those belong to the server application, the
//!   `voice-server` crate (TOML config, argon2id users, JWTs, metrics and health over HTTP, the `voice-server`
//!   binary), which composes this crate's core and drivers;
//! * the core measures no latency (it reads no clock): the driver measures forward latency into a
//!   [`metrics::LatencyHistogram`]; [`metrics::render_prometheus`] renders it with the counters.
//!
//! ```text
//!  driver (sockets, clock)                       Relay (this crate)
//!  recv UDP ──handle_datagram(now, from, buf)──►  validate → bind / rewrite → fan-out
//!  TCP bytes ─handle_control_bytes(now, conn)──►  login, rooms, chat, ...
//!  check ─────handle_auth_result(now, id, r)──►   session + LoginOk, or Error
//!  timer ─────handle_timeout(now)─────────────►   due deadlines: expiry, speaking; hints
//!  send UDP ◄─poll_transmit() ── TCP write / Authenticate ◄─poll_event() ── arm timer ◄─poll_timeout()
//! ```
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use voice_proto::control::{ClientMessage, Credential, Message, ServerMessage};
//! use voice_proto::{Datagram, SessionSecret};
//! use voice_relay::{Authenticator, ConnId, Event, MemoryAuthenticator, Relay, RelayConfig, SeededRng};
//!
//! # #[allow(clippy::disallowed_methods, reason = "an example plays the driver, which owns the clock")]
//! let now = Instant::now();
//! let mut relay = Relay::new(RelayConfig::default(), Box::new(SeededRng::new(1)), now, 1_763_800_000_000)?;
//!
//! // Control plane: log in on connection 1. The relay asks for the credential to be checked...
//! let conn = ConnId(1);
//! relay.connection_opened(now, conn);
//! let credential = Credential::Password("hunter2".into());
//! relay.handle_control(now, conn, ClientMessage::Login { user: "alice".into(), credential, client: "doc".into() });
//! let Some(Event::Authenticate(request)) = relay.poll_event() else { panic!("expected Authenticate") };
//! // ...the driver checks it (here inline; argon2id would go to a thread pool) and answers.
//! let auth = MemoryAuthenticator::new().with_user("alice", "hunter2");
//! relay.handle_auth_result(now, request.id(), auth.authenticate(&request));
//! let Some(Event::Send { msg: ServerMessage::LoginOk { token, public_id, secret, .. }, .. }) = relay.poll_event()
//! else { panic!("expected LoginOk") };
//!
//! // Data plane: an authenticated HELLO binds the address and is answered by a HELLO_ACK of the same size.
//! let secret = SessionSecret::new(secret.0);
//! let mut hello = BytesMut::new();
//! Datagram::Hello(secret.hello(token, 1)).encode(&mut hello);
//! let from = "192.0.2.7:5000".parse()?;
//! relay.handle_datagram(now, from, hello);
//! let ack = relay.poll_transmit().expect("hello-ack");
//! assert_eq!((ack.destination, ack.payload.len()), (from, 32));
//! let Ok(Datagram::HelloAck(ack)) = Datagram::decode_from_relay(&ack.payload) else { panic!() };
//! assert_eq!(ack.public_id, public_id);
//! secret.verify_hello_ack(&ack)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
mod counters;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod driver;
mod error;
mod ids;
mod loglimit;
pub mod metrics;
mod ratelimit;
mod relay;
mod rng;
mod room;
mod session;
mod slab;
mod timers;

pub use auth::{AuthId, AuthRequest, Authenticator, MemoryAuthenticator, UserInfo};
pub use counters::{Counters, DropReason};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use error::DriverError;
pub use error::{AuthError, Error, RequestError, RngError};
pub use relay::{BitrateController, ConnId, Event, Hint, LinkReport, MIN_HINT_BITRATE_BPS, Relay, RelayConfig};
pub use rng::{RandomSource, SeededRng, SystemRng};
pub use room::RoomConfig;
