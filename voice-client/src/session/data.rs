//! The data plane: HELLO binding, audio out and in, pings, receiver reports.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use voice_jitter::{Config as JitterConfig, JitterBuffer, Packet};
use voice_proto::{
    AudioFlags, AudioHeader, Datagram, MAX_REPORT_BLOCKS, Ping, PublicId, ReceiverReport, ReportBlock, Seq, Timestamp,
    TimestampUnwrapper, Transmit, WhisperTarget,
};

use super::control::smooth;
use super::{HELLO_INTERVAL, REHELLO_INTERVAL, Session, SpeakerStats};
use crate::Error;

/// Size of the buffer sealed datagrams are split off (about 50 audio datagrams).
const TX_BUFFER: usize = 64 * 1024;

/// One remote speaker: replay window, reception statistics, jitter buffer.
#[derive(Debug)]
pub(super) struct Speaker {
    window: voice_proto::ReplayWindow,
    pub(super) jitter: JitterBuffer<Bytes>,
    /// The latest packet was whispered (not sent to the room) and did not end its talkspurt.
    whispering: bool,
    jitter_config: JitterConfig,
    /// The session's epoch, the origin the jitter buffer measures time from (again after a reset).
    jitter_origin: Instant,
    unwrap: TimestampUnwrapper,
    first_seq: Option<Seq>,
    highest_seq: Seq,
    received: u64,
    /// `expected` and `received` at the last report.
    prior: (u64, u64),
    /// RFC 3550 jitter estimate, 48 kHz samples (×16 fixed point is not needed with f64).
    jitter_samples: f64,
    last_transit: Option<i64>,
}

impl Speaker {
    fn new(config: JitterConfig, origin: Instant) -> Option<Self> {
        Some(Self {
            window: voice_proto::ReplayWindow::new(),
            jitter: JitterBuffer::new(config, origin).ok()?,
            whispering: false,
            jitter_config: config,
            jitter_origin: origin,
            unwrap: TimestampUnwrapper::new(),
            first_seq: None,
            highest_seq: Seq(0),
            received: 0,
            prior: (0, 0),
            jitter_samples: 0.0,
            last_transit: None,
        })
    }

    /// Empties the jitter buffer (deafened: nothing plays, and old audio must not play on undeafen).
    pub(super) fn reset_jitter(&mut self) {
        if let Ok(jb) = JitterBuffer::new(self.jitter_config, self.jitter_origin) {
            self.jitter = jb;
        }
    }

    fn expected(&self) -> u64 {
        self.first_seq.map_or(0, |f| u64::try_from(self.highest_seq.distance(f)).unwrap_or(0) + 1)
    }

