//! The collector's internal events: what is both logged and counted is emitted by one call that
//! writes the line and bumps the counter together. The messages are constants ([`msg`]) that
//! tests wait for by name.

use super::CollectorStats;
use std::sync::atomic::Ordering;
use std::time::Duration;
use vadflow_common::Reason;
use vadflow_common::wire::Outcome;

/// Log messages, as tests and operators search for them.
pub mod msg {
    pub const SERVING: &str = "serving /healthz, /readyz and /metrics";
    pub const CONSUMING: &str = "collector consuming";
    pub const CANNOT_REACH_BROKER: &str = "collector cannot reach the broker";
    pub const SESSION_LOST: &str = "collector lost its session; reconnecting";
    pub const STOPPED: &str = "collector stopped";
    pub const RECORDED: &str = "result recorded";
    pub const MALFORMED: &str = "malformed result event; dead-lettering it";
    pub const UNSTORABLE: &str = "result event cannot be stored; dead-lettering it";
}

/// An event added a record (not a redelivery, nor the feed's copy of a reported failure).
#[derive(Debug)]
pub struct Recorded<'a> {
    pub span: &'a tracing::Span,
    pub job_id: &'a str,
    pub outcome: Outcome,
    /// A failure's reason.
    pub reason: Option<Reason>,
    /// From the worker finishing the job to the commit of its result.
    pub lag: Duration,
}

impl Recorded<'_> {
    pub fn emit(self, stats: &CollectorStats) {
        stats.record(self.outcome, self.reason, self.lag);
        tracing::debug!(parent: self.span, job_id = self.job_id, outcome = self.outcome.as_str(), "{}", msg::RECORDED);
    }
}

/// A result event that can never be stored was dead-lettered.
#[derive(Debug)]
pub struct EventDeadLettered<'a> {
    pub span: &'a tracing::Span,
    /// The job, when the event could be read.
    pub job_id: Option<&'a str>,
    pub error: &'a str,
}

impl EventDeadLettered<'_> {
    pub fn emit(self, stats: &CollectorStats) {
        stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        match self.job_id {
            Some(job_id) => {
                tracing::error!(parent: self.span, job_id, error = self.error, "{}", msg::UNSTORABLE)
            }
            None => tracing::error!(parent: self.span, error = self.error, "{}", msg::MALFORMED),
        }
    }
}
