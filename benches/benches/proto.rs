//! voice-proto benches: header encode, header decode+validate, seal and open of a 120-byte payload, control frame
//! encode/decode, and the AEAD choice (AES-256-GCM vs ChaCha20-Poly1305).
//!
//! Targets (issue 2): header encode ≤ 10 ns, decode+validate ≤ 10 ns, seal+open ≤ 400 ns.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use voice_proto::control::{ClientMessage, Message, ServerMessage, decode_frame};
use voice_proto::{
    AudioFlags, AudioHeader, AudioUp, Datagram, KeyId, MAX_DATAGRAM_LEN, MediaKey, PublicId, ReplayWindow, Seq,
    SessionToken, Timestamp, WhisperTarget, rewrite_up_to_down,
};

const PAYLOAD: usize = 120;

fn header() -> AudioHeader {
    AudioHeader {
        flags: AudioFlags::NONE,
        key_id: KeyId(1),
        seq: Seq(123_456),
        timestamp: Timestamp(960 * 77),
        target: WhisperTarget::ROOM,
    }
}

fn datagram(c: &mut Criterion) {
    let h = header();
    let payload = [0xA5u8; PAYLOAD + 16];
    let pkt = Datagram::AudioUp(AudioUp { token: SessionToken(7), header: h, payload: &payload, tag: [0; 8] });
    let mut wire = Vec::with_capacity(MAX_DATAGRAM_LEN);
    pkt.encode(&mut wire);

    let mut g = c.benchmark_group("datagram");
    g.bench_function("header_encode", |b| {
        let mut out = [0u8; 30];
        b.iter(|| {
            let d =
                Datagram::AudioUp(AudioUp { token: SessionToken(7), header: black_box(h), payload: &[], tag: [0; 8] });
            let mut w = &mut out[..];
            d.encode(&mut w);
            black_box(&out);
        })
    });
    g.bench_function("header_decode_validate", |b| {
        b.iter(|| match Datagram::decode_from_client(black_box(&wire)) {
            Ok(Datagram::AudioUp(a)) => black_box(a.header.seq),
            _ => unreachable!(),
        })
    });
    g.bench_function("relay_rewrite_in_place", |b| {
        let mut buf = wire.clone();
        b.iter(|| {
            buf[1] = 0x01;
            rewrite_up_to_down(black_box(&mut buf), PublicId(9)).ok();
        })
    });
    // Protocol version 2: the relay's check of the uplink tag (SipHash-2-4 over the whole AUDIO_UP but its tag).
    let uplink = voice_proto::SessionSecret::new([4; 32]).uplink_key();
    let mut tagged = wire.clone();
    uplink.sign_in_place(&mut tagged).unwrap();
    g.bench_function("uplink_tag_verify", |b| b.iter(|| uplink.verify(black_box(&tagged)).unwrap()));
    // The alternative the tag's design was measured against: ring's HMAC-SHA-256 over the same bytes (truncated).
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[4; 32]);
    let covered = &tagged[..tagged.len() - voice_proto::UPLINK_TAG_LEN];
    g.bench_function("hmac_sha256_same_bytes", |b| b.iter(|| ring::hmac::sign(&hmac, black_box(covered))));
    g.finish();
}

fn seal_open(c: &mut Criterion) {
    let key = MediaKey::new(KeyId(1), &[9; 32]);
    let uplink = voice_proto::SessionSecret::new([4; 32]).uplink_key();
    let plain = [0x5Au8; PAYLOAD];
    let mut g = c.benchmark_group("media_key");
    g.throughput(Throughput::Bytes(PAYLOAD as u64));
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    g.bench_function("seal_120", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            let h = AudioHeader { seq: Seq(seq), ..header() };
            black_box(key.seal_audio_up(&uplink, SessionToken(7), PublicId(9), &h, &plain, &mut buf).unwrap())
        })
    });
    g.bench_function("seal_open_120", |b| {
        let mut seq = 0u64;
        let mut window = ReplayWindow::new();
        b.iter(|| {
            seq += 1;
            let h = AudioHeader { seq: Seq(seq), ..header() };
            let n = key.seal_audio_up(&uplink, SessionToken(7), PublicId(9), &h, &plain, &mut buf).unwrap();
            let n = rewrite_up_to_down(&mut buf[..n], PublicId(9)).unwrap();
            let opened = window.open(&key, PublicId(9), &h, &mut buf[22..n]).unwrap();
            black_box(opened.len())
        })
    });
    g.finish();
}

