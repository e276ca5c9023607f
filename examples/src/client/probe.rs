//! Why a plain control connection gets no answer to its login: one look at what the server says to a Ping.
//!
//! Only asked when something is already wrong (the login has gone unanswered for a while without the connection
//! being refused): a voice server answers a Ping before any login with a Pong (`PROTOCOL.md` §5.3); a server that
//! serves TLS on the port answers a non-TLS byte stream with a TLS alert record, or closes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Message, ServerMessage, decode_frame};

/// What the server at the other end of a plain TCP connection did with a Ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// It answered like a voice server (a Pong, or any frame of the control protocol).
    Voice,
    /// It answered with a TLS record: it expects TLS on this port.
    Tls,
    /// It could not be reached, closed without a word, said something else, or said nothing in time.
    Unknown,
}

/// Sends a Ping to `server` over plain TCP and reads the first answer, within `timeout` each for the connection,
/// the write and the read.
pub(crate) fn probe(server: SocketAddr, timeout: Duration) -> Probe {
    let Ok(mut tcp) = TcpStream::connect_timeout(&server, timeout) else { return Probe::Unknown };
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut out = BytesMut::new();
    let ping = ClientMessage::Ping { nonce: 1 };
    if ping.encode(&mut out).is_err() || tcp.write_all(&out).is_err() {
        return Probe::Unknown;
    }
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 512];
    while buf.len() < 4096 {
        let n = match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => return Probe::Unknown,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if is_tls_record(&buf) {
            return Probe::Tls;
        }
        match decode_frame(&mut buf) {
            Ok(Some(frame)) => {
                return if matches!(ServerMessage::decode(&frame), Ok(Some(_))) {
                    Probe::Voice
                } else {
                    Probe::Unknown
                };
            }
            Ok(None) => {}
            Err(_) => return Probe::Unknown,
        }
    }
    Probe::Unknown
}

/// Whether `bytes` begin like a TLS record: an alert (21) or a handshake (22), version 3.x.
fn is_tls_record(bytes: &[u8]) -> bool {
    matches!(bytes, [21 | 22, 3, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_are_recognised() {
        assert!(is_tls_record(&[21, 3, 3, 0, 2, 2, 50]), "an alert");
        assert!(is_tls_record(&[22, 3, 1]), "a handshake");
        assert!(!is_tls_record(&[0, 0, 0, 10]), "a control frame");
        assert!(!is_tls_record(&[21]), "too short to tell");
    }
}
