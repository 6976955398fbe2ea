//! The worker's internal events. Each side effect that is both logged and counted is a type
//! whose `emit` writes the log line and bumps the metric together (vector's
//! `internal_events`), so a log line and its metric never drift apart. The messages are
//! constants ([`msg`]): tests wait for them by name instead of by copied text.

use crate::metrics::{JobOutcome, Metrics};
use std::time::Duration;
use vadflow_common::Reason;

/// Log messages, as tests and operators search for them.
pub mod msg {
    pub const SERVING: &str = "serving /healthz, /readyz and /metrics";
    pub const CONSUMING: &str = "consuming jobs";
    pub const CANNOT_REACH_BROKER: &str = "cannot reach the broker";
    pub const SESSION_LOST: &str = "lost the broker connection; reconnecting";
    pub const CONSUMER_CANCELLED: &str = "the broker cancelled the consumer; reconnecting";
    pub const JOB_STARTED: &str = "job started";
    pub const JOB_DONE: &str = "job done";
    pub const JOB_RETRYING: &str = "job failed; retrying later";
    pub const JOB_DEAD_LETTERED: &str = "job failed; dead-lettered";
    pub const JOB_ABANDONED: &str =
        "broker session lost; job abandoned unfinished, the broker redelivers it";
    pub const DELIVERIES_DROPPED: &str =
        "buffered deliveries dropped unstarted; the broker redelivers them";
    pub const DRAINING: &str = "draining in-flight jobs";
    pub const STOPPED: &str = "worker stopped";
    pub const DECODER_WARNINGS: &str = "the decoder reported problems in this file";
}

/// The decoding library's warnings about one file, as one line (its own are not printed).
#[derive(Debug)]
pub struct DecoderWarnings<'a> {
    pub uri: &'a str,
    pub warnings: vadflow_common::telemetry::DecoderWarnings,
}

impl DecoderWarnings<'_> {
    pub fn emit(self) {
        if self.warnings.count > 0 {
            tracing::warn!(
                file = self.uri,
                warnings = self.warnings.count,
                first = self.warnings.first.as_deref().unwrap_or_default(),
                "{}",
                msg::DECODER_WARNINGS
            );
        }
    }
}

/// A delivery was taken and its job started (inside the job's span).
#[derive(Debug)]
pub struct JobStarted;

impl JobStarted {
    pub fn emit(self, metrics: &Metrics) {
        metrics.started();
        tracing::debug!("{}", msg::JOB_STARTED);
    }
}

/// A job's results are stored and its result event confirmed.
#[derive(Debug)]
pub struct JobDone<'a> {
    pub span: &'a tracing::Span,
    pub duration_s: f64,
    pub speech_s: f64,
    pub segments: usize,
    pub elapsed: Duration,
}

impl JobDone<'_> {
    pub fn emit(self, metrics: &Metrics) {
        metrics.job(JobOutcome::Done);
        metrics.job_duration(self.elapsed);
        metrics.audio_seconds(self.duration_s);
        tracing::info!(
            parent: self.span,
            duration_s = self.duration_s,
            speech_s = self.speech_s,
            segments = self.segments,
            elapsed_ms = self.elapsed.as_millis() as u64,
            "{}",
            msg::JOB_DONE
        );
    }
}

/// A failed attempt was settled: sent to a retry queue, or dead-lettered.
#[derive(Debug)]
pub struct JobFailed<'a> {
    pub job_id: &'a str,
    pub attempt: u32,
    pub reason: Reason,
    pub error: &'a str,
    pub retrying: bool,
}

impl JobFailed<'_> {
    pub fn emit(self, metrics: &Metrics) {
        let JobFailed {
            job_id,
            attempt,
            reason,
            error,
            ..
        } = self;
        if self.retrying {
            metrics.job(JobOutcome::Retried);
            tracing::warn!(job_id, attempt, reason = %reason, error, "{}", msg::JOB_RETRYING);
        } else {
            metrics.job(JobOutcome::Failed);
            tracing::error!(job_id, attempt, reason = %reason, error, "{}", msg::JOB_DEAD_LETTERED);
        }
    }
}

/// A job in flight was stopped because its broker session was lost.
#[derive(Debug)]
pub struct JobAbandoned {
    pub delivery_tag: u64,
}

impl JobAbandoned {
    pub fn emit(self, metrics: &Metrics) {
        metrics.abandoned();
        tracing::warn!(delivery_tag = self.delivery_tag, "{}", msg::JOB_ABANDONED);
    }
}

/// Deliveries buffered for a lost session were dropped without being started.
#[derive(Debug)]
pub struct DeliveriesDropped {
    pub count: u64,
}

impl DeliveriesDropped {
    pub fn emit(self, metrics: &Metrics) {
        if self.count == 0 {
            return;
        }
        metrics.dropped(self.count);
        tracing::info!(dropped = self.count, "{}", msg::DELIVERIES_DROPPED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_moves_its_metric() {
        let m = Metrics::default();
        JobStarted.emit(&m);
        JobFailed {
            job_id: "j",
            attempt: 1,
            reason: Reason::Timeout,
            error: "slow",
            retrying: true,
        }
        .emit(&m);
        JobFailed {
            job_id: "j",
            attempt: 2,
            reason: Reason::InvalidAudio,
            error: "bad",
            retrying: false,
        }
        .emit(&m);
        JobAbandoned { delivery_tag: 1 }.emit(&m);
        DeliveriesDropped { count: 4 }.emit(&m);
        JobDone {
            span: &tracing::Span::none(),
            duration_s: 2.0,
            speech_s: 1.0,
            segments: 1,
            elapsed: Duration::from_millis(5),
        }
        .emit(&m);
        let text = m.render(false);
        for line in [
            "vadflow_jobs_started_total 1\n",
            "vadflow_jobs_total{outcome=\"retried\"} 1\n",
            "vadflow_jobs_total{outcome=\"failed\"} 1\n",
            "vadflow_jobs_total{outcome=\"done\"} 1\n",
            "vadflow_jobs_abandoned_total 1\n",
            "vadflow_deliveries_dropped_total 4\n",
            "vadflow_audio_seconds_total 2\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