/// Raw ring AEADs on the same payload and AAD: the measurement behind choosing AES-256-GCM.
fn aead_choice(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead");
    g.throughput(Throughput::Bytes(PAYLOAD as u64));
    for (name, alg) in [("aes256gcm", &aead::AES_256_GCM), ("chacha20poly1305", &aead::CHACHA20_POLY1305)] {
        let key = LessSafeKey::new(UnboundKey::new(alg, &[3; 32]).unwrap());
        let aad = [1u8; 22];
        g.bench_function(format!("{name}_seal_open_120"), |b| {
            let mut buf = [0u8; PAYLOAD + 16];
            let mut seq = 0u64;
            b.iter(|| {
                seq += 1;
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&seq.to_be_bytes());
                let tag = key
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut buf[..PAYLOAD])
                    .unwrap();
                buf[PAYLOAD..].copy_from_slice(tag.as_ref());
                let p = key.open_in_place(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut buf).unwrap();
                black_box(p.len())
            })
        });
    }
    // RustCrypto's implementations, same payload, AAD and nonce scheme.
    {
        use aes_gcm::aead::{AeadInPlace, KeyInit};
        let aes = aes_gcm::Aes256Gcm::new_from_slice(&[3; 32]).unwrap();
        let chacha = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&[3; 32]).unwrap();
        fn run<A: AeadInPlace<NonceSize = aes_gcm::aead::consts::U12>>(b: &mut criterion::Bencher<'_>, a: &A) {
            let aad = [1u8; 22];
            let mut buf = [0u8; PAYLOAD];
            let mut seq = 0u64;
            b.iter(|| {
                seq += 1;
                let mut n = [0u8; 12];
                n[4..].copy_from_slice(&seq.to_be_bytes());
                let nonce = aes_gcm::aead::generic_array::GenericArray::from_slice(&n);
                let tag = a.encrypt_in_place_detached(nonce, &aad, &mut buf).unwrap();
                a.decrypt_in_place_detached(nonce, &aad, &mut buf, &tag).unwrap();
                black_box(buf[0])
            })
        }
        g.bench_function("rustcrypto_aes256gcm_seal_open_120", |b| run(b, &aes));
        g.bench_function("rustcrypto_chacha20poly1305_seal_open_120", |b| run(b, &chacha));
    }
    g.finish();
}

fn control(c: &mut Criterion) {
    let chat = ServerMessage::Chat {
        from: PublicId(4),
        from_name: "alice".into(),
        sent_at_ms: 1_700_000_000_000,
        history: false,
        text: "hello everyone, can you hear me?".into(),
    };
    let join = ClientMessage::Join { room: "lobby".into(), password: None };
    let mut g = c.benchmark_group("control");
    let mut out = BytesMut::with_capacity(256);
    g.bench_function("chat_encode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&chat).encode(&mut out).unwrap();
        })
    });
    let mut wire = BytesMut::new();
    chat.encode(&mut wire).unwrap();
    let wire = wire.freeze();
    g.bench_function("chat_decode", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let f = decode_frame(&mut buf).unwrap().unwrap();
            black_box(ServerMessage::decode(&f).unwrap())
        })
    });
    g.bench_function("join_encode_decode", |b| {
        b.iter(|| {
            out.clear();
            black_box(&join).encode(&mut out).unwrap();
            let f = decode_frame(&mut out).unwrap().unwrap();
            black_box(ClientMessage::decode(&f).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, datagram, seal_open, aead_choice, control);
criterion_main!(benches);
