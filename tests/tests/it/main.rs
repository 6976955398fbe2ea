//! vadflow's integration tests, one binary (one link) with a module per concern, against the
//! real RabbitMQ, PostgreSQL and S3 server of the local stack (`deploy/local/up.sh`). Each test
//! has its own queue prefix, schema and key prefix (`vadflow_tests::TestCtx`), so they run in
//! parallel.

mod bad_input;
mod catalog;
mod channels;
mod chunks;
mod collect;
mod containers;
mod credentials;
mod dlq;
mod enqueue;
mod failures;
mod faults;
mod ffmpeg;
mod formats;
mod fuzz_regressions;
mod keys;
mod levels;
mod local_mode;
mod lossless;
mod metrics;
mod outcomes;
mod parity;
mod pipeline;
mod register;
mod report;
mod resegment;
mod resilience;
mod secrets;
mod shards;
mod shutdown;
mod silero;
mod traces;
mod tune;
