//! Shared code of the example binaries. For now: the protocol demo (`demo` binary), a loopback round trip of the
//! wire protocol — hello/bind, sealed audio, in-place relay rewrite and zero-copy fan-out, replay window — through the
//! real `voice_relay::Relay` core, with real UDP sockets on 127.0.0.1. It is replaced by the full-stack demo when the relay and client crates land.
#![forbid(unsafe_code)]

pub mod protodemo;
