//! voice-mixer bench: one 20 ms frame of a room of 10 members with 3 talkers, all 10 in mixed mode — what the mixer
//! does (3 talkers' packets through jitter buffers and decoders, 3 mix-minus encodes and 1 shared encode, member
//! lists) against the libopus calls it cannot avoid (3 decodes and 4 encodes at complexity 5, raw audiopus). Because
//! criterion runs the two minutes apart on a shared machine, a paired measurement (alternating blocks, median ratio)
//! is printed as JSON too, with rooms per core.
//!
//! Target (server-mixing issue): mixer CPU per room ≤ 1.10 × the libopus decode + encode calls, same run.
#![allow(clippy::disallowed_methods, reason = "a benchmark program: it measures on the wall clock")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use voice_codec::OpusSettings;
use voice_mixer::{Mixer, MixerConfig};
use voice_proto::{PublicId, Seq, Timestamp};
use voice_sim::audio::{encode_all, speech_like};

const FRAME: usize = 960;
const FRAMES: usize = 250;
const MEMBERS: u32 = 10;
const TALKERS: usize = 3;

/// Each talker's packets: 5 s of speech-like audio (different per talker), 20 ms frames, FEC.
fn talker_packets() -> Vec<Vec<Bytes>> {
    (0..TALKERS)
        .map(|k| {
            let signal = speech_like(FRAME * FRAMES, 11 + k as u64);
            let packets = encode_all(&signal, OpusSettings::default()).expect("encodes");
            // Silent frames that DTX would drop are still sent here: every frame carries a talker.
            packets.into_iter().map(|p| Bytes::from(p.unwrap_or_else(|| vec![0xf8, 0xff, 0xfe]))).collect()
        })
        .collect()
}

/// The raw libopus work of one frame: a decode per talker, an encode per talking listener (its mix-minus) and one
/// shared (the mix of all), on the same signals the mixer encodes.
struct Ideal {
    decoders: Vec<Decoder>,
    encoders: Vec<Encoder>,
    pcm: Vec<f32>,
    mix: Vec<f32>,
    out: Vec<u8>,
}

impl Ideal {
    fn new() -> Self {
        let s = OpusSettings::default();
        let encoder = || {
            let mut e = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
            e.set_bitrate(Bitrate::BitsPerSecond(s.bitrate_bps as i32)).unwrap();
            e.set_complexity(s.complexity).unwrap();
            e.set_vbr(s.vbr).unwrap();
            e.set_inband_fec(s.inband_fec).unwrap();
            e.set_packet_loss_perc(s.expected_loss_pct).unwrap();
            e
        };
        Self {
            decoders: (0..TALKERS).map(|_| Decoder::new(SampleRate::Hz48000, Channels::Mono).unwrap()).collect(),
            encoders: (0..=TALKERS).map(|_| encoder()).collect(),
            pcm: vec![0.0; FRAME * TALKERS],
            mix: vec![0.0; FRAME],
            out: vec![0; 4000],
        }
    }

    fn frame(&mut self, packets: &[Vec<Bytes>], i: usize) -> usize {
        for (k, d) in self.decoders.iter_mut().enumerate() {
            let p = &packets[k][i % FRAMES];
            let packet = Packet::try_from(&p[..]).unwrap();
            let out = MutSignals::try_from(&mut self.pcm[k * FRAME..(k + 1) * FRAME]).unwrap();
            d.decode_float(Some(packet), out, false).unwrap();
        }
        // The same signals the mixer encodes: each talker's mix-minus, and the mix of all three.
        let mut bytes = 0;
        for (k, e) in self.encoders.iter_mut().enumerate() {
            for (j, m) in self.mix.iter_mut().enumerate() {
                let all: f32 = (0..TALKERS).map(|t| self.pcm[t * FRAME + j]).sum();
                let own = if k < TALKERS { self.pcm[k * FRAME + j] } else { 0.0 };
                *m = (all - own).clamp(-1.0, 1.0);
            }
            bytes += e.encode_float(&self.mix, &mut self.out).unwrap();
        }
        bytes
    }
}

/// A mixer with all members listening and the talkers' streams started.
struct Room {
    mixer: Mixer,
    now: Instant,
    i: usize,
}

impl Room {
    fn new() -> Self {
        let now = Instant::now();
        let mut mixer = Mixer::new(MixerConfig::default(), now).unwrap();
        for id in 1..=MEMBERS {
            mixer.add_listener(PublicId(id)).unwrap();
        }
        Self { mixer, now, i: 0 }
    }

    fn frame(&mut self, packets: &[Vec<Bytes>]) -> usize {
        let i = self.i;
        self.i += 1;
        self.now += Duration::from_millis(20);
        for (k, talker) in packets.iter().enumerate() {
            let (seq, ts) = (Seq(i as u64), Timestamp((i * FRAME) as u32));
            let p = talker[i % FRAMES].clone();
            self.mixer.handle_audio(self.now, PublicId(k as u32 + 1), seq, ts, false, p).unwrap();
        }
        self.mixer.handle_timeout(self.now).unwrap();
        let mut bytes = 0;
        while let Some(out) = self.mixer.poll_output() {
            bytes += out.payload.len();
        }
        bytes
    }
}

fn mix(c: &mut Criterion) {
    let packets = talker_packets();
    let mut g = c.benchmark_group("mix_room_10_members_3_talkers");
    g.bench_function("ideal_libopus_3_decodes_4_encodes", |b| {
        let mut ideal = Ideal::new();
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(ideal.frame(&packets, i))
        });
    });
    g.bench_function("mixer", |b| {
        let mut room = Room::new();
        for _ in 0..50 {
            room.frame(&packets);
        }
        b.iter(|| black_box(room.frame(&packets)));
    });
    g.finish();
    paired(&packets);
}

/// Alternating blocks of 100 frames of each on the same input; the median of the per-round ratios.
fn paired(packets: &[Vec<Bytes>]) {
    const ROUNDS: usize = 21;
    let (mut ideal, mut room) = (Ideal::new(), Room::new());
    for i in 0..50 {
        room.frame(packets);
        ideal.frame(packets, i);
    }
    let (mut ratios, mut mixer_us) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..100 {
            black_box(ideal.frame(packets, r * 100 + i));
        }
        let ideal_t = t.elapsed();
        let t = Instant::now();
        for _ in 0..100 {
            black_box(room.frame(packets));
        }
        let mixer_t = t.elapsed();
        ratios.push(mixer_t.as_secs_f64() / ideal_t.as_secs_f64());
        mixer_us.push(mixer_t.as_secs_f64() * 1e6 / 100.0);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ratio, frame_us) = (median(ratios), median(mixer_us));
    println!(
        "{{\"bench\":\"mixer_paired\",\"room\":\"{MEMBERS} members, {TALKERS} talkers, all mixed\",\"rounds\":{ROUNDS},\
         \"mixer_vs_libopus_calls\":{ratio:.3},\"mixer_us_per_20ms_frame\":{frame_us:.1},\
         \"rooms_per_core\":{:.1},\"target\":\"<= 1.10\"}}",
        20_000.0 / frame_us
    );
}

criterion_group!(benches, mix);
criterion_main!(benches);