    fn on_packet(&mut self, arrival_samples: i64, seq: Seq, ts: Timestamp) {
        match self.first_seq {
            None => {
                self.first_seq = Some(seq);
                self.highest_seq = seq;
            }
            Some(_) if seq.distance(self.highest_seq) > 0 => self.highest_seq = seq,
            Some(_) => {}
        }
        self.received += 1;
        let media = i64::try_from(self.unwrap.unwrap(ts)).unwrap_or(i64::MAX);
        let transit = arrival_samples.saturating_sub(media);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            self.jitter_samples += (d - self.jitter_samples) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    fn report_block(&mut self, id: PublicId) -> ReportBlock {
        let expected = self.expected();
        let lost = expected.saturating_sub(self.received);
        let (exp_prior, rec_prior) = self.prior;
        let exp_int = expected.saturating_sub(exp_prior);
        let rec_int = self.received.saturating_sub(rec_prior);
        let fraction = (exp_int.saturating_sub(rec_int) * 256).checked_div(exp_int).unwrap_or(0).min(255);
        self.prior = (expected, self.received);
        ReportBlock {
            source: id,
            cumulative_lost: u32::try_from(lost).unwrap_or(u32::MAX),
            jitter_samples: self.jitter_samples as u32,
            fraction_lost: u8::try_from(fraction).unwrap_or(u8::MAX),
        }
    }

    pub(super) fn stats(&self, id: PublicId, speaking: bool) -> SpeakerStats {
        let expected = self.expected();
        let lost = expected.saturating_sub(self.received);
        let js = self.jitter.stats();
        SpeakerStats {
            id,
            speaking,
            whispering: self.whispering,
            packets: self.received,
            lost,
            loss_pct: if expected == 0 { 0.0 } else { lost as f64 * 100.0 / expected as f64 },
            jitter: Duration::from_micros((self.jitter_samples * 1e6 / 48_000.0) as u64),
            depth: js.depth,
            current_delay: js.current_delay,
            target_delay: js.target_delay,
            concealed: js.concealed_frames,
            fec_recovered: js.fec_recovered,
            late: js.late,
        }
    }
}

impl Session {
    /// A datagram received on the UDP socket, from `from`. Anything that is not from the relay, malformed,
    /// replayed or fails to authenticate is dropped and counted. Audio is opened in place and its payload kept in
    /// `datagram`'s buffer (no copy) until it is decoded; receive into a large `BytesMut` and `split_to` each
    /// datagram off it so that receiving allocates only when that buffer is used up.
    pub fn handle_datagram(&mut self, now: Instant, from: std::net::SocketAddr, mut datagram: BytesMut) {
        let Some(login) = &self.login else { return self.drop_datagram() };
        if from != login.relay {
            return self.drop_datagram();
        }
        self.last_rx = Some(now);
        let (sender, header, start) = match Datagram::decode_from_relay(&datagram) {
            Ok(Datagram::AudioDown(a)) => (a.sender, a.header, datagram.len() - a.payload.len()),
            Ok(Datagram::HelloAck(ack)) => {
                let ok = login.secret.verify_hello_ack(&ack).is_ok()
                    && ack.public_id == login.public_id
                    && self.hello_pending.is_some_and(|(c, _, _)| c == ack.counter);
                if !ok {
                    return self.drop_datagram();
                }
                self.hello_pending = None;
                self.next_rehello = Some(now + REHELLO_INTERVAL);
                if !self.bound {
                    self.bound = true;
                    self.events.push_back(super::Event::MediaReady);
                    self.next_ping.get_or_insert(now);
                    self.next_report.get_or_insert(now + self.config.report_interval);
                }
                return;
            }
            Ok(Datagram::Pong(p)) => {
                let sample = Duration::from_micros(self.micros(now).saturating_sub(p.echo));
                self.udp_rtt = Some(smooth(self.udp_rtt, sample));
                return;
            }
            Ok(Datagram::Keepalive) => return,
            Ok(_) | Err(_) => return self.drop_datagram(),
        };
        if self.deafened || !self.room.as_ref().is_some_and(|r| r.members.contains_key(&sender)) {
            return self.drop_datagram();
        }
        let Some(key) = self.keys.iter().flatten().find(|k| k.id() == header.key_id) else {
            return self.drop_datagram();
        };
        if !self.speakers.contains_key(&sender) {
            let (min, max) = self.config.jitter_delay_bounds;
            let cfg = JitterConfig::default().with_frame_ms(self.frame_ms()).with_delay_bounds(min, max);
            match Speaker::new(cfg, self.epoch) {
                Some(sp) => self.speakers.insert(sender, sp),
                None => return self.drop_datagram(),
            };
        }
        let t = now.saturating_duration_since(self.epoch);
        let Some(sp) = self.speakers.get_mut(&sender) else { return };
        // Opened in place: the plaintext is a prefix of the datagram's payload, and stays in the datagram's buffer
        // (no copy) through the jitter buffer to the decoder.
        let Ok(plain) = sp.window.open(key, sender, &header, &mut datagram[start..]) else {
            return self.drop_datagram();
        };
        let len = plain.len();
        let packet = Packet {
            seq: header.seq,
            timestamp: header.timestamp,
            end_of_talkspurt: header.flags.contains(AudioFlags::END_OF_TALKSPURT),
            payload: datagram.freeze().slice(start..start + len),
        };
        let arrival = i64::try_from(t.as_micros() * 48 / 1000).unwrap_or(i64::MAX);
        sp.on_packet(arrival, header.seq, header.timestamp);
        sp.whispering = header.target != WhisperTarget::ROOM && !packet.end_of_talkspurt;
        // Late, duplicate or overflowing packets are counted by the buffer; none is an error for the session.
        let _ = sp.jitter.push(now, packet);
    }

