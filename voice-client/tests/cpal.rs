//! The cpal backend without a sound card: listing devices and opening the default ones never panic (they may
//! fail with a typed error). CI that installs ALSA and a null/pulse device can go further.
#![cfg(feature = "cpal")]

#[test]
fn devices_are_listed_or_refused_without_panicking() {
    let (inputs, outputs) = voice_client::device_names().expect("listing devices");
    eprintln!("inputs {inputs:?}, outputs {outputs:?}");
    match voice_client::CpalAudio::new(Some("no such device"), None) {
        Ok(audio) => eprintln!("opened default devices: {audio:?}"),
        Err(e) => eprintln!("no devices: {e}"),
    }
}
