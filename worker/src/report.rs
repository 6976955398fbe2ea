//! `worker report`: one self-contained HTML page (inline SVG, no script, nothing fetched) for a
//! local-mode run, to look at before trusting it: files by outcome and failure reason, the
//! distributions of speech ratio, file duration and segment length, and for a sample of files
//! the waveform with the detected segments over it (and the labels, when given).

use crate::audio::Limits;
use crate::audio::decoder::{Decoder, DecoderChoice};
use crate::local::{MANIFEST, Manifest};
use anyhow::Context;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `worker report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The output directory of a `worker vad` run (it holds vadflow-manifest.json).
    pub run: PathBuf,

    /// Where the page is written.
    #[arg(long)]
    pub out: PathBuf,

    /// A labels.json (as `worker tune` takes): the labelled speech is drawn under the segments.
    #[arg(long)]
    pub labels: Option<PathBuf>,

    /// How many files get a timeline (the first, by path).
    #[arg(long, default_value_t = 12)]
    pub sample: usize,
}

/// What the page shows, for the caller and tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    pub done: usize,
    pub failed: usize,
    pub timelines: usize,
}

const WIDTH: f64 = 960.0;
const COLUMNS: usize = 480;

/// One done file, as its `segments.json` has it.
struct Done {
    rel: String,
    uri: String,
    duration: f64,
    speech_ratio: f64,
    segments: Vec<(f64, f64)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn load_done(run: &Path, rel: &str) -> anyhow::Result<Done> {
    let path = run.join(rel).join("segments.json");
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not valid", path.display()))?;
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    Ok(Done {
        rel: rel.to_owned(),
        uri: v["source"]["uri"].as_str().unwrap_or("").to_owned(),
        duration: f(&v["duration"]),
        speech_ratio: f(&v["speech_ratio"]),
        segments: v["segments"]
            .as_array()
            .map(|a| a.iter().map(|s| (f(&s["start"]), f(&s["end"]))).collect())
            .unwrap_or_default(),
    })
}

/// The loudest sample of each of [`COLUMNS`] stretches of the audio, or `None` if the source
/// cannot be read again (moved, remote).
fn envelope(uri: &str, duration: f64) -> Option<Vec<f32>> {
    let path = Path::new(uri);
    let file = std::fs::File::open(path).ok()?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let limits = Limits::default();
    let mut dec = Decoder::open(
        Box::new(file),
        ext.as_deref(),
        &limits,
        16_000,
        &DecoderChoice::default(),
        1,
    )
    .ok()?;
    let per_col = (duration * f64::from(dec.sample_rate()) / COLUMNS as f64).max(1.0);
    let ch = dec.out_channels().max(1);
    let mut cols = vec![0.0f32; COLUMNS];
    let (mut block, mut frame) = (Vec::new(), 0u64);
    loop {
        block.clear();
        let more = dec.next_block(&mut block, &limits).ok()?;
        for frame_samples in block.chunks(ch) {
            let c = ((frame as f64 / per_col) as usize).min(COLUMNS - 1);
            for &x in frame_samples {
                cols[c] = cols[c].max(x.abs());
            }
            frame += 1;
        }
        if !more {
            return Some(cols);
        }
    }
}

/// Bars of a histogram as an SVG, with the bins' labels under them.
fn histogram(title: &str, id: &str, bins: &[(String, usize)]) -> String {
    let max = bins.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let w = WIDTH / 2.0 - 20.0;
    let bw = w / bins.len().max(1) as f64;
    let mut svg = format!(
        "<figure id=\"{id}\"><figcaption>{}</figcaption><svg width=\"{w}\" height=\"150\" viewBox=\"0 0 {w} 150\">",
        escape(title)
    );
    for (i, (label, n)) in bins.iter().enumerate() {
        let h = 110.0 * *n as f64 / max;
        let x = i as f64 * bw;
        let _ = write!(
            svg,
            "<rect class=\"bar\" data-count=\"{n}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"n\">{n}</text>\
             <text x=\"{:.1}\" y=\"145\" class=\"l\">{}</text>",
            x + 2.0,
            120.0 - h,
            bw - 4.0,
            x + bw / 2.0,
            (115.0 - h).max(10.0),
            x + bw / 2.0,
            escape(label)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn binned(
    values: &[f64],
    edges: &[f64],
    label: impl Fn(f64, Option<f64>) -> String,
) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for i in 0..=edges.len() {
        let lo = if i == 0 {
            f64::NEG_INFINITY
        } else {
            edges[i - 1]
        };
        let hi = edges.get(i).copied();
        let n = values
            .iter()
            .filter(|&&v| v >= lo && hi.is_none_or(|h| v < h))
            .count();
        out.push((label(lo, hi), n));
    }
    out
}

fn timeline(d: &Done, labels: Option<&Vec<(f64, f64)>>) -> String {
    let dur = d.duration.max(1e-3);
    let x = |t: f64| (t / dur * WIDTH).clamp(0.0, WIDTH);
    let mut svg = format!(
        "<section class=\"timeline\" data-file=\"{}\" data-segments=\"{}\"><h3>{} <small>{:.1} s, {} segments, speech {:.0} %</small></h3>\
         <svg width=\"{WIDTH}\" height=\"96\" viewBox=\"0 0 {WIDTH} 96\"><rect class=\"bg\" width=\"{WIDTH}\" height=\"72\"/>",
        escape(&d.rel),
        d.segments.len(),
        escape(&d.rel),
        d.duration,
        d.segments.len(),
        100.0 * d.speech_ratio
    );
    for &(s, e) in &d.segments {
        let _ = write!(
            svg,
            "<rect class=\"seg\" x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"72\"/>",
            x(s),
            (x(e) - x(s)).max(0.5)
        );
    }
    if let Some(env) = envelope(&d.uri, d.duration) {
        let peak = env.iter().fold(1e-6f32, |m, &v| m.max(v));
        let mut path = String::from("M0 36");
        for (i, v) in env.iter().enumerate() {
            let px = i as f64 * WIDTH / COLUMNS as f64;
            let h = f64::from(v / peak) * 34.0;
            let _ = write!(path, " L{px:.1} {:.1} L{px:.1} {:.1}", 36.0 - h, 36.0 + h);
        }
        let _ = write!(svg, "<path class=\"wave\" d=\"{path}\"/>");
    }
    if let Some(labels) = labels {
        for &(s, e) in labels {
            let _ = write!(
                svg,
                "<rect class=\"label\" x=\"{:.1}\" y=\"78\" width=\"{:.1}\" height=\"10\"/>",
                x(s),
                (x(e) - x(s)).max(0.5)
            );
        }
    }
    svg.push_str("</svg></section>");
    svg
}

#[derive(serde::Deserialize)]
struct LabelsJson {
    files: BTreeMap<String, LabelsEntry>,
}

#[derive(serde::Deserialize)]
struct LabelsEntry {
    speech: Vec<(f64, f64)>,
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f2f2f2}\
.hist{display:flex;flex-wrap:wrap;gap:16px}figcaption{font-weight:bold;margin-bottom:4px}\
.bar{fill:#4a78c2}.n{font-size:11px;text-anchor:middle}.l{font-size:10px;text-anchor:middle}\
.bg{fill:#fafafa}.seg{fill:#4a78c2;opacity:.28}.wave{stroke:#333;stroke-width:1;fill:none}\
.label{fill:#2e9b4f}h3{font-size:14px;margin:14px 0 4px}small{color:#666;font-weight:normal}\
.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}";

pub fn run(args: &ReportArgs) -> anyhow::Result<Summary> {
    let manifest = Manifest::load(&args.run)?;
    anyhow::ensure!(
        !manifest.files.is_empty(),
        "no {MANIFEST} with files in {}: is it a `worker vad --out` directory?",
        args.run.display()
    );
    let labels: Option<BTreeMap<String, Vec<(f64, f64)>>> = match &args.labels {
        Some(p) => {
            let l: LabelsJson = serde_json::from_slice(
                &std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a labels.json", p.display()))?;
            Some(l.files.into_iter().map(|(k, e)| (k, e.speech)).collect())
        }
        None => None,
    };
    let mut summary = Summary::default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut done = Vec::new();
    for (rel, entry) in &manifest.files {
        if entry.status == "done" {
            summary.done += 1;
            done.push(load_done(&args.run, rel)?);
        } else {
            summary.failed += 1;
            *reasons
                .entry(entry.reason.clone().unwrap_or_else(|| "unknown".into()))
                .or_default() += 1;
        }
    }
    let mut html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>vadflow report</title><style>{STYLE}</style></head><body>\
         <h1>vadflow report</h1><p>{}</p><h2>Files</h2><table><tr><th>files</th><th>done</th><th>failed</th>\
         <th>audio</th><th>speech</th><th>segments</th></tr><tr><td id=\"n-files\">{}</td><td id=\"n-done\">{}</td>\
         <td id=\"n-failed\">{}</td><td>{:.2} h</td><td>{:.2} h</td><td id=\"n-segments\">{}</td></tr></table>",
        escape(&args.run.display().to_string()),
        manifest.files.len(),
        summary.done,
        summary.failed,
        done.iter().map(|d| d.duration).sum::<f64>() / 3600.0,
        done.iter()
            .map(|d| d.segments.iter().map(|s| s.1 - s.0).sum::<f64>())
            .sum::<f64>()
            / 3600.0,
        done.iter().map(|d| d.segments.len()).sum::<usize>()
    );
    if !reasons.is_empty() {
        html.push_str("<h2>Failures by reason</h2><table id=\"reasons\"><tr><th>reason</th><th>files</th></tr>");
        for (r, n) in &reasons {
            let _ = write!(
                html,
                "<tr><td>{}</td><td class=\"reason-count\">{n}</td></tr>",
                escape(r)
            );
        }
        html.push_str("</table>");
    }
    let ratios: Vec<f64> = done.iter().map(|d| d.speech_ratio).collect();
    let durations: Vec<f64> = done.iter().map(|d| d.duration).collect();
    let lengths: Vec<f64> = done
        .iter()
        .flat_map(|d| d.segments.iter().map(|s| s.1 - s.0))
        .collect();
    let pct = |lo: f64, hi: Option<f64>| match hi {
        Some(h) if lo.is_finite() => format!("{:.0}–{:.0}%", lo * 100.0, h * 100.0),
        Some(h) => format!("<{:.0}%", h * 100.0),
        None => format!("≥{:.0}%", lo * 100.0),
    };
    let secs = |lo: f64, hi: Option<f64>| match hi {
        Some(h) if lo.is_finite() => format!("{lo}–{h}s"),
        Some(h) => format!("<{h}s"),
        None => format!("≥{lo}s"),
    };
    html.push_str("<h2>Distributions</h2><div class=\"hist\">");
    html.push_str(&histogram(
        "Speech ratio (files)",
        "hist-ratio",
        &binned(&ratios, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], pct),
    ));
    html.push_str(&histogram(
        "File duration (files)",
        "hist-duration",
        &binned(&durations, &[10.0, 30.0, 60.0, 300.0, 900.0, 3600.0], secs),
    ));
    html.push_str(&histogram(
        "Segment length (segments)",
        "hist-segments",
        &binned(&lengths, &[0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0], secs),
    ));
    html.push_str("</div><h2>Sample timelines</h2><p class=\"key\"><span style=\"background:#333\"></span>waveform\
        <span style=\"background:#4a78c2;opacity:.5\"></span>detected speech");
    if labels.is_some() {
        html.push_str("<span style=\"background:#2e9b4f\"></span>labelled speech");
    }
    html.push_str("</p>");
    for d in done.iter().take(args.sample) {
        let l = labels.as_ref().and_then(|l| {
            l.iter()
                .find(|(k, _)| d.rel == **k || d.uri.ends_with(&format!("/{k}")))
                .map(|(_, v)| v)
        });
        html.push_str(&timeline(d, l));
        summary.timelines += 1;
    }
    html.push_str("</body></html>\n");
    std::fs::write(&args.out, html).with_context(|| format!("write {}", args.out.display()))?;
    Ok(summary)
}
