//! The Prometheus text exposition, written one way for both binaries: [`Exposition`] writes each
//! family's `# HELP` and `# TYPE` lines and its samples; [`Histogram`] is a lock-free duration
//! histogram with fixed buckets.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the duration buckets, in seconds.
pub const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// A page of metrics being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition {
            out: String::with_capacity(4096),
        }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "counter", help);
        self.sample(name, "", value);
    }

    /// A counter with one label: a sample per `(label value, count)`.
    pub fn counter_by(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) {
        self.family(name, "counter", help);
        for (v, n) in samples {
            self.sample(name, &format!("{label}=\"{v}\""), n);
        }
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        self.sample(name, "", value);
    }

    /// A gauge with one label: a sample per `(label value, value)`.
    pub fn gauge_by(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) {
        self.family(name, "gauge", help);
        for (v, n) in samples {
            self.sample(name, &format!("{label}=\"{v}\""), n);
        }
    }

    /// A histogram family: one series per `(labels, histogram)` (labels `""` for none).
    pub fn histograms(&mut self, name: &str, help: &str, series: &[(&str, &Histogram)]) {
        self.family(name, "histogram", help);
        for (labels, h) in series {
            h.render(&mut self.out, name, labels);
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A duration histogram over [`BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_with_help_type_and_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(30));
        let mut e = Exposition::new();
        e.counter("a_total", "A.", 3);
        e.counter_by("b_total", "B.", "outcome", &[("done", 2), ("failed", 1)]);
        e.gauge("c", "C.", 1);
        e.gauge_by("g", "G.", "queue", &[("jobs", 7)]);
        e.histograms("d_seconds", "D.", &[("stage=\"x\"", &h)]);
        let text = e.finish();
        assert!(text.contains("# HELP a_total A.\n# TYPE a_total counter\na_total 3\n"));
        assert!(text.contains("b_total{outcome=\"failed\"} 1\n"));
        assert!(text.contains("# TYPE c gauge\nc 1\n"));
        assert!(text.contains("# TYPE g gauge\ng{queue=\"jobs\"} 7\n"));
        assert!(text.contains("d_seconds_bucket{stage=\"x\",le=\"0.025\"} 0\n"));
        assert!(text.contains("d_seconds_bucket{stage=\"x\",le=\"0.05\"} 1\n"));
        assert!(text.contains("d_seconds_count{stage=\"x\"} 1\n"));
    }
}
