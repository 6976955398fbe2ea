//! The collector's counters, gauges and readiness, served on `--http-addr` as `/metrics` and
//! `/readyz`. The dashboard and the alerts in the chart (`helm/vadflow/files/`) are built on
//! these and on the worker's; a test checks that every name they use is served.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use vadflow_common::Reason;
use vadflow_common::prometheus::{Exposition, Histogram};
use vadflow_common::wire::Outcome;

/// The depth and consumers of one queue, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGauge {
    /// The queue's role, without the deployment's prefix: `jobs`, `retry.0`, `dead-letters`, …
    pub role: String,
    pub messages: u64,
    pub consumers: u64,
}

#[derive(Debug, Default)]
pub struct CollectorStats {
    pub(super) ready: AtomicBool,
    recorded: [AtomicU64; 3],
    dead_letters: [AtomicU64; Reason::ALL.len()],
    pub(super) dead_lettered: AtomicU64,
    segments_unavailable: AtomicU64,
    lag: Histogram,
    queues: Mutex<Vec<QueueGauge>>,
    queues_read_at_ms: AtomicU64,
}

impl CollectorStats {
    /// A result event added a record; `reason` is a failure's reason.
    pub(super) fn record(&self, outcome: Outcome, reason: Option<Reason>, lag: Duration) {
        let i = match outcome {
            Outcome::Done => 0,
            Outcome::Failed => 1,
            Outcome::Retrying => 2,
        };
        self.recorded[i].fetch_add(1, Ordering::Relaxed);
        if outcome == Outcome::Failed {
            let reason = reason.unwrap_or(Reason::Internal);
            if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
                self.dead_letters[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.lag.observe(lag);
    }

    /// A done file's segments could not be read from its `segments.json`.
    pub(super) fn segments_unavailable(&self) {
        self.segments_unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// The queues as just read.
    pub(super) fn set_queues(&self, queues: Vec<QueueGauge>) {
        if let Ok(mut q) = self.queues.lock() {
            *q = queues;
        }
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        self.queues_read_at_ms.store(now, Ordering::Relaxed);
    }
}

impl vadflow_common::http::Probe for CollectorStats {
    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    fn metrics(&self) -> String {
        let r = |i: usize| self.recorded[i].load(Ordering::Relaxed);
        let mut e = Exposition::new();
        e.counter_by(
            "vadflow_results_recorded_total",
            "Result events recorded in the database, by outcome.",
            "outcome",
            &[
                (Outcome::Done.as_str(), r(0)),
                (Outcome::Failed.as_str(), r(1)),
                (Outcome::Retrying.as_str(), r(2)),
            ],
        );
        let reasons: Vec<(&str, u64)> = Reason::ALL
            .iter()
            .zip(&self.dead_letters)
            .map(|(r, c)| (r.as_str(), c.load(Ordering::Relaxed)))
            .collect();
        e.counter_by(
            "vadflow_dead_letters_total",
            "Files recorded as failed (their job dead-lettered), by reason.",
            "reason",
            &reasons,
        );
        e.counter(
            "vadflow_results_dead_lettered_total",
            "Result events that could not be stored.",
            self.dead_lettered.load(Ordering::Relaxed),
        );
        e.counter(
            "vadflow_segments_unavailable_total",
            "Done files whose segments (--store-segments) could not be read from segments.json.",
            self.segments_unavailable.load(Ordering::Relaxed),
        );
        e.histograms(
            "vadflow_result_lag_seconds",
            "Time from a worker finishing a job to the collector committing its result.",
            &[("", &self.lag)],
        );
        let queues = self.queues.lock().map(|q| q.clone()).unwrap_or_default();
        let by = |f: fn(&QueueGauge) -> u64| -> Vec<(&str, u64)> {
            queues.iter().map(|q| (q.role.as_str(), f(q))).collect()
        };
        e.gauge_by(
            "vadflow_queue_messages",
            "Messages in each of vadflow's queues (ready and unacked), as last read.",
            "queue",
            &by(|q| q.messages),
        );
        e.gauge_by(
            "vadflow_queue_consumers",
            "Consumers of each of vadflow's queues, as last read.",
            "queue",
            &by(|q| q.consumers),
        );
        e.gauge(
            "vadflow_queue_read_timestamp_seconds",
            "When the queues were last read (Unix time; 0: not yet).",
            self.queues_read_at_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        );
        e.gauge_by(
            "vadflow_ready",
            "Whether the process is connected and consuming, by component.",
            "component",
            &[("collector", u64::from(self.ready()))],
        );
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vadflow_common::http::Probe;

    #[test]
    fn failures_count_by_reason_and_queues_by_role() {
        let s = CollectorStats::default();
        s.record(Outcome::Done, None, Duration::from_millis(20));
        s.record(
            Outcome::Failed,
            Some(Reason::InvalidAudio),
            Duration::from_millis(40),
        );
        s.record(
            Outcome::Retrying,
            Some(Reason::Timeout),
            Duration::from_millis(40),
        );
        s.set_queues(vec![QueueGauge {
            role: "jobs".into(),
            messages: 12,
            consumers: 3,
        }]);
        let text = s.metrics();
        assert!(text.contains("vadflow_dead_letters_total{reason=\"invalid-audio\"} 1\n"));
        assert!(text.contains("vadflow_dead_letters_total{reason=\"timeout\"} 0\n"));
        assert!(text.contains("vadflow_queue_messages{queue=\"jobs\"} 12\n"));
        assert!(text.contains("vadflow_queue_consumers{queue=\"jobs\"} 3\n"));
        assert!(text.contains("vadflow_result_lag_seconds_count 3\n"));
        assert!(text.contains("vadflow_ready{component=\"collector\"} 0\n"));
    }
}
