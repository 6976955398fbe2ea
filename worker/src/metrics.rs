//! The worker's Prometheus metrics. Every label comes from a fixed set (outcomes and stages are
//! enums), so the series count never depends on the input.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// Upper bounds of the duration buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            if s <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

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

    /// The Prometheus text exposition, plus `ready` as `vadflow_ready`.
    pub fn render(&self, ready: bool) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP vadflow_jobs_total Job attempts by outcome.\n# TYPE vadflow_jobs_total counter\n");
        for ((_, name), c) in OUTCOMES.iter().zip(&self.jobs) {
            let _ = writeln!(
                out,
                "vadflow_jobs_total{{outcome=\"{name}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP vadflow_jobs_started_total Deliveries taken and started as jobs.\n# TYPE vadflow_jobs_started_total counter\nvadflow_jobs_started_total {}\n\
             # HELP vadflow_jobs_abandoned_total Jobs stopped unfinished because the broker session was lost; the broker redelivers them.\n# TYPE vadflow_jobs_abandoned_total counter\nvadflow_jobs_abandoned_total {}\n\
             # HELP vadflow_deliveries_dropped_total Buffered deliveries dropped unstarted because the broker session was lost.\n# TYPE vadflow_deliveries_dropped_total counter\nvadflow_deliveries_dropped_total {}\n",
            self.started.load(Ordering::Relaxed),
            self.abandoned.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        );
        out.push_str("# HELP vadflow_job_duration_seconds Time from delivery to settlement of successful jobs.\n# TYPE vadflow_job_duration_seconds histogram\n");
        self.job_duration
            .render(&mut out, "vadflow_job_duration_seconds", "");
        out.push_str("# HELP vadflow_stage_duration_seconds Time per stage of a job.\n# TYPE vadflow_stage_duration_seconds histogram\n");
        for ((_, name), h) in STAGES.iter().zip(&self.stages) {
            h.render(
                &mut out,
                "vadflow_stage_duration_seconds",
                &format!("stage=\"{name}\""),
            );
        }
        let audio = self.audio_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "# HELP vadflow_audio_seconds_total Audio analysed by finished jobs.\n# TYPE vadflow_audio_seconds_total counter\nvadflow_audio_seconds_total {audio}\n\
             # HELP vadflow_input_bytes_total Bytes downloaded from S3.\n# TYPE vadflow_input_bytes_total counter\nvadflow_input_bytes_total {}\n\
             # HELP vadflow_output_bytes_total Bytes uploaded to S3.\n# TYPE vadflow_output_bytes_total counter\nvadflow_output_bytes_total {}\n\
             # HELP vadflow_jobs_in_flight Jobs being processed now.\n# TYPE vadflow_jobs_in_flight gauge\nvadflow_jobs_in_flight {}\n\
             # HELP vadflow_ready Whether the worker is connected and consuming.\n# TYPE vadflow_ready gauge\nvadflow_ready {}\n",
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
            u8::from(ready),
        );
        out
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
        assert!(text.contains("vadflow_ready 1\n"));
        assert!(text.contains("vadflow_jobs_started_total 1\n"));
        assert!(text.contains("vadflow_jobs_abandoned_total 0\n"));
        assert!(text.contains("vadflow_deliveries_dropped_total 3\n"));
    }
}
