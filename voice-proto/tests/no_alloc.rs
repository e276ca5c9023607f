//! The data-plane path allocates nothing: sealing, decoding + validating, the relay's in-place rewrite, opening
//! through the replay window, and encoding hellos, pings and reports into caller-owned buffers.
//! (`allocation-counter` counts the allocations of this thread inside `measure`.)

use voice_proto::{
    AudioHeader, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, Ping, PublicId, ReceiverReport, ReplayWindow,
    ReportBlock, Seq, SessionSecret, SessionToken, Timestamp, rewrite_up_to_down,
};

#[test]
fn data_plane_path_allocates_nothing() {
    let key = MediaKey::new(KeyId(1), &[3; 32]);
    let secret = SessionSecret::new([4; 32]);
    let uplink = secret.uplink_key();
    let mut window = ReplayWindow::new();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let mut small = [0u8; 300];
    let plain = [0x11u8; 120];
    let blocks = [ReportBlock::default(); 4];
    let info = allocation_counter::measure(|| {
        for seq in 0..1000u64 {
            let h = AudioHeader { seq: Seq(seq), timestamp: Timestamp(960 * seq as u32), ..AudioHeader::default() };
            let n = key.seal_audio_up(&uplink, SessionToken(1), PublicId(2), &h, &plain, &mut buf).unwrap();
            assert!(matches!(Datagram::decode_from_client(&buf[..n]), Ok(Datagram::AudioUp(_))));
            uplink.verify(&buf[..n]).unwrap();
            let n = rewrite_up_to_down(&mut buf[..n], PublicId(2)).unwrap();
            let Ok(Datagram::AudioDown(a)) = Datagram::decode_from_relay(&buf[..n]) else { panic!("decodes") };
            let (sender, header, at) = (a.sender, a.header, n - a.payload.len());
            assert_eq!(window.open(&key, sender, &header, &mut buf[at..n]).unwrap().len(), plain.len());

            let hello = secret.hello(SessionToken(1), seq + 1);
            secret.verify_hello(&hello).unwrap();
            let mut out = &mut small[..];
            Datagram::Hello(hello).encode(&mut out);
            let mut out = &mut small[..];
            uplink.tagged(Datagram::Ping(Ping { token: SessionToken(1), echo: seq, tag: [0; 8] })).encode(&mut out);
            uplink.verify(&small[..24]).unwrap();
            let report = ReceiverReport::new(SessionToken(1), Some(20), &blocks).unwrap();
            let mut out = &mut small[..];
            uplink.tagged(Datagram::ReceiverReport(report)).encode(&mut out);
            let len = 12 + 4 * 16 + 8;
            uplink.verify(&small[..len]).unwrap();
            let Ok(Datagram::ReceiverReport(r)) = Datagram::decode(&small[..len]) else { panic!("report") };
            assert_eq!(r.blocks().count(), 4);
        }
    });
    assert_eq!(info.count_total, 0, "data-plane path allocated: {info:?}");
}
