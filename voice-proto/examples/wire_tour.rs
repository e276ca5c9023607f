//! A tour of the wire protocol, with no network: a login on the control channel (TCP frames arriving in pieces),
//! the hello that binds a UDP address, and one sealed audio packet on its way from a sender through the relay to a
//! receiver.
//!
//! ```text
//! cargo run -p voice-proto --example wire_tour
//! ```

use bytes::BytesMut;
use voice_proto::control::{ClientMessage, Credential, Kind, Message, SecretBytes, ServerMessage, decode_frame};
use voice_proto::{
    AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, ReplayWindow, Seq, SessionSecret, SessionToken,
    Timestamp, rewrite_up_to_down,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Control channel. The client writes a Login frame; TCP may deliver it in any pieces, so the server keeps a
    //    read buffer and takes whole frames off its front.
    let mut wire = BytesMut::new();
    let login = ClientMessage::Login {
        user: "alice".into(),
        credential: Credential::Password("hunter2".into()),
        client: "tour".into(),
    };
    login.encode(&mut wire)?;
    ClientMessage::ListRooms.encode(&mut wire)?;
    println!("client → server: {} bytes of control frames", wire.len());

    let mut server_buf = BytesMut::new();
    for piece in wire.chunks(7) {
        server_buf.extend_from_slice(piece);
        while let Some(frame) = decode_frame(&mut server_buf)? {
            // `Ok(None)` would be a kind this version does not know: skip it.
            if let Some(msg) = ClientMessage::decode(&frame)? {
                println!("  server got {:?} (kind {:#06x}): {msg:?}", msg.kind(), msg.kind().to_u16());
            }
        }
    }

    // The server answers with the session's token, public id and secret (in real life drawn from its RNG).
    let (token, alice) = (SessionToken(0x0BAD_CAFE), PublicId(7));
    let secret = SessionSecret::new([0x11; 32]);
    let mut reply = BytesMut::new();
    ServerMessage::LoginOk {
        token,
        public_id: alice,
        secret: SecretBytes([0x11; 32]),
        udp_port: 7001,
        resume_grace_s: 60,
        server_name: "tour".into(),
    }
    .encode(&mut reply)?;
    let frame = decode_frame(&mut reply)?.ok_or("a whole frame")?;
    assert_eq!(Kind::from_u16(frame.kind), Some(Kind::LoginOk));
    println!("server → client: {:?}", ServerMessage::decode(&frame)?.ok_or("known kind")?);

    // 2. UDP: the hello, MACed with the session secret, binds the client's address to its session.
    let mut hello = Vec::new();
    Datagram::Hello(secret.hello(token, 1)).encode(&mut hello);
    match Datagram::decode_from_client(&hello)? {
        Datagram::Hello(h) => {
            secret.verify_hello(&h)?;
            println!("relay: hello from {:?} verified ({} bytes)", h.token, hello.len());
        }
        other => return Err(format!("unexpected {other:?}").into()),
    }

    // 3. Audio: sealed by the sender with the room's media key (it travels on the control channel), forwarded by
    //    the relay without decrypting, opened by each receiver through a replay window.
    let key = MediaKey::new(KeyId(1), &[0x42; 32]);
    let mut packet = [0u8; MAX_DATAGRAM_LEN];
    let header = AudioHeader { seq: Seq(1), timestamp: Timestamp(960), ..AudioHeader::default() };
    // Every AUDIO_UP (and PING, RECEIVER_REPORT) ends with an 8-byte tag under a key derived from the session secret.
    let uplink = secret.uplink_key();
    let n = key.seal_audio_up(&uplink, token, alice, &header, b"20 ms of Opus", &mut packet)?;
    println!("alice → relay: {n} bytes of AUDIO_UP");

    // The relay checks the packet's shape and its uplink tag (before it charges anything to the session), then
    // rewrites the sender's token into its public id, in place, and cuts the tag off.
    Datagram::decode_from_client(&packet[..n])?;
    uplink.verify(&packet[..n])?;
    let n = rewrite_up_to_down(&mut packet[..n], alice)?;

    let mut window = ReplayWindow::new();
    let (sender, header, start) = match Datagram::decode_from_relay(&packet[..n])? {
        Datagram::AudioDown(a) => (a.sender, a.header, n - a.payload.len()),
        other => return Err(format!("unexpected {other:?}").into()),
    };
    let mut replay = packet;
    let opus = window.open(&key, sender, &header, &mut packet[start..n])?;
    println!(
        "receiver: {} bytes from {sender:?}, seq {:?}: {:?}",
        opus.len(),
        header.seq,
        String::from_utf8_lossy(opus)
    );
    let again = window.open(&key, sender, &header, &mut replay[start..n]);
    println!(
        "receiver: the same packet again is refused: {}",
        again.map(|_| "accepted?!".to_owned()).unwrap_or_else(|e| e.to_string())
    );
    Ok(())
}
