//! The cpal backend against a real-time audio server without a sound card: a private user-mode PulseAudio
//! (started by this test in a temporary directory, with a null sink as the default output and the sink's monitor
//! as the default input), reached through ALSA's pulse plugin (`pcm.!default { type pulse }` in a temporary HOME,
//! in a child process so this process's environment is untouched). A 1 kHz tone queued for the speaker is played
//! into the null sink (48 kHz mono) and captured back through the monitor source by the real cpal streams and the
//! rings, paced in real time by the server. cpal picks the plugin's default format (44.1 kHz stereo with
//! PulseAudio 16); the client's pipelines resample whatever the device uses.
//!
//! Skips (with a printed reason) when `pulseaudio` or the ALSA pulse plugin is not installed. CI (Debian):
//! `apt-get install pulseaudio pulseaudio-utils libasound2-plugins libasound2-dev`, then
//! `cargo test -p voice-client --features cpal --test cpal_pulse -- --nocapture`.
#![allow(clippy::disallowed_methods, reason = "real sound devices run in real time")]
#![cfg(feature = "cpal")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use voice_client::{AudioBackend, CpalAudio, sample_ring};

const CHILD: &str = "VOICE_CLIENT_PULSE_CHILD";
const TEST: &str = "pulseaudio_null_sink_loops_speaker_to_microphone";

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if Command::new("pulseaudio").arg("--version").stdout(Stdio::null()).status().is_err() {
        return Some("`pulseaudio` is not installed (apt-get install pulseaudio pulseaudio-utils)".into());
    }
    let plugin = ["/usr/lib", "/usr/lib64", "/usr/local/lib"].iter().any(|root| {
        std::fs::read_dir(root).is_ok_and(|dirs| {
            dirs.filter_map(Result::ok).any(|d| d.path().join("alsa-lib/libasound_module_pcm_pulse.so").exists())
        }) || Path::new(root).join("alsa-lib/libasound_module_pcm_pulse.so").exists()
    });
    (!plugin).then(|| "the ALSA pulse plugin is not installed (apt-get install libasound2-plugins)".into())
}

/// A private PulseAudio daemon, killed on drop.
struct Daemon {
    child: std::process::Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Self {
        let socket = dir.join("pulse.sock");
        let script = format!(
            "load-module module-null-sink sink_name=vc_null rate=48000 channels=1\n\
             load-module module-native-protocol-unix socket={} auth-anonymous=1\n\
             set-default-sink vc_null\nset-default-source vc_null.monitor\n",
            socket.display()
        );
        std::fs::write(dir.join("test.pa"), script).unwrap();
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let log = std::fs::File::create(dir.join("pulseaudio.log")).unwrap();
        let child = Command::new("pulseaudio")
            .args(["-n", "--daemonize=no", "--exit-idle-time=20", "--use-pid-file=no", "--log-target=stderr", "-F"])
            .arg(dir.join("test.pa"))
            .env("HOME", dir)
            .env("XDG_RUNTIME_DIR", dir.join("run"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("pulseaudio starts");
        let daemon = Self { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !daemon.socket.exists() {
            let log = std::fs::read_to_string(dir.join("pulseaudio.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "pulseaudio did not open its socket within 10 s:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pulseaudio_null_sink_loops_speaker_to_microphone() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return child(Path::new(&dir));
    }
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("voice-client-pulse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".asoundrc"), "pcm.!default { type pulse }\nctl.!default { type pulse }\n").unwrap();
    let daemon = Daemon::start(&dir);
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture"])
        .env("HOME", &dir)
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env("PULSE_SERVER", format!("unix:{}", daemon.socket.display()))
        .env(CHILD, &dir)
        .status()
        .unwrap();
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "child: {status}");
}

fn child(_dir: &Path) {
    let mut audio = CpalAudio::new(None, None).expect("the pulse PCM opens as the default device");
    let (input, output) = (audio.input_format(), audio.output_format());
    eprintln!("{audio:?}");
    // Half a second of silence, then one second of a 1 kHz tone, for the speaker.
    let (rate, ch) = (output.rate_hz as usize, usize::from(output.channels));
    let mut signal = vec![0.0f32; rate / 2 * ch];
    for i in 0..rate {
        let v = 0.5 * (std::f32::consts::TAU * 1_000.0 * i as f32 / rate as f32).sin();
        signal.extend(std::iter::repeat_n(v, ch));
    }
    let in_ch = usize::from(input.channels);
    let want = input.rate_hz as usize * 3 * in_ch;
    let (mic_p, mut mic_c) = sample_ring(want);
    let (mut spk_p, spk_c) = sample_ring(signal.len() + rate * ch);
    assert_eq!(spk_p.push(&signal), signal.len());
    let streams = audio.start(mic_p, spk_c).expect("streams start");
    let mut got = Vec::with_capacity(want);
    let mut buf = vec![0.0f32; 4096];
    let deadline = Instant::now() + Duration::from_secs(15);
    // Pacing is measured from the first captured samples (opening the streams takes a while).
    let mut first: Option<(Instant, usize)> = None;
    while got.len() < want && Instant::now() < deadline {
        let n = mic_c.pop(&mut buf);
        if n > 0 && first.is_none() {
            first = Some((Instant::now(), n));
        }
        got.extend_from_slice(&buf[..n.min(want - got.len())]);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let (t0, n0) = first.unwrap_or((Instant::now(), 0));
    let paced = (got.len() - n0) as f64 / in_ch as f64 / t0.elapsed().as_secs_f64();
    streams.stop().expect("streams stop");
    // First channel of the capture.
    let mono: Vec<f32> = got.chunks_exact(in_ch).map(|f| f[0]).collect();
    let onset = mono.iter().position(|x| x.abs() > 0.2);
    let peak = mono.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    // Not asserted (wall clock): printed to show the streams run in real time.
    eprintln!(
        "captured {} frames, paced at ≈ {paced:.0} frames/s of wall clock (device {} Hz); tone peak {peak:.3}, \
         onset at captured frame {onset:?}",
        mono.len(),
        input.rate_hz,
    );
    assert!(mono.len() * in_ch >= want, "captured {} samples within 15 s", mono.len());
    assert!(peak > 0.3, "the tone came back through the monitor source: peak {peak}");
    let onset = onset.expect("tone onset");
    // The tone is a tone: about 2 zero crossings per millisecond in the captured block.
    let block = &mono[onset + 480..onset + 480 + input.rate_hz as usize / 10];
    let crossings = block.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    assert!((180..=220).contains(&crossings), "1 kHz tone: {crossings} zero crossings in 100 ms");
}