    fn drop_datagram(&mut self) {
        self.stats.datagrams_dropped += 1;
    }

    /// Sends one encoded Opus frame (sealed AUDIO_UP to the room or the selected whisper target). Returns
    /// `Ok(false)` without sending when [`wants_audio`](Self::wants_audio) is false (muted, push-to-talk key up,
    /// not bound yet, …); the media timestamp advances either way. `end_of_talkspurt` marks the last frame of a
    /// talkspurt (it is also set automatically on the frame after the push-to-talk key is released).
    pub fn send_frame(&mut self, now: Instant, opus: &[u8], end_of_talkspurt: bool) -> Result<bool, Error> {
        let samples = voice_codec::packet_samples(opus).unwrap_or(self.frame_ms() as usize * 48) as u32;
        if !self.wants_audio() {
            self.skip_audio(samples);
            return Ok(false);
        }
        let end = end_of_talkspurt || self.ptt_release_pending;
        if !self.queue_audio(opus, end, samples)? {
            return Ok(false);
        }
        self.talkspurt = if end { None } else { opus.first().map(|&toc| (toc, now)) };
        if end {
            self.ptt_release_pending = false;
        }
        Ok(true)
    }

    /// Ends the current talkspurt now (voice activation closed its gate, the user muted, …): sends one AUDIO_UP
    /// marked END_OF_TALKSPURT that carries no audio — an Opus packet of the last frame's configuration with an
    /// empty frame, which decoders treat as one lost frame (a short fade) — so that receivers stop at once and
    /// play silence instead of concealing, and the relay clears the speaking state. The media timestamp
    /// advances by one frame. Returns `Ok(false)` (nothing sent) when no talkspurt is going on (the last frame
    /// sent already ended one, or nothing was sent) or the session cannot send audio (not bound, no key, voice
    /// not allowed); muting or push-to-talk do not stop it.
    pub fn end_talkspurt(&mut self) -> Result<bool, Error> {
        let Some((toc, _)) = self.talkspurt.take() else { return Ok(false) };
        if !self.bound || !self.room.as_ref().is_some_and(|r| r.config.allow_voice) {
            return Ok(false);
        }
        // Code 0 (one frame) with a zero-length frame.
        let payload = [toc & 0xFC];
        let samples = voice_codec::packet_samples(&payload).unwrap_or(self.frame_ms() as usize * 48) as u32;
        self.queue_audio(&payload, true, samples)
    }

    /// Sends a pre-rolled frame: one the capture side held back while voice activation's gate was closed (its
    /// media time was already skipped) and sends now that the gate opened, so the onset of a word is not lost.
    /// It goes out with the timestamp it had, `age_samples` before the current position, and does not advance
    /// the media timestamp. `Ok(false)` when the session would not send audio now.
    pub fn send_preroll(&mut self, now: Instant, opus: &[u8], age_samples: u32) -> Result<bool, Error> {
        if !self.wants_audio() {
            return Ok(false);
        }
        if self.queue_audio_at(opus, false, 0, self.timestamp.wrapping_sub(age_samples))? {
            self.talkspurt = opus.first().map(|&toc| (toc, now));
            return Ok(true);
        }
        Ok(false)
    }

    /// Seals `opus` as the next AUDIO_UP at the current media timestamp and queues it; `Ok(false)` without a login
    /// or a media key.
    fn queue_audio(&mut self, opus: &[u8], end: bool, samples: u32) -> Result<bool, Error> {
        self.queue_audio_at(opus, end, samples, self.timestamp)
    }

