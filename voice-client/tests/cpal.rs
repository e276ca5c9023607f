//! The cpal backend without a sound card. Listing devices and opening the default ones never panic (they may
//! fail with a typed error). Then ALSA's `file` PCM over `null` (an `.asoundrc` in a temporary HOME, in a child
//! process so this process's environment is untouched) carries samples bit-exactly through the real cpal
//! streams and the rings: what the capture callback pushed equals the input file, and the output file starts with
//! what was queued for the speaker. Through ALSA's `linear` plugin (integer formats only) the backend opens a
//! 16-bit stream and converts exactly. The file PCM is not paced in real time, so nothing about timing is checked.
#![allow(clippy::disallowed_methods, reason = "real sound devices run in real time")]
#![cfg(feature = "cpal")]

use std::path::Path;
use std::time::{Duration, Instant};

use voice_client::{AudioBackend, CpalAudio, sample_ring};

#[test]
fn devices_are_listed_or_refused_without_panicking() {
    let (inputs, outputs) = voice_client::device_names().expect("listing devices");
    eprintln!("inputs {inputs:?}, outputs {outputs:?}");
    match CpalAudio::new(Some("no such device"), None) {
        Ok(audio) => eprintln!("opened default devices: {audio:?}"),
        Err(e) => eprintln!("no devices: {e}"),
    }
}

const CHILD: &str = "VOICE_CLIENT_CPAL_CHILD";

fn pattern(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i % 1000) as f32 / 2000.0 - 0.25).collect()
}

fn to_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The file PCMs: playback written raw to `{d}/out.raw`, capture read raw from `{d}/in.raw`.
const FILE_PCMS: &str = "pcm.fileout { type file slave.pcm \"null\" file \"{d}/out.raw\" format \"raw\" }\n\
     pcm.filein { type file slave.pcm \"null\" file \"/dev/null\" infile \"{d}/in.raw\" format \"raw\" }\n";

/// Runs test `name` again in a child process whose HOME is a fresh directory holding `.asoundrc` (`pcms` with
/// `{d}` replaced by that directory, the default device being `playback` / `capture`) and `in.raw` (`input`), so
/// this process's environment is untouched; the child finds the directory in [`CHILD`].
fn run_in_child(name: &str, input: &[u8], playback: &str, capture: &str, pcms: &str) {
    let dir = std::env::temp_dir().join(format!("voice-client-alsa-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.raw"), input).unwrap();
    let default = format!("pcm.!default {{ type asym playback.pcm \"{playback}\" capture.pcm \"{capture}\" }}\n");
    let asoundrc = (default + pcms + FILE_PCMS).replace("{d}", &dir.display().to_string());
    std::fs::write(dir.join(".asoundrc"), asoundrc).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env("HOME", &dir)
        .env(CHILD, &dir)
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "child: {status}");
}

/// In the child: opens the default devices, queues `queued` for the speaker and captures (bounded) `want`
/// samples; returns them after stopping the streams.
fn play_and_capture(queued: &[f32], want: usize) -> Vec<f32> {
    let mut audio = CpalAudio::new(None, None).expect("the test PCM opens as the default device");
    eprintln!("{audio:?}");
    let (mic_p, mut mic_c) = sample_ring(96_000);
    let (mut spk_p, spk_c) = sample_ring(96_000);
    assert_eq!(spk_p.push(queued), queued.len());
    let streams = audio.start(mic_p, spk_c).expect("streams start");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0.0f32; 4096];
    while got.len() < want && Instant::now() < deadline {
        let n = mic_c.pop(&mut buf);
        got.extend_from_slice(&buf[..n]);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    streams.stop().expect("streams stop");
    assert!(got.len() >= want, "captured {} samples", got.len());
    got
}

#[test]
fn alsa_file_pcm_carries_samples_bit_exactly() {
    let Some(dir) = std::env::var_os(CHILD) else {
        let input = to_bytes(&pattern(200_000));
        return run_in_child("alsa_file_pcm_carries_samples_bit_exactly", &input, "fileout", "filein", "");
    };
    let queued = pattern(9_000);
    let got = play_and_capture(&queued, 20_000);
    assert_eq!(&got[..20_000], &pattern(20_000)[..], "capture is bit-exact");
    let out = from_bytes(&std::fs::read(Path::new(&dir).join("out.raw")).expect("output file"));
    assert!(out.len() >= queued.len(), "played {} samples", out.len());
    assert_eq!(&out[..queued.len()], &queued[..], "playback is bit-exact");
}

/// A device without float samples: ALSA's `linear` plugin offers integer formats only (its slave writes S16_LE
/// files). The backend opens it in an integer format and converts in the callbacks: 16-bit samples come through
/// exactly (they are exact in f32).
#[test]
fn integer_only_device_is_opened_and_converted() {
    let Some(dir) = std::env::var_os(CHILD) else {
        let input: Vec<u8> = pattern_i16(200_000).iter().flat_map(|v| v.to_le_bytes()).collect();
        let pcms = "pcm.lout { type linear slave { pcm \"fileout\" format S16_LE } }\n\
                    pcm.lin { type linear slave { pcm \"filein\" format S16_LE } }\n";
        return run_in_child("integer_only_device_is_opened_and_converted", &input, "lout", "lin", pcms);
    };
    let as_f32 = |v: &[i16]| v.iter().map(|&s| f32::from(s) / 32_768.0).collect::<Vec<f32>>();
    let queued = as_f32(&pattern_i16(9_000));
    let got = play_and_capture(&queued, 20_000);
    assert_eq!(&got[..20_000], &as_f32(&pattern_i16(20_000))[..], "capture converted exactly");
    let raw = std::fs::read(Path::new(&dir).join("out.raw")).expect("output file");
    let out: Vec<i16> = raw.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    assert!(out.len() >= queued.len(), "played {} samples", out.len());
    assert_eq!(&out[..queued.len()], &pattern_i16(9_000)[..], "playback converted exactly");
}

fn pattern_i16(n: usize) -> Vec<i16> {
    (0..n).map(|i| ((i % 1000) as i16 - 500) * 60).collect()
}
