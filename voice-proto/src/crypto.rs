//! Payload protection (AES-256-GCM) and the hello MAC (HMAC-SHA-256), on top of `ring`.
//!
//! * The **media key** is shared by the members of a room and delivered over the control channel. Each sender seals
//!   its Opus payload with nonce = `sender public id (4 bytes BE) ‖ seq (8 bytes BE)` and the relay → client header
//!   as associated data ([`AudioHeader::aad`]). The relay forwards ciphertext it never opens.
//! * The **session secret** is per session and known to the client and the relay only. It authenticates the UDP
//!   hello that binds an address to a session, so the clear-text token alone can bind nothing, and it keys the
//!   **uplink tag** ([`UplinkKey`], SipHash-2-4) that ends every other client → relay datagram, so that a packet
//!   the relay charges to a session was sent by someone who knows that session's secret.
//!
//! AES-256-GCM was picked over ChaCha20-Poly1305 by measurement (`cargo bench -p voice-benches --bench proto --
//! aead`): on this project's reference machine (x86-64 with AES-NI) it seals+opens a 120-byte payload faster.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use siphasher::sip::SipHasher24;

use crate::datagram::{
    AUDIO_HEADER_LEN, AudioHeader, Datagram, HELLO_LEN, Hello, HelloAck, MAC_LEN, MAX_AUDIO_PLAINTEXT,
    MAX_DATAGRAM_LEN, PacketKind, TAG_LEN, UPLINK_TAG_LEN, hello_mac_input,
};
use crate::error::CryptoError;
use crate::types::{KeyId, PublicId, SessionToken};

/// Length of a media key and of a session secret.
pub const KEY_LEN: usize = 32;

#[inline]
fn nonce(sender: PublicId, header: &AudioHeader) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..4].copy_from_slice(&sender.0.to_be_bytes());
    n[4..].copy_from_slice(&header.seq.0.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// A room's media key: seals and opens audio payloads.
///
/// Nonces are unique as long as a sender never reuses a sequence number under one key and the relay never gives
/// two live sessions the same public id (`PROTOCOL.md` §4).
pub struct MediaKey {
    id: KeyId,
    key: LessSafeKey,
}

impl std::fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MediaKey {
    /// A key from its id and 32 secret bytes.
    #[must_use]
    pub fn new(id: KeyId, bytes: &[u8; KEY_LEN]) -> Self {
        // AES_256_GCM takes exactly 32 bytes, which the array type guarantees, so this cannot fail.
        let unbound = UnboundKey::new(&aead::AES_256_GCM, bytes).expect("32-byte key for AES-256-GCM");
        Self { id, key: LessSafeKey::new(unbound) }
    }

    /// The id receivers use to pick this key.
    #[must_use]
    pub const fn id(&self) -> KeyId {
        self.id
    }

    /// Writes a complete client → relay audio datagram into `out`: the header (with this key's id), the sealed
    /// `plaintext` and the uplink tag under `uplink` (the sender's session). Returns its length. Allocation-free.
    pub fn seal_audio_up(
        &self,
        uplink: &UplinkKey,
        token: SessionToken,
        sender: PublicId,
        header: &AudioHeader,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, CryptoError> {
        if plaintext.len() > MAX_AUDIO_PLAINTEXT {
            return Err(CryptoError::PayloadTooLarge { len: plaintext.len(), max: MAX_AUDIO_PLAINTEXT });
        }
        let need = AUDIO_HEADER_LEN + plaintext.len() + TAG_LEN + UPLINK_TAG_LEN;
        let have = out.len();
        let Some(out) = out.get_mut(..need) else {
            return Err(CryptoError::BufferTooSmall { have, need });
        };
        let (out, uplink_tag) = out.split_at_mut(need - UPLINK_TAG_LEN);
        let header = AudioHeader { key_id: self.id, ..*header };
        let (head, rest) = out.split_at_mut(AUDIO_HEADER_LEN);
        let head: &mut [u8; AUDIO_HEADER_LEN] =
            head.try_into().map_err(|_| CryptoError::BufferTooSmall { have, need })?;
        header.write(PacketKind::AudioUp, token.0, head);
        let (body, tag_out) = rest.split_at_mut(plaintext.len());
        body.copy_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(sender, &header), Aad::from(header.aad(sender)), body)
            .map_err(|_| CryptoError::PayloadTooLarge { len: plaintext.len(), max: MAX_AUDIO_PLAINTEXT })?;
        tag_out.copy_from_slice(tag.as_ref());
        uplink_tag.copy_from_slice(&uplink.tag(out));
        Ok(need)
    }

    /// Opens a sealed payload (ciphertext ‖ tag) in place and returns the plaintext, a prefix of `payload`.
    ///
    /// `sender` and `header` are those of the received relay → client packet. Prefer
    /// [`crate::ReplayWindow::open`], which also refuses replays.
    pub fn open_in_place<'p>(
        &self,
        sender: PublicId,
        header: &AudioHeader,
        payload: &'p mut [u8],
    ) -> Result<&'p mut [u8], CryptoError> {
        if payload.len() < TAG_LEN {
            return Err(CryptoError::TooShort);
        }
        if header.key_id != self.id {
            return Err(CryptoError::UnknownKey(header.key_id.0));
        }
        self.key
            .open_in_place(nonce(sender, header), Aad::from(header.aad(sender)), payload)
            .map_err(|_| CryptoError::AuthFailed)
    }
}

