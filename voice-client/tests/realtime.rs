//! The audio-callback rule: what a callback calls never allocates. Every path of both ring ends — normal, full
//! (overrun), empty (underrun), partial — runs 10,000 times under the allocation counter, after the ring was built.

use voice_client::sample_ring;

#[test]
fn callback_paths_never_allocate() {
    let (mut producer, mut consumer) = sample_ring(4 * 960);
    let device_chunk = [0.25f32; 441];
    let mut device_out = [0f32; 512];
    let info = allocation_counter::measure(|| {
        for i in 0..10_000 {
            // Input callback: push whatever the device delivered (overruns when the reader is slow).
            producer.push(&device_chunk);
            if i % 3 == 0 {
                // Output callback: fill the device buffer, with silence when the ring runs dry.
                consumer.pop_or_silence(&mut device_out);
            } else {
                let n = consumer.pop(&mut device_out[..100]);
                std::hint::black_box(n);
            }
            std::hint::black_box(producer.stats());
        }
        // Drain to force underruns on the output path too.
        for _ in 0..100 {
            consumer.pop_or_silence(&mut device_out);
        }
    });
    assert_eq!(info.count_total, 0, "a callback path allocated: {info:?}");
    let stats = consumer.stats();
    assert!(stats.dropped_samples > 0, "the overrun path ran");
    assert!(stats.silence_samples > 0, "the underrun path ran");
}
