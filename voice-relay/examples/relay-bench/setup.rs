//! Members: log in over TCP, join a room, bind UDP with a HELLO.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::bail;
use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Credential, Message, ServerMessage, decode_frame};
use voice_proto::{Datagram, KeyId, PublicId, SessionSecret, SessionToken};

/// One member, after login/join/hello.
pub(crate) struct Member {
    pub(crate) udp: UdpSocket,
    pub(crate) token: SessionToken,
    pub(crate) public_id: PublicId,
    pub(crate) key: (KeyId, [u8; 32]),
    /// Tags the member's AUDIO_UPs (protocol version 2).
    pub(crate) uplink: voice_proto::UplinkKey,
    pub(crate) _tcp: Option<TcpStream>,
}

pub(crate) fn send_msg(tcp: &mut TcpStream, msg: &ClientMessage) -> anyhow::Result<()> {
    let mut b = BytesMut::new();
    msg.encode(&mut b)?;
    tcp.write_all(&b)?;
    Ok(())
}

pub(crate) fn recv_until<T>(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    mut f: impl FnMut(ServerMessage) -> Option<T>,
) -> anyhow::Result<T> {
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(frame) = decode_frame(buf)? {
            if let Some(msg) = ServerMessage::decode(&frame)? {
                if let ServerMessage::Error { code, message } = &msg {
                    bail!("relay error {code:?}: {message}");
                }
                if let Some(t) = f(msg) {
                    return Ok(t);
                }
            }
        }
        let n = tcp.read(&mut chunk)?;
        if n == 0 {
            bail!("relay closed the control connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Logs in, joins, binds; `keep_tcp: false` closes the control connection at the end (idle mode).
pub(crate) fn join_member(
    user: &str,
    room: &str,
    tcp_addr: SocketAddr,
    udp_addr: SocketAddr,
    keep_tcp: bool,
) -> anyhow::Result<Member> {
    let mut tcp = TcpStream::connect(tcp_addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = BytesMut::new();
    let credential = Credential::Password(format!("pw-{user}"));
    send_msg(&mut tcp, &ClientMessage::Login { user: user.into(), credential, client: "bench".into() })?;
    let (token, public_id, secret) = recv_until(&mut tcp, &mut buf, |m| match m {
        ServerMessage::LoginOk { token, public_id, secret, .. } => Some((token, public_id, secret)),
        _ => None,
    })?;
    send_msg(&mut tcp, &ClientMessage::Join { room: room.into(), password: None })?;
    let key = recv_until(&mut tcp, &mut buf, |m| match m {
        ServerMessage::MediaKey { key_id, key } => Some((key_id, key.0)),
        _ => None,
    })?;
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    udp.set_read_timeout(Some(Duration::from_millis(500)))?;
    let secret = SessionSecret::new(secret.0);
    let mut ack = [0u8; 64];
    for counter in 1..=5 {
        let mut hello = Vec::new();
        Datagram::Hello(secret.hello(token, counter)).encode(&mut hello);
        udp.send_to(&hello, udp_addr)?;
        if let Ok((n, _)) = udp.recv_from(&mut ack)
            && matches!(Datagram::decode_from_relay(&ack[..n]), Ok(Datagram::HelloAck(_)))
        {
            udp.set_nonblocking(true)?;
            let uplink = secret.uplink_key();
            return Ok(Member { udp, token, public_id, key, uplink, _tcp: keep_tcp.then_some(tcp) });
        }
    }
    bail!("no HELLO_ACK for {user}")
}
