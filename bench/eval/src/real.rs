//! `vadflow-eval real`: speech detection on real recordings with human labels, every system
//! scored the same way in one run.
//!
//! The folder holds a `labels.json` like `../shared/realaudio/`'s: `files` maps each audio file
//! (path relative to the folder) to its `set`, `duration` and `speech` intervals in seconds; an
//! empty `speech` list means the file holds no speech. For speech files: frame precision, recall
//! and F1 on a 10 ms grid, and segment F1 (IoU ≥ 0.5), per set and pooled. For speech-free files:
//! the share of their time called speech and segments per minute, per set and pooled.
//! vadflow's engines run in-process; the references come from `bench/reference/realaudio.py`.

use crate::{Score, parallel, run_file, score};
use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vadflow_worker::audio::pipeline::Params;

#[derive(Deserialize)]
pub struct Labels {
    pub files: BTreeMap<String, Labelled>,
}

#[derive(Deserialize)]
pub struct Labelled {
    pub set: String,
    pub duration: f64,
    pub speech: Vec<(f64, f64)>,
}

pub fn load(dir: &Path) -> anyhow::Result<Labels> {
    let path = dir.join("labels.json");
    let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

/// One system's segments for every file.
pub type Output = BTreeMap<String, Vec<(f64, f64)>>;

/// Runs vadflow with `params` over every labelled file.
pub fn run_vadflow(dir: &Path, labels: &Labels, params: &Params) -> anyhow::Result<Output> {
    let names: Vec<&String> = labels.files.keys().collect();
    let runs = parallel(&names, |name| run_file(&dir.join(name), params));
    let mut out = Output::new();
    for (name, run) in names.into_iter().zip(runs) {
        out.insert(name.clone(), run?.segments);
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct References {
    systems: BTreeMap<String, Output>,
    versions: BTreeMap<String, String>,
}

/// The references' segments: `bench/reference/realaudio.py` run with `python`.
pub fn references(dir: &Path, python: &Path) -> anyhow::Result<(BTreeMap<String, Output>, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../reference/realaudio.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("run {}", python.display()))?;
    anyhow::ensure!(out.status.success(), "realaudio.py failed: {}", out.status);
    let r: References = serde_json::from_slice(&out.stdout).context("parse realaudio.py output")?;
    let versions = r
        .versions
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((r.systems, versions))
}

/// What one system scored.
#[derive(Default, Clone)]
pub struct Report {
    /// Speech files by set, and pooled.
    pub sets: BTreeMap<String, Score>,
    pub pooled: Score,
    /// Speech-free files by set: (seconds called speech, seconds, segments).
    pub quiet: BTreeMap<String, (f64, f64, usize)>,
}

fn speech_seconds(segments: &[(f64, f64)], duration: f64) -> f64 {
    segments
        .iter()
        .map(|&(s, e)| (e.min(duration) - s.max(0.0)).max(0.0))
        .sum()
}

pub fn report(labels: &Labels, out: &Output) -> Report {
    let mut r = Report::default();
    for (name, l) in &labels.files {
        let pred = out.get(name).map(Vec::as_slice).unwrap_or_default();
        if l.speech.is_empty() {
            let q = r.quiet.entry(l.set.clone()).or_default();
            q.0 += speech_seconds(pred, l.duration);
            q.1 += l.duration;
            q.2 += pred.len();
        } else {
            let s = score(&l.speech, pred, l.duration);
            r.sets.entry(l.set.clone()).or_default().add(s);
            r.pooled.add(s);
        }
    }
    r
}

/// The two tables, Markdown.
pub fn print(systems: &[(String, Report)]) {
    let Some((_, first)) = systems.first() else {
        return;
    };
    let sets: Vec<&String> = first.sets.keys().collect();
    let quiet: Vec<&String> = first.quiet.keys().collect();
    println!("### Speech: frame F1 / segment F1 per set; pooled frame P / R / F1 and segment F1\n");
    let head: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    println!(
        "| system | {} | pooled P | R | F1 | segment F1 |",
        head.join(" | ")
    );
    println!("|---|{}---|---|---|---|", "---|".repeat(sets.len()));
    for (name, r) in systems {
        let cells: Vec<String> = sets
            .iter()
            .map(|s| {
                let x = r.sets.get(*s).copied().unwrap_or_default();
                format!("{:.1} / {:.1}", 100.0 * x.frame.f1(), 100.0 * x.seg.f1())
            })
            .collect();
        let p = r.pooled;
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            cells.join(" | "),
            100.0 * p.frame.precision(),
            100.0 * p.frame.recall(),
            100.0 * p.frame.f1(),
            100.0 * p.seg.f1()
        );
    }
    println!("\n### Speech-free audio: share of the time called speech (segments per minute)\n");
    let head: Vec<String> = quiet.iter().map(|s| s.to_string()).collect();
    println!("| system | {} | pooled |", head.join(" | "));
    println!("|---|{}---|", "---|".repeat(quiet.len()));
    for (name, r) in systems {
        let cell = |q: (f64, f64, usize)| {
            let minutes = q.1 / 60.0;
            format!(
                "{:.1} % ({:.1})",
                100.0 * q.0 / q.1.max(1e-9),
                q.2 as f64 / minutes.max(1e-9)
            )
        };
        let cells: Vec<String> = quiet
            .iter()
            .map(|s| cell(r.quiet.get(*s).copied().unwrap_or_default()))
            .collect();
        let all = r
            .quiet
            .values()
            .fold((0.0, 0.0, 0), |a, q| (a.0 + q.0, a.1 + q.1, a.2 + q.2));
        println!("| {name} | {} | {} |", cells.join(" | "), cell(all));
    }
}
