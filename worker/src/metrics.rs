//! The worker's Prometheus metrics. Every label comes from a fixed set (outcomes and stages are
//! enums), so the series count never depends on the input.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use vadflow_common::prometheus::{Exposition, Histogram};

/// How a job attempt ended, as counted by `vadflow_jobs_total{outcome}`: each settled attempt
/// is counted once, so the outcomes add up to the attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    /// The job is over without results and was dead-lettered (a permanent failure, or retries
    /// exhausted).
    Failed,
    /// A transient failure sent to a retry queue.
    Retried,
}

const OUTCOMES: [(JobOutcome, &str); 3] = [
    (JobOutcome::Done, "done"),
    (JobOutcome::Failed, "failed"),
    (JobOutcome::Retried, "retried"),
];

/// Timed parts of a job, as in `vadflow_stage_duration_seconds{stage}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The object request, until the response headers.
    Fetch,
    /// The streamed decode → resample → vad → segment → render → upload.
    Process,
    /// The confirmed publish of the result event.
    Publish,
}

const STAGES: [(Stage, &str); 3] = [
    (Stage::Fetch, "fetch"),
    (Stage::Process, "process"),
    (Stage::Publish, "publish"),
];

/// Counters and histograms of one worker process.
#[derive(Debug, Default)]
pub struct Metrics {
    jobs: [AtomicU64; OUTCOMES.len()],
    job_duration: Histogram,
    stages: [Histogram; STAGES.len()],
    audio_micros: AtomicU64,
    in_flight: AtomicU64,
    started: AtomicU64,
    abandoned: AtomicU64,
    dropped: AtomicU64,
    pub bytes_in: std::sync::Arc<AtomicU64>,
    pub bytes_out: std::sync::Arc<AtomicU64>,
}

impl Metrics {
    pub fn job(&self, outcome: JobOutcome) {
        if let Some(i) = OUTCOMES.iter().position(|(o, _)| *o == outcome) {
            self.jobs[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn job_duration(&self, d: Duration) {
        self.job_duration.observe(d);
    }

    pub fn stage(&self, stage: Stage, d: Duration) {
        if let Some(i) = STAGES.iter().position(|(s, _)| *s == stage) {
            self.stages[i].observe(d);
        }
    }

    pub fn audio_seconds(&self, seconds: f64) {
        if seconds.is_finite() && seconds > 0.0 {
            self.audio_micros
                .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        }
    }

    /// A delivery was taken and its job started.
    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// Jobs started so far.
    pub fn jobs_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// A job was stopped unfinished because its broker session was lost (it can no longer be
    /// acked; the broker redelivers it).
    pub fn abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
    }

    /// Deliveries the client had buffered when the session was lost, dropped unstarted.
    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a job in flight until the returned guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// The Prometheus text exposition, plus `ready` as `vadflow_ready{component="worker"}`.
    pub fn render(&self, ready: bool) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut e = Exposition::new();
        let jobs: Vec<(&str, u64)> = OUTCOMES
            .iter()
            .zip(&self.jobs)
            .map(|((_, name), c)| (*name, load(c)))
            .collect();
        e.counter_by(
            "vadflow_jobs_total",
            "Job attempts by outcome, each settled attempt counted once.",
            "outcome",
            &jobs,
        );
        e.counter(
            "vadflow_jobs_started_total",
            "Deliveries taken and started as jobs.",
            load(&self.started),
        );
        e.counter(
            "vadflow_jobs_abandoned_total",
            "Jobs stopped unfinished because the broker session was lost; the broker redelivers them.",
            load(&self.abandoned),
        );
        e.counter(
            "vadflow_deliveries_dropped_total",
            "Buffered deliveries dropped unstarted because the broker session was lost.",
            load(&self.dropped),
        );
        e.histograms(
            "vadflow_job_duration_seconds",
            "Time from delivery to settlement of successful jobs.",
            &[("", &self.job_duration)],
        );
        let stage_labels: Vec<String> = STAGES
            .iter()
            .map(|(_, name)| format!("stage=\"{name}\""))
            .collect();
        let stages: Vec<(&str, &Histogram)> = stage_labels
            .iter()
            .map(String::as_str)
            .zip(self.stages.iter())
            .collect();
        e.histograms(
            "vadflow_stage_duration_seconds",
            "Time per stage of a job.",
            &stages,
        );
        e.counter(
            "vadflow_audio_seconds_total",
            "Audio analysed by finished jobs.",
            load(&self.audio_micros) as f64 / 1e6,
        );
        e.counter(
            "vadflow_input_bytes_total",
            "Bytes downloaded from S3.",
            load(&self.bytes_in),
        );
        e.counter(
            "vadflow_output_bytes_total",
            "Bytes uploaded to S3.",
            load(&self.bytes_out),
        );
        e.gauge(
            "vadflow_jobs_in_flight",
            "Jobs being processed now.",
            load(&self.in_flight),
        );
        e.gauge_by(
            "vadflow_ready",
            "Whether the process is connected and consuming, by component.",
            "component",
            &[("worker", u64::from(ready))],
        );
        e.finish()
    }
}

/// Guard of [`Metrics::in_flight`].
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fixed_series_with_cumulative_buckets() {
        let m = Metrics::default();
        m.job(JobOutcome::Done);
        m.job(JobOutcome::Done);
        m.job(JobOutcome::Failed);
        m.job_duration(Duration::from_millis(30));
        m.stage(Stage::Fetch, Duration::from_millis(3));
        m.audio_seconds(1.5);
        let _guard = m.in_flight();
        m.started();
        m.dropped(3);
        let text = m.render(true);
        assert!(text.contains("vadflow_jobs_total{outcome=\"done\"} 2\n"));
        assert!(text.contains("vadflow_jobs_total{outcome=\"failed\"} 1\n"));
        assert!(
            !text.contains("dead_lettered"),
            "each attempt is counted once"
        );
        assert!(text.contains("vadflow_jobs_total{outcome=\"retried\"} 0\n"));
        assert!(text.contains("vadflow_job_duration_seconds_bucket{le=\"0.025\"} 0\n"));
        assert!(text.contains("vadflow_job_duration_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("vadflow_job_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("vadflow_stage_duration_seconds_count{stage=\"fetch\"} 1\n"));
        assert!(text.contains("vadflow_audio_seconds_total 1.5\n"));
        assert!(text.contains("vadflow_jobs_in_flight 1\n"));
        assert!(text.contains("vadflow_ready{component=\"worker\"} 1\n"));
        assert!(text.contains("vadflow_jobs_started_total 1\n"));
        assert!(text.contains("vadflow_jobs_abandoned_total 0\n"));
        assert!(text.contains("vadflow_deliveries_dropped_total 3\n"));
    }
}