    /// [`queue_audio`](Self::queue_audio) with the frame's media `timestamp` given; advances the current one by
    /// `samples` when sent.
    fn queue_audio_at(&mut self, opus: &[u8], end: bool, samples: u32, timestamp: u32) -> Result<bool, Error> {
        let (Some(login), Some(key)) = (&self.login, &self.keys[0]) else { return Ok(false) };
        let header = AudioHeader {
            flags: if end { AudioFlags::END_OF_TALKSPURT } else { AudioFlags::NONE },
            key_id: key.id(),
            seq: Seq(self.seq),
            timestamp: Timestamp(timestamp),
            target: self.whisper,
        };
        // Sealed into a large buffer that each datagram is split off: sending allocates only when it is used up.
        if self.tx_buf.capacity() < voice_proto::MAX_DATAGRAM_LEN {
            self.tx_buf.reserve(TX_BUFFER);
        }
        self.tx_buf.resize(voice_proto::MAX_DATAGRAM_LEN, 0);
        let n = key.seal_audio_up(&login.uplink, login.token, login.public_id, &header, opus, &mut self.tx_buf[..])?;
        self.tx_buf.truncate(n);
        let relay = login.relay;
        self.transmits.push_back(Transmit { destination: relay, payload: self.tx_buf.split().freeze() });
        self.seq = self.seq.wrapping_add(1);
        self.skip_audio(samples);
        self.stats.packets_sent += 1;
        self.bytes_since_report += n as u64;
        Ok(true)
    }

    /// Advances the media timestamp by `samples` (48 kHz) for a frame that was not sent (gated by the capture
    /// side), so receivers see the length of the pause.
    pub fn skip_audio(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    pub(super) fn send_hello(&mut self, now: Instant, retry_in: Duration) {
        let Some(login) = &self.login else { return };
        self.hello_counter += 1;
        let hello = login.secret.hello(login.token, self.hello_counter);
        let mut out = Vec::with_capacity(voice_proto::HELLO_LEN);
        Datagram::Hello(hello).encode(&mut out);
        self.transmits.push_back(Transmit { destination: login.relay, payload: out.into() });
        self.hello_pending = Some((self.hello_counter, now + retry_in.max(HELLO_INTERVAL / 4), retry_in));
        self.next_rehello = Some(now + REHELLO_INTERVAL);
        self.stats.hellos_sent += 1;
    }

    pub(super) fn send_ping(&mut self, now: Instant) {
        let Some(login) = &self.login else { return };
        let ping = Ping { token: login.token, echo: self.micros(now), tag: [0; voice_proto::UPLINK_TAG_LEN] };
        let mut out = Vec::with_capacity(voice_proto::PING_LEN + voice_proto::UPLINK_TAG_LEN);
        login.uplink.tagged(Datagram::Ping(ping)).encode(&mut out);
        self.transmits.push_back(Transmit { destination: login.relay, payload: out.into() });
        self.next_ping = Some(now + self.config.ping_interval);
    }

    pub(super) fn send_report(&mut self, now: Instant) {
        self.next_report = Some(now + self.config.report_interval);
        let elapsed = now.saturating_duration_since(self.last_report_at).as_secs_f64();
        if elapsed > 0.0 {
            self.stats.send_bitrate_bps = (self.bytes_since_report as f64 * 8.0 / elapsed) as u32;
        }
        self.bytes_since_report = 0;
        self.last_report_at = now;
        let Some(login) = &self.login else { return };
        let (token, relay, uplink) = (login.token, login.relay, login.uplink.clone());
        let rtt_ms = self.udp_rtt.map(|d| u16::try_from(d.as_millis()).unwrap_or(u16::MAX - 1));
        let blocks: Vec<ReportBlock> = self.speakers.iter_mut().map(|(id, sp)| sp.report_block(*id)).collect();
        // With nobody to report on, one report without blocks still carries this client's RTT, which the relay's
        // congestion detection for this client as a sender needs.
        let empty: [ReportBlock; 0] = [];
        let chunks: Vec<&[ReportBlock]> =
            if blocks.is_empty() { vec![&empty[..]] } else { blocks.chunks(MAX_REPORT_BLOCKS).collect() };
        for chunk in chunks {
            if let Some(report) = ReceiverReport::new(token, rtt_ms, chunk) {
                let mut out = Vec::new();
                uplink.tagged(Datagram::ReceiverReport(report)).encode(&mut out);
                self.transmits.push_back(Transmit { destination: relay, payload: out.into() });
                self.stats.reports_sent += 1;
            }
        }
    }
}
