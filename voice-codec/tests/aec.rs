//! Echo cancellation (feature `aec`): a delayed, attenuated copy of the far-end signal in the microphone is removed.
#![cfg(feature = "aec")]

use voice_codec::{CaptureConfig, CaptureFrame, CapturePipeline, PlaybackConfig, PlaybackPipeline};
use voice_jitter::{Action, Playout, Stretch};
use voice_sim::audio::speech_like;

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|s| s * s).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

fn run(echo_cancellation: bool, far: &[f32], mic: &[f32]) -> Vec<f32> {
    let mut cap = CapturePipeline::new(CaptureConfig { echo_cancellation, ..CaptureConfig::default() }).unwrap();
    let mut pb = PlaybackPipeline::new(PlaybackConfig::default()).unwrap();
    let mut out = Vec::new();
    for (f, m) in far.chunks(480).zip(mic.chunks(480)) {
        cap.push_echo_reference(f, 1);
        cap.push(m).unwrap();
        while let Some(frame) = cap.poll_frame().unwrap() {
            let CaptureFrame::Packet { payload, .. } = frame else { panic!("no gate configured") };
            let action = Action::Play { seq: voice_proto::Seq(0), timestamp: voice_proto::Timestamp(0), payload };
            let r = pb.play(&Playout { action, stretch: Stretch::None }).unwrap();
            let mut buf = vec![0.0; r.samples];
            pb.read(&mut buf);
            out.extend_from_slice(&buf);
        }
    }
    out
}

#[test]
fn echo_of_the_far_end_is_attenuated() {
    let seconds = 6;
    let far = speech_like(48_000 * seconds, 21);
    // Echo path: 30 ms delay, −6 dB.
    let delay = 1_440;
    let mic: Vec<f32> = (0..far.len()).map(|i| if i >= delay { 0.5 * far[i - delay] } else { 0.0 }).collect();
    let plain = run(false, &far, &mic);
    let cancelled = run(true, &far, &mic);
    let tail = 48_000 * (seconds - 3);
    let before = rms(&plain[tail..]);
    let after = rms(&cancelled[tail..]);
    let erle_db = 20.0 * (before / after.max(1e-9)).log10();
    println!("echo rms {before:.4} → {after:.4}: ERLE {erle_db:.1} dB over the last 3 s");
    assert!(erle_db > 10.0, "ERLE {erle_db} dB");
}

/// The no-allocation guarantee does NOT hold for this stage: aec3 0.4 allocates inside `process_capture` (measured:
/// 52 allocations, ~36 KB, per 10 ms block, all freed again). This test pins that figure so a change shows up, and
/// checks nothing leaks.
#[test]
fn steady_state_echo_cancellation_allocates_inside_aec3_only_transiently() {
    let far = speech_like(48_000 * 2, 3);
    let mut cap = CapturePipeline::new(CaptureConfig { echo_cancellation: true, ..CaptureConfig::default() }).unwrap();
    let step = |i: usize, cap: &mut CapturePipeline| {
        let f = &far[(i * 480) % (far.len() - 480)..][..480];
        cap.push_echo_reference(f, 1);
        cap.push(f).unwrap();
        while cap.poll_frame().unwrap().is_some() {}
    };
    for i in 0..100 {
        step(i, &mut cap);
    }
    let info = allocation_counter::measure(|| {
        for i in 100..300 {
            step(i, &mut cap);
        }
    });
    println!("aec steady state: {info:?}");
    assert_eq!(info.count_current, 0, "leak: {info:?}");
    assert!(info.count_total <= 60 * 200, "more allocations than measured with aec3 0.4: {info:?}");
}
