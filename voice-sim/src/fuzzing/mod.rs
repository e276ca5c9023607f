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
