//! The relay's simulations (`sim_data.rs`, `sim_control.rs`, `model.rs`) again, with the relay split into 2
//! shards as the driver runs it with 2 UDP threads: the clients' addresses spread over the shards, so forwarding
//! crosses shards, bindings and roams are decided by the control plane and replicated, and speaking and loss
//! reports travel as shard events. Every assertion of those files holds unchanged.
#![allow(
    clippy::duplicate_mod,
    reason = "each included file brings its own copy of the harness module, as when it is a test crate of its own"
)]

/// Shards of the simulated relay (read by `harness::Sim::with_config`).
pub(crate) const SHARDS: usize = 2;

#[path = "sim_data.rs"]
mod sim_data;

#[path = "sim_control.rs"]
mod sim_control;

#[path = "model.rs"]
mod model;
