//! Bodies of the fuzz targets in `fuzz/` (one function per target, taking the fuzzer's bytes), shared with the
//! corpus-replay tests of this crate. Each panics only when an invariant of the code under test is broken;
//! arbitrary input alone never makes one panic.

mod codec;
mod jitter;
mod mixer;
// One copy of the wire-format oracles: voice-proto's own tests run the same file.
#[path = "../../../voice-proto/tests/support/roundtrip.rs"]
mod proto;
mod relay;
mod session;

pub use codec::codec_decode;
pub use jitter::jitter;
pub use mixer::mixer;
pub use proto::{audio_open, control_stream, datagram};
pub use relay::{relay_inputs, relay_inputs_counters};
pub use session::session;

/// Runs `body` on every file of the checked-in corpus of fuzz target `target` (`fuzz/corpus/<target>/` in the
/// repository); returns how many there were. Panics, naming the file, if one cannot be read.
pub fn replay_corpus(target: &str, body: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        body(&data);
        n += 1;
    }
    n
}

/// Runs `body` on `inputs` pseudo-random inputs of up to `max_len` bytes drawn from `seed`; a failure names the seed
/// and the input to replay.
pub fn sweep(seed: u64, inputs: usize, max_len: usize, body: fn(&[u8])) {
    let mut rng = crate::Rng::new(seed);
    for i in 0..inputs {
        let len = (rng.next_u64() % (max_len as u64 + 1)) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("seed {seed:#x}, input #{i}: {data:?}");
        }
    }
}
