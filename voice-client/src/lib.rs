//! # voice-client — the client core of the voice stack: microphone to relay to speaker
//!
//! What it is, in layers (each usable alone):
//!
//! * [`Session`] — the **sans-IO protocol core**: control state machine (connect → login → room list → join →
//!   UDP HELLO/HELLO_ACK with retransmission → streaming; leave; quiet resume with the session token after the
//!   control connection drops, keeping the room; a fresh HELLO when the local address changes), UDP and control
//!   pings (RTT), periodic receiver reports, relay hints surfaced as [`EncoderHint`]s, media keys with rotation,
//!   sealed AUDIO_UP out ([`Session::send_frame`]), AUDIO_DOWN in (replay window per sender) into one adaptive
//!   jitter buffer per remote speaker ([`Session::poll_playout`]), mute / deafen / push-to-talk (the default
//!   [`TalkMode`]) / voice activation / whisper / chat, and [`SessionStats`] for a debug overlay. It reads no
//!   clock and owns no socket: time and bytes come in through `handle_*`, decisions come out of `poll_*`.
//! * [`Media`] — the audio work around a session: capture pipeline (resampling, DSP, VAD, Opus encoder,
//!   following the relay's bitrate / FEC hints) → [`Session::send_frame`]; per remote speaker a decoder pipeline
//!   (decode / FEC / PLC / time-stretch / volume) fed by the jitter buffer → [`voice_codec::Mixer`]. Also
//!   sans-IO: the caller pushes microphone samples and pulls one frame period of output at a time.
//! * [`Client`] (feature `tokio`, on by default) — the **driver**: a media thread on a frame-period deadline
//!   loop (capture → encode, decode → mix), a tokio thread for the UDP socket and the TCP control connection,
//!   and an [`AudioBackend`] whose callbacks only move samples through [`sample_ring`]s. [`FileAudio`] (feature
//!   `wav`, on by default) is the file backend: a WAV file as a microphone, paced in real time; what is played
//!   written to a WAV.
//!   Debug aids: a network conditioner on its UDP path (`Client::set_network`) and WAV dumps of the audio
//!   pipelines (`Client::set_dump`).
//! * `CpalAudio` (feature `cpal`, off by default: it needs ALSA headers on Linux) — the sound-card backend:
//!   device by name or the default one, f32 or the device's integer format, rebuilt when a device disappears.
//! * Echo cancellation (feature `aec`, off by default): set `MediaConfig::capture.echo_cancellation`; what the
//!   client plays is the far-end reference of its capture pipeline (WebRTC AEC3 in Rust, via voice-codec).
//! * test tools: the [`NetworkConditioner`] (seeded loss / latency / jitter / reordering, changeable at runtime),
//!   also built into the driver on its UDP path both ways (`Client::set_network`, `Client::network_stats`).
//!
//! What it does **not** do (yet): no 0-byte keepalives (the UDP ping every second keeps the binding alive
//! instead). TLS on the control connection is there ([`ControlTls`]); use it across untrusted networks: the media keys
//! travel on the control connection.
//!
//! ## Run loop of the sans-IO core
//! Feed input (`handle_connected`, `handle_control_bytes`, `handle_disconnected`, `handle_datagram`,
//! `handle_timeout`), call application methods, then drain `poll_connection`, `poll_control_bytes`,
//! `poll_transmit`, `poll_event`, and arm a timer for `poll_timeout`. Once per frame period, [`Media::capture`]
//! and [`Media::mix`] (or your own code around [`Session::send_frame`] and [`Session::poll_playout`]).
//!
//! ```
//! use std::time::Instant;
//! use voice_client::{ConnectionCommand, Session, SessionConfig, State};
//! use voice_proto::control::{ClientMessage, Credential, Message, SecretBytes, ServerMessage};
//! use voice_proto::{PublicId, SessionToken};
//!
//! let now = Instant::now();
//! let config = SessionConfig::new("192.0.2.1:7000".parse()?, "alice", Credential::Password("hunter2".into()))
//!     .with_room("lobby");
//! let mut session = Session::new(config, now, 1);
//! // The session asks for a control connection; the driver opens it and says so.
//! assert_eq!(session.poll_connection(), Some(ConnectionCommand::Connect));
//! session.handle_connected(now);
//! let login = session.poll_control_bytes().expect("a Login frame");
//! assert_eq!(u16::from_be_bytes([login[6], login[7]]), 0x0001);
//!
//! // The server's answer, as bytes from the TCP connection.
//! let mut reply = Vec::new();
//! ServerMessage::LoginOk {
//!     token: SessionToken(7),
//!     public_id: PublicId(42),
//!     secret: SecretBytes([1; 32]),
//!     udp_port: 7001,
//!     resume_grace_s: 60,
//!     server_name: "home".into(),
//! }
//! .encode(&mut reply)?;
//! session.handle_control_bytes(now, &reply);
//! assert_eq!(session.state(), State::LoggedIn);
//! assert_eq!(session.relay_addr(), Some("192.0.2.1:7001".parse()?));
//! // Next on the wire: ListRooms (the room is joined when the list arrives).
//! let mut next = bytes::BytesMut::from(&session.poll_control_bytes().expect("ListRooms")[..]);
//! let frame = voice_proto::control::decode_frame(&mut next)?.expect("a whole frame");
//! assert_eq!(ClientMessage::decode(&frame)?, Some(ClientMessage::ListRooms));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod audio;
#[cfg(feature = "cpal")]
mod audio_cpal;
#[cfg(feature = "wav")]
mod audio_file;
mod conditioner;
#[cfg(feature = "tokio")]
mod driver;
mod error;
mod media;
mod ring;
mod session;

pub use audio::{AudioBackend, AudioFormat, AudioStreams};
#[cfg(feature = "cpal")]
#[cfg_attr(docsrs, doc(cfg(feature = "cpal")))]
pub use audio_cpal::{CpalAudio, device_names};
#[cfg(feature = "wav")]
#[cfg_attr(docsrs, doc(cfg(feature = "wav")))]
pub use audio_file::{FileAudio, read_wav, write_wav};
pub use conditioner::{ConditionerConfig, ConditionerStats, NetworkConditioner};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use driver::{
    Client, ClientConfig, ControlTls, NetworkStats, QUEUE_BOUND, RingLosses, ThreadPriorities, ThreadPriority,
    raise_current_thread_priority,
};
pub use error::{ConfigError, Error};
pub use media::{Media, MediaConfig};
pub use ring::{RingStats, SampleConsumer, SampleProducer, sample_ring};
/// The rustls version [`ControlTls::with_config`] takes.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use rustls;
pub use session::{
    ConnectionCommand, EncoderHint, Event, Session, SessionConfig, SessionStats, SpeakerStats, State, TalkMode,
};
/// Sibling types a user of this crate names: how a session logs in, and whom it whispers to.
pub use voice_proto::{PublicId, WhisperTarget, control::Credential};
