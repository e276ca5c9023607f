//! # voice-proto — the wire protocol of the voice stack
//!
//! What it is: the byte formats and the per-packet security of the stack, as pure functions and small state
//! machines. `PROTOCOL.md` (at the repository root, and a copy in this crate's package) is the normative spec; every
//! hex vector in it is checked against this crate by a test.
//!
//! * **Data plane (UDP)** — [`Datagram`]: client → relay audio ([`AudioUp`]), relay → client audio ([`AudioDown`],
//!   sender's public id instead of its token, rewritten in place by [`rewrite_up_to_down`]), the authenticated
//!   [`Hello`] that binds an address to a session, [`Ping`]/[`Pong`], [`ReceiverReport`], and the 0-byte keepalive.
//!   Decoding is zero-copy from `&[u8]` and never panics; encoding writes into a caller-owned [`bytes::BufMut`].
//! * **Payload protection** — [`MediaKey`] seals/opens Opus payloads with AES-256-GCM (nonce = sender id ‖ seq,
//!   header as associated data), so the relay forwards ciphertext it never decrypts; [`ReplayWindow`] refuses
//!   replays, and only packets that authenticate advance it; [`SessionSecret`] MACs the hello and keys the
//!   [`UplinkKey`] that tags every other client → relay datagram.
//! * **Control plane (TCP)** — [`control`]: length-prefixed, versioned frames, [`control::ClientMessage`] and
//!   [`control::ServerMessage`] encoded and decoded through the [`control::Message`] trait, hard caps on every
//!   length, unknown kinds skipped.
//!
//! What it does **not** do: no sockets, no clock reads, no threads, no async runtime, no key generation (the relay
//! draws keys from its own RNG). Time, bytes and keys come in as arguments.
//!
//! ```
//! use voice_proto::{AudioHeader, Datagram, MediaKey, PublicId, ReplayWindow, Seq, SessionToken, Timestamp,
//!                   KeyId, MAX_DATAGRAM_LEN, SessionSecret, rewrite_up_to_down};
//!
//! let key = MediaKey::new(KeyId(1), &[7u8; 32]);
//! let uplink = SessionSecret::new([9u8; 32]).uplink_key();
//! let (token, me) = (SessionToken(0xDEAD_BEEF), PublicId(42));
//! let header = AudioHeader { seq: Seq(1), timestamp: Timestamp(960), ..AudioHeader::default() };
//!
//! // Client: seal 3 bytes of "Opus" into a client → relay datagram (no allocation).
//! let mut buf = [0u8; MAX_DATAGRAM_LEN];
//! let n = key.seal_audio_up(&uplink, token, me, &header, b"opus", &mut buf).unwrap();
//!
//! // Relay: validate, check the uplink tag with the session's key, then rewrite token → public id in place and
//! // cut the tag off; the same bytes go to every recipient.
//! assert!(matches!(Datagram::decode_from_client(&buf[..n]), Ok(Datagram::AudioUp(_))));
//! uplink.verify(&buf[..n]).unwrap();
//! let n = rewrite_up_to_down(&mut buf[..n], me).unwrap();
//!
//! // Receiver: decode, then open through the replay window.
//! let mut window = ReplayWindow::new();
//! let (sender, header, range) = match Datagram::decode_from_relay(&buf[..n]).unwrap() {
//!     Datagram::AudioDown(a) => (a.sender, a.header, n - a.payload.len()..n),
//!     _ => unreachable!(),
//! };
//! let opus = window.open(&key, sender, &header, &mut buf[range.clone()]).unwrap();
//! assert_eq!(opus, b"opus");
//! // The same packet again is a replay.
//! assert!(window.open(&key, sender, &header, &mut buf[range]).is_err());
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod control;
mod crypto;
mod datagram;
mod error;
mod replay;
mod transmit;
mod types;

pub use crypto::{KEY_LEN, MediaKey, SessionSecret, UPLINK_KDF_LABEL, UPLINK_KEY_LEN, UplinkKey};
pub use datagram::{
    AUDIO_HEADER_LEN, AudioDown, AudioFlags, AudioHeader, AudioUp, CONTROL_VERSION, Datagram, HELLO_LEN, Hello,
    HelloAck, MAC_LEN, MAX_AUDIO_DOWN_LEN, MAX_AUDIO_PLAINTEXT, MAX_DATAGRAM_LEN, MAX_REPORT_BLOCKS, MIN_AUDIO_LEN,
    MIN_AUDIO_UP_LEN, PING_LEN, PacketKind, Ping, Pong, REPORT_BLOCK_LEN, REPORT_HEADER_LEN, ReceiverReport,
    ReportBlock, TAG_LEN, UPLINK_TAG_LEN, VERSION, rewrite_up_to_down,
};
pub use error::{ControlError, CryptoError, DecodeError, Error, OpenError, ReplayError};
pub use replay::{REPLAY_WINDOW, ReplayWindow};
pub use transmit::Transmit;
pub use types::{KeyId, PublicId, Seq, SessionToken, Timestamp, TimestampUnwrapper, WhisperTarget};
