//! The one representation of "send these bytes there" shared by every sans-IO core of the stack.

use std::net::SocketAddr;

use bytes::Bytes;

/// A datagram a sans-IO core wants sent. The driver owns the socket and sends `payload` to `destination`.
///
/// `payload` is a [`Bytes`]: a relay fanning one packet out to many members hands out clones of the same
/// reference-counted buffer, never copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub destination: SocketAddr,
    /// What to send.
    pub payload: Bytes,
}
