//! The cpal backend without a sound card. Listing devices and opening the default ones never panic (they may
//! fail with a typed error). Then ALSA's `file` PCM over `null` (an `.asoundrc` in a temporary HOME, in a child
//! process so this process's environment is untouched) carries samples bit-exactly through the real cpal
//! streams and the rings: what the capture callback pushed equals the input file, and the output file starts with
//! what was queued for the speaker. Through ALSA's `linear` plugin (integer formats only) the backend opens a
//! 16-bit stream and converts exactly. The file PCM is not paced in real time, so nothing about timing is checked.
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

#[test]
fn alsa_file_pcm_carries_samples_bit_exactly() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return child(Path::new(&dir));
    }
    let dir = std::env::temp_dir().join(format!("voice-client-alsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.raw"), to_bytes(&pattern(200_000))).unwrap();
    let d = dir.display();
    let asoundrc = format!(
        "pcm.!default {{ type asym playback.pcm \"fileout\" capture.pcm \"filein\" }}\n\
         pcm.fileout {{ type file slave.pcm \"null\" file \"{d}/out.raw\" format \"raw\" }}\n\
         pcm.filein {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{d}/in.raw\" format \"raw\" }}\n"
    );
    std::fs::write(dir.join(".asoundrc"), asoundrc).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "alsa_file_pcm_carries_samples_bit_exactly", "--nocapture"])
        .env("HOME", &dir)
        .env(CHILD, &dir)
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "child: {status}");
}

fn child(dir: &Path) {
    let mut audio = CpalAudio::new(None, None).expect("the file PCM opens as the default device");
    eprintln!("{audio:?}");
    let (mic_p, mut mic_c) = sample_ring(96_000);
    let (mut spk_p, spk_c) = sample_ring(96_000);
    let queued = pattern(9_000);
    assert_eq!(spk_p.push(&queued), queued.len());
    let streams = audio.start(mic_p, spk_c).expect("streams start");
    let want = 20_000;
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
    assert_eq!(&got[..want], &pattern(want)[..], "capture is bit-exact");
    let out = from_bytes(&std::fs::read(dir.join("out.raw")).expect("output file"));
    assert!(out.len() >= queued.len(), "played {} samples", out.len());
    assert_eq!(&out[..queued.len()], &queued[..], "playback is bit-exact");
}

const CHILD_I16: &str = "VOICE_CLIENT_CPAL_CHILD_I16";

/// A device without float samples: ALSA's `linear` plugin offers integer formats only (its slave writes S16_LE
/// files). The backend opens it in an integer format and converts in the callbacks: 16-bit samples come through
/// exactly (they are exact in f32).
#[test]
fn integer_only_device_is_opened_and_converted() {
    if let Some(dir) = std::env::var_os(CHILD_I16) {
        return child_i16(Path::new(&dir));
    }
    let dir = std::env::temp_dir().join(format!("voice-client-alsa-i16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input: Vec<u8> = pattern_i16(200_000).iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("in.raw"), input).unwrap();
    let d = dir.display();
    let asoundrc = format!(
        "pcm.!default {{ type asym playback.pcm \"lout\" capture.pcm \"lin\" }}\n\
         pcm.lout {{ type linear slave {{ pcm \"fileout\" format S16_LE }} }}\n\
         pcm.lin {{ type linear slave {{ pcm \"filein\" format S16_LE }} }}\n\
         pcm.fileout {{ type file slave.pcm \"null\" file \"{d}/out.raw\" format \"raw\" }}\n\
         pcm.filein {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{d}/in.raw\" format \"raw\" }}\n"
    );
    std::fs::write(dir.join(".asoundrc"), asoundrc).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "integer_only_device_is_opened_and_converted", "--nocapture"])
        .env("HOME", &dir)
        .env(CHILD_I16, &dir)
        .status()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "child: {status}");
}

fn pattern_i16(n: usize) -> Vec<i16> {
    (0..n).map(|i| ((i % 1000) as i16 - 500) * 60).collect()
}

fn child_i16(dir: &Path) {
    let mut audio = CpalAudio::new(None, None).expect("the integer-only PCM opens as the default device");
    eprintln!("{audio:?}");
    let (mic_p, mut mic_c) = sample_ring(96_000);
    let (mut spk_p, spk_c) = sample_ring(96_000);
    let queued: Vec<f32> = pattern_i16(9_000).iter().map(|&v| f32::from(v) / 32_768.0).collect();
    assert_eq!(spk_p.push(&queued), queued.len());
    let streams = audio.start(mic_p, spk_c).expect("streams start");
    let want = 20_000;
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
    let expected: Vec<f32> = pattern_i16(want).iter().map(|&v| f32::from(v) / 32_768.0).collect();
    assert_eq!(&got[..want], &expected[..], "capture converted exactly");
    let raw = std::fs::read(dir.join("out.raw")).expect("output file");
    let out: Vec<i16> = raw.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
    assert!(out.len() >= queued.len(), "played {} samples", out.len());
    assert_eq!(&out[..queued.len()], &pattern_i16(9_000)[..], "playback converted exactly");
}
