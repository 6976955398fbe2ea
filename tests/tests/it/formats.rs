//! Every supported container and codec decodes, and gives the same segments as the 16 kHz WAV of
//! the same audio: segment F1 ≥ 99 % and a median boundary difference of at most 10 ms. Lossy
//! formats keep their timing because encoder delay and padding are trimmed where the container
//! records them. Each file is read twice: from the file (seekable) and as a one-way stream, the
//! way a worker reads an S3 body, so an MP4 with its index at the end is covered both ways.

use std::path::Path;
use symphonia::core::io::{MediaSource, ReadOnlySource};
use vadflow_tests::corpus::{self, FORMATS, RATE, timing};
use vadflow_tests::eval::{Counts, median, segment_match};
use vadflow_worker::audio::pipeline::{Analysis, Params, Sinks, analyze};

fn run(path: &Path, streamed: bool) -> Analysis {
    let f = std::fs::File::open(path).expect("open");
    let source: Box<dyn MediaSource> = if streamed {
        Box::new(ReadOnlySource::new(f))
    } else {
        Box::new(f)
    };
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    analyze(
        source,
        ext.as_deref(),
        &Params::default(),
        None,
        Sinks::default(),
    )
    .unwrap_or_else(|e| panic!("{} (streamed: {streamed}): {e}", path.display()))
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
        .map(|id| run(&dir.join("clean").join(format!("{id}.wav")), false))
        .collect();
    assert!(
        base.iter()
            .all(|a| a.sample_rate == RATE && !a.segments.is_empty())
    );
    let mut failures = Vec::new();
    for (suffix, _) in FORMATS {
        for streamed in [false, true] {
            let mut counts = Counts::default();
            let mut errors = Vec::new();
            let (offset, length) = timing(suffix);
            let mut worst = 0.0f64;
            for (id, b) in ids.iter().zip(&base) {
                let a = run(
                    &dir.join("formats").join(format!("{id}.{suffix}")),
                    streamed,
                );
                // The late start shows as extra length too.
                let extra = a.duration_s() - b.duration_s() - offset;
                if extra.abs() > worst.abs() {
                    worst = extra;
                }
                if !length.contains(&extra) {
                    failures.push(format!(
                        "{id}.{suffix}: duration {:.4} s vs {:.4} s: encoder delay or padding not trimmed",
                        a.duration_s(),
                        b.duration_s()
                    ));
                }
                if a.source.channels != 2 {
                    failures.push(format!(
                        "{id}.{suffix}: {} channels, not 2",
                        a.source.channels
                    ));
                }
                let shifted: Vec<(f64, f64)> = seconds(&a)
                    .into_iter()
                    .map(|(s, e)| (s - offset, e - offset))
                    .collect();
                let (c, e) = segment_match(&seconds(b), &shifted);
                counts.add(c);
                errors.extend(e);
            }
            let med = median(&mut errors);
            println!(
                "{suffix:>14} streamed={streamed:<5} segment F1 {:.3}  median boundary {:.1} ms  duration {:+.1} ms",
                counts.f1(),
                med * 1000.0,
                worst * 1000.0
            );
            if counts.f1() < 0.99 || med > 0.010 {
                failures.push(format!(
                    "{suffix} (streamed: {streamed}): segment F1 {:.3}, median boundary difference {:.1} ms",
                    counts.f1(),
                    med * 1000.0
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `worker vad` on a mixed set, among them an MP3 with junk spliced in (its demuxer logs a line
/// per junk chunk), prints no line of a dependency at the default level: only vadflow's own, and
/// at most one decoder warning per file, with the count.
#[test]
fn dependency_log_lines_never_reach_the_output() {
    let dir = std::env::temp_dir().join(format!("vadflow-quiet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let input = dir.join("in");
    std::fs::create_dir_all(&input).expect("dir");
    corpus::generate(&dir.join("corpus"), 1, 5, true).expect("corpus");
    for (suffix, _) in FORMATS {
        let from = dir.join("corpus/formats").join(format!("c001.{suffix}"));
        std::fs::copy(&from, input.join(format!("a.{suffix}"))).expect("copy");
    }
    // An MP3 with 40 runs of junk spliced between its frames.
    let mp3 = std::fs::read(input.join("a.mp3")).expect("mp3");
    let mut spliced = Vec::new();
    for (i, chunk) in mp3.chunks(mp3.len() / 40).enumerate() {
        spliced.extend_from_slice(chunk);
        spliced.extend((0..300u32).map(|j| (i as u32 * 7 + j * 13) as u8 | 0x01));
    }
    std::fs::write(input.join("junk.mp3"), spliced).expect("write");

    let out = std::process::Command::new(vadflow_tests::bin("worker"))
        .args(["vad", "--no-progress", "--out"])
        .arg(dir.join("out"))
        .arg(&input)
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .output()
        .expect("worker vad");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "no log lines parsed from: {stderr}");
    let foreign: Vec<_> = lines
        .iter()
        .filter(|l| !l["target"].as_str().unwrap_or("").starts_with("vadflow"))
        .collect();
    assert!(foreign.is_empty(), "dependency lines: {foreign:?}");
    let warned: Vec<&str> = lines
        .iter()
        .filter(|l| l["message"] == vadflow_worker::events::msg::DECODER_WARNINGS)
        .map(|l| l["file"].as_str().unwrap_or(""))
        .collect();
    assert!(
        warned.iter().any(|f| f.ends_with("junk.mp3")),
        "the spliced MP3's warnings are reported once: {warned:?}"
    );
    let mut unique = warned.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), warned.len(), "one line per file: {warned:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
