//! Bodies of the fuzz targets in `fuzz/` (one function per target, taking the fuzzer's bytes), shared with the
//! corpus-replay tests of this crate. Each panics only when an invariant of the code under test is broken;
//! arbitrary input alone never makes one panic.

mod jitter;
mod session;

pub use jitter::jitter;
pub use session::session;