/// The per-session secret shared by a client and the relay; authenticates hellos and hello-acks.
pub struct SessionSecret {
    bytes: [u8; KEY_LEN],
    key: hmac::Key,
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(…)")
    }
}

impl Clone for SessionSecret {
    fn clone(&self) -> Self {
        Self::new(self.bytes)
    }
}

impl PartialEq for SessionSecret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.bytes, &other.bytes)
    }
}

impl Eq for SessionSecret {}

impl SessionSecret {
    /// A secret from its 32 bytes.
    #[must_use]
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes, key: hmac::Key::new(hmac::HMAC_SHA256, &bytes) }
    }

    /// The secret's bytes (to put in a `LoginOk` or `Resume` control message).
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    fn mac(&self, input: &[u8; 16]) -> [u8; MAC_LEN] {
        let tag = hmac::sign(&self.key, input);
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        mac
    }

    fn verify(&self, input: &[u8; 16], mac: &[u8; MAC_LEN]) -> Result<(), CryptoError> {
        let expected = self.mac(input);
        if ct_eq(&expected, mac) { Ok(()) } else { Err(CryptoError::BadMac) }
    }

    /// A hello for `token` with `counter`, MAC included.
    #[must_use]
    pub fn hello(&self, token: SessionToken, counter: u64) -> Hello {
        let mac = self.mac(&hello_mac_input(PacketKind::Hello, token.0, counter));
        Hello { token, counter, mac }
    }

    /// Checks a hello's MAC (the relay also checks that `counter` grows).
    pub fn verify_hello(&self, hello: &Hello) -> Result<(), CryptoError> {
        self.verify(&hello_mac_input(PacketKind::Hello, hello.token.0, hello.counter), &hello.mac)
    }

    /// The relay's answer to an accepted hello.
    #[must_use]
    pub fn hello_ack(&self, public_id: PublicId, counter: u64) -> HelloAck {
        let mac = self.mac(&hello_mac_input(PacketKind::HelloAck, public_id.0, counter));
        HelloAck { public_id, counter, mac }
    }

    /// Checks a hello-ack's MAC on the client.
    pub fn verify_hello_ack(&self, ack: &HelloAck) -> Result<(), CryptoError> {
        self.verify(&hello_mac_input(PacketKind::HelloAck, ack.public_id.0, ack.counter), &ack.mac)
    }

    /// The session's uplink tag key (`PROTOCOL.md` §2.8):
    /// `HMAC-SHA-256(secret, "voice uplink tag v2")`, first 16 bytes. Derive it once per session, not per packet.
    #[must_use]
    pub fn uplink_key(&self) -> UplinkKey {
        let tag = hmac::sign(&self.key, UPLINK_KDF_LABEL);
        let mut key = [0u8; UPLINK_KEY_LEN];
        key.copy_from_slice(&tag.as_ref()[..UPLINK_KEY_LEN]);
        UplinkKey::from_bytes(&key)
    }
}

