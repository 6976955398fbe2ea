//! Shared definitions for vadflow's producer and worker: the wire format, the AMQP topology,
//! failure classes, connection helpers, configuration pieces and telemetry.
//!
//! Everything that both binaries must agree on is defined here exactly once.

pub mod amqp;
pub mod config;
pub mod deadletter;
pub mod failure;
pub mod http;
pub mod keys;
pub mod prometheus;
pub mod redact;
pub mod retry;
pub mod s3;
pub mod session;
pub mod shutdown;
pub mod telemetry;
pub mod topology;
pub mod trace;
pub mod wire;

pub use failure::{Failure, Reason, Retry};
pub use topology::Topology;
pub use wire::{Job, ResultEvent};
