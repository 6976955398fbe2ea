//! Every supported format decodes, and gives the same segments as the 16 kHz WAV of the same
//! audio: segment F1 ≥ 95 % and a median boundary difference of at most one frame (30 ms).
//! Lossy formats keep their timing because encoder delay and padding are trimmed.

use std::path::Path;
use vadflow_tests::corpus::{self, FORMATS, RATE};
use vadflow_tests::eval::{Counts, median, segment_match};
use vadflow_worker::audio::pipeline::{Analysis, Params, Sinks, analyze};

fn run(path: &Path) -> Analysis {
    let f = std::fs::File::open(path).expect("open");
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    analyze(
        Box::new(f),
        ext.as_deref(),
        &Params::default(),
        None,
        Sinks::default(),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn seconds(a: &Analysis) -> Vec<(f64, f64)> {
    let r = f64::from(a.sample_rate);
    a.segments
        .iter()
        .map(|s| (s.start as f64 / r, s.end as f64 / r))
        .collect()
}

#[test]
fn every_format_matches_the_16_khz_wav() {
    let dir = std::env::temp_dir().join(format!("vadflow-formats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    corpus::generate(&dir, 4, 99, true).expect("corpus");
    let ids = ["c001", "c002", "c003", "c004"];
    let base: Vec<Analysis> = ids
        .iter()
        .map(|id| run(&dir.join("clean").join(format!("{id}.wav"))))
        .collect();
    assert!(
        base.iter()
            .all(|a| a.sample_rate == RATE && !a.segments.is_empty())
    );
    for (suffix, _) in FORMATS {
        let mut counts = Counts::default();
        let mut errors = Vec::new();
        for (id, b) in ids.iter().zip(&base) {
            let a = run(&dir.join("formats").join(format!("{id}.{suffix}")));
            assert!(
                (a.duration_s() - b.duration_s()).abs() < 0.005,
                "{id}.{suffix}: duration {} vs {} — encoder delay or padding not trimmed",
                a.duration_s(),
                b.duration_s()
            );
            assert!(a.source.channels == 2, "{id}.{suffix}: decoded as stereo");
            let (c, e) = segment_match(&seconds(b), &seconds(&a));
            counts.add(c);
            errors.extend(e);
        }
        let med = median(&mut errors);
        assert!(
            counts.f1() >= 0.95,
            "{suffix}: segment F1 {:.3}",
            counts.f1()
        );
        assert!(
            med <= 0.030,
            "{suffix}: median boundary difference {:.1} ms",
            med * 1000.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