/// The label of the uplink key derivation (`PROTOCOL.md` §2.8), ASCII, no terminator.
pub const UPLINK_KDF_LABEL: &[u8] = b"voice uplink tag v2";
/// Length of an uplink tag key.
pub const UPLINK_KEY_LEN: usize = 16;

/// A session's uplink tag key: computes and checks the 8-byte tag that ends every AUDIO_UP, PING and
/// RECEIVER_REPORT (`PROTOCOL.md` §2.8). The tag is SipHash-2-4 under this 128-bit key of every byte of the datagram
/// before it, the 64-bit result written little-endian (as the SipHash reference does).
///
/// The relay checks it before it charges anything to the session the token names, so a packet forged from a
/// sniffed token and a spoofed address costs its sender, never the member. Get one with
/// [`SessionSecret::uplink_key`].
#[derive(Clone)]
pub struct UplinkKey {
    sip: SipHasher24,
}

impl std::fmt::Debug for UplinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UplinkKey(…)")
    }
}

impl UplinkKey {
    /// A key from its 16 bytes (read as SipHash's `k0 ‖ k1`, each little-endian).
    #[must_use]
    pub fn from_bytes(key: &[u8; UPLINK_KEY_LEN]) -> Self {
        Self { sip: SipHasher24::new_with_key(key) }
    }

    /// The tag of `covered` (all bytes of a datagram before its tag).
    #[must_use]
    #[inline]
    pub fn tag(&self, covered: &[u8]) -> [u8; UPLINK_TAG_LEN] {
        self.sip.hash(covered).to_le_bytes()
    }

    /// Checks the tag that ends `datagram` (a whole tagged client → relay datagram), in constant time.
    /// Allocation-free; does not decode anything else.
    #[inline]
    pub fn verify(&self, datagram: &[u8]) -> Result<(), CryptoError> {
        let Some((covered, tag)) = datagram.split_last_chunk::<UPLINK_TAG_LEN>() else {
            return Err(CryptoError::BadTag);
        };
        if ct_eq(&self.tag(covered), tag) { Ok(()) } else { Err(CryptoError::BadTag) }
    }

    /// Writes the tag into the last [`UPLINK_TAG_LEN`] bytes of `datagram`, over the bytes before them.
    pub fn sign_in_place(&self, datagram: &mut [u8]) -> Result<(), CryptoError> {
        let have = datagram.len();
        let Some((covered, tag)) = datagram.split_last_chunk_mut::<UPLINK_TAG_LEN>() else {
            return Err(CryptoError::BufferTooSmall { have, need: UPLINK_TAG_LEN });
        };
        *tag = self.tag(covered);
        Ok(())
    }

    /// `datagram` with its uplink tag set, for the tagged kinds (AUDIO_UP, PING, RECEIVER_REPORT); any other kind
    /// is returned as it is. Allocation-free (the encoding it covers is built on the stack). A datagram that would
    /// encode longer than [`MAX_DATAGRAM_LEN`] is returned unchanged: receivers drop it anyway.
    #[must_use]
    pub fn tagged<'a>(&self, mut datagram: Datagram<'a>) -> Datagram<'a> {
        let tagged_kind = matches!(datagram, Datagram::AudioUp(_) | Datagram::Ping(_) | Datagram::ReceiverReport(_));
        let len = datagram.encoded_len();
        if !tagged_kind || !(UPLINK_TAG_LEN..=MAX_DATAGRAM_LEN).contains(&len) {
            return datagram;
        }
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let mut w: &mut [u8] = &mut buf[..len];
        datagram.encode(&mut w);
        let tag = self.tag(&buf[..len - UPLINK_TAG_LEN]);
        match &mut datagram {
            Datagram::AudioUp(a) => a.tag = tag,
            Datagram::Ping(p) => p.tag = tag,
            Datagram::ReceiverReport(r) => r.tag = tag,
            _ => {}
        }
        datagram
    }
}

/// Equality of two equal-length byte strings in time independent of where they differ.
fn ct_eq<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

const _: () = assert!(HELLO_LEN == 16 + MAC_LEN);
