//! `worker tune`: segmentation settings fitted to the user's own labels, from stored score
//! tracks (`scores.bin`), without decoding any audio. Every setting of a fixed grid is tried by
//! re-segmenting the tracks in memory and scoring the segments against the labels (pooled frame
//! F1 on a 10 ms grid, as the evaluation scores); the best (or the best above a recall floor)
//! is written as a profile that `worker`, `worker vad` and `worker resegment` accept with
//! `--profile`.

use crate::audio::segment::SegmentParams;
use crate::audio::track::{self, Track};
use crate::audio::vad::EngineKind;
use crate::eval::{Counts, frame_grid, grid_counts};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `worker tune`.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Score tracks (scores.bin) of a run over the labelled recordings, or directories holding
    /// them (a `worker vad --outputs segments.json,scores.bin --out` directory).
    #[arg(required = true)]
    pub tracks: Vec<PathBuf>,

    /// The labels: a labels.json (`files`: path → `speech` intervals in seconds and
    /// `duration`, as the evaluation's), or a directory of RTTM files (speech is the union of
    /// every SPEAKER line of a file id).
    #[arg(long)]
    pub labels: PathBuf,

    /// Where the profile is written (JSON).
    #[arg(long)]
    pub out: PathBuf,

    /// Keep only settings whose pooled frame recall is at least this (0 to 1), then take the
    /// best F1 among them.
    #[arg(long)]
    pub recall_floor: Option<f64>,
}

/// Segmentation settings in seconds, as a profile holds them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProfileSettings {
    pub threshold: f32,
    pub neg_threshold: f32,
    pub smoothing: f64,
    pub trigger: f32,
    pub pad_start: f64,
    pub pad_end: f64,
    pub min_speech: f64,
    pub min_silence: f64,
    pub max_segment: f64,
    #[serde(default)]
    pub lookback: f64,
}

/// A tuned profile (`--profile FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Format version, 1.
    pub vadflow_profile: u32,
    /// The engine the settings were tuned for; the profile is refused with another.
    pub engine: EngineKind,
    pub segmentation: ProfileSettings,
    /// How it was tuned and what it scored (informational).
    #[serde(default)]
    pub tuned: serde_json::Value,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn dur(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{s} is not a duration in seconds"))
}

impl ProfileSettings {
    pub fn from_params(p: &SegmentParams) -> ProfileSettings {
        ProfileSettings {
            threshold: p.threshold,
            neg_threshold: p.neg_threshold,
            smoothing: secs(p.smoothing),
            trigger: p.trigger,
            pad_start: secs(p.pad_start),
            pad_end: secs(p.pad_end),
            min_speech: secs(p.min_speech),
            min_silence: secs(p.min_silence),
            max_segment: secs(p.max_segment),
            lookback: secs(p.lookback),
        }
    }
}

impl Profile {
    /// Reads a profile; an error names the file and what is wrong.
    pub fn load(path: &Path) -> anyhow::Result<Profile> {
        let bytes =
            std::fs::read(path).with_context(|| format!("read profile {}", path.display()))?;
        let p: Profile = serde_json::from_slice(&bytes)
            .with_context(|| format!("profile {} is not valid", path.display()))?;
        anyhow::ensure!(
            p.vadflow_profile == 1,
            "profile {}: version {} is not supported",
            path.display(),
            p.vadflow_profile
        );
        Ok(p)
    }

    /// The segment parameters it holds, for `engine` (which must be the profile's).
    pub fn segment_params(&self, engine: EngineKind) -> Result<SegmentParams, String> {
        if engine != self.engine {
            return Err(format!(
                "it was tuned for --engine {}, not {}",
                engine_name(self.engine),
                engine_name(engine)
            ));
        }
        let s = &self.segmentation;
        Ok(SegmentParams {
            threshold: s.threshold,
            neg_threshold: s.neg_threshold,
            smoothing: dur(s.smoothing)?,
            trigger: s.trigger,
            pad_start: dur(s.pad_start)?,
            pad_end: dur(s.pad_end)?,
            min_speech: dur(s.min_speech)?,
            min_silence: dur(s.min_silence)?,
            max_segment: dur(s.max_segment)?,
            lookback: dur(s.lookback)?,
            silero_pauses: SegmentParams::for_engine(engine).silero_pauses,
        })
    }
}

fn engine_name(e: EngineKind) -> &'static str {
    match e {
        EngineKind::Webrtc => "webrtc",
        EngineKind::Silero => "silero",
        EngineKind::Auto => "auto",
    }
}

/// Labelled speech of one file.
struct Labelled {
    duration: Option<f64>,
    speech: Vec<(f64, f64)>,
}

#[derive(Deserialize)]
struct LabelsJson {
    files: BTreeMap<String, LabelsEntry>,
}

#[derive(Deserialize)]
struct LabelsEntry {
    duration: f64,
    speech: Vec<(f64, f64)>,
}

/// Labels keyed as tracks are matched: labels.json by path (a track matches when its source
/// ends with the key), RTTM by file id.
fn load_labels(path: &Path) -> anyhow::Result<(BTreeMap<String, Labelled>, bool)> {
    if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        let l: LabelsJson = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a labels.json", path.display()))?;
        let files = l
            .files
            .into_iter()
            .map(|(k, e)| {
                (
                    k,
                    Labelled {
                        duration: Some(e.duration),
                        speech: e.speech,
                    },
                )
            })
            .collect();
        return Ok((files, true));
    }
    let mut files: BTreeMap<String, Labelled> = BTreeMap::new();
    for entry in std::fs::read_dir(path).with_context(|| format!("read {}", path.display()))? {
        let p = entry?.path();
        if p.extension().is_none_or(|e| e != "rttm") {
            continue;
        }
        let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
        for (n, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() != Some(&"SPEAKER") {
                continue;
            }
            let num = |i: usize| f.get(i).map(|s| s.parse::<f64>());
            let (start, len) = match (num(3), num(4)) {
                (Some(Ok(s)), Some(Ok(d))) => (s, d),
                _ => anyhow::bail!("{}:{}: not an RTTM SPEAKER line", p.display(), n + 1),
            };
            let file = files.entry(f.get(1).copied().unwrap_or("").to_owned());
            file.or_insert(Labelled {
                duration: None,
                speech: Vec::new(),
            })
            .speech
            .push((start, start + len));
        }
    }
    anyhow::ensure!(!files.is_empty(), "no RTTM lines under {}", path.display());
    Ok((files, false))
}

/// One labelled file with its track.
struct Item {
    track: Track,
    duration: f64,
    truth: Vec<bool>,
}

/// Every track under `inputs`, paired with its labels.
fn load_items(args: &TuneArgs) -> anyhow::Result<Vec<(String, Item)>> {
    let (labels, by_path) = load_labels(&args.labels)?;
    let mut items = Vec::new();
    let mut found = Vec::new();
    for input in &args.tracks {
        let mut stack = vec![input.clone()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).with_context(|| format!("read {}", p.display()))? {
                    stack.push(e?.path());
                }
            } else if p.file_name().is_some_and(|n| n == track::SCORES_BIN) || p == *input {
                found.push(p);
            }
        }
    }
    found.sort();
    for path in found {
        let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let track =
            track::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let uri = track.header.uri.clone();
        let key = if by_path {
            labels
                .keys()
                .find(|k| uri == **k || uri.ends_with(&format!("/{k}")))
        } else {
            let id = crate::audio::render::rttm_file_id(&uri);
            labels.keys().find(|k| **k == id)
        };
        let Some(key) = key else {
            tracing::warn!(track = %path.display(), uri, "no labels for this track; left out");
            continue;
        };
        let l = &labels[key];
        let rate = f64::from(track.header.vad.sample_rate.max(1));
        let duration = l
            .duration
            .unwrap_or(track.header.total_samples as f64 / rate);
        let mut truth = Vec::new();
        frame_grid(&l.speech, duration, &mut truth);
        items.push((
            key.clone(),
            Item {
                track,
                duration,
                truth,
            },
        ));
    }
    anyhow::ensure!(
        !items.is_empty(),
        "no track matches a labelled file ({} labelled)",
        labels.len()
    );
    let engine = items[0].1.track.header.vad.engine;
    anyhow::ensure!(
        items
            .iter()
            .all(|(_, i)| i.track.header.vad.engine == engine),
        "the tracks come from different engines: tune one engine at a time"
    );
    Ok(items)
}

/// Pooled frame counts of `params` over every item.
fn score(items: &[(String, Item)], params: &SegmentParams, pred: &mut Vec<bool>) -> Counts {
    let mut total = Counts::default();
    for (_, item) in items {
        let a = track::resegment(&item.track, params);
        let rate = f64::from(a.sample_rate.max(1));
        let segs: Vec<(f64, f64)> = a
            .segments
            .iter()
            .map(|s| (s.start as f64 / rate, s.end as f64 / rate))
            .collect();
        frame_grid(&segs, item.duration, pred);
        total.add(grid_counts(&item.truth, pred));
    }
    total
}

/// The settings tried: the engine's defaults varied one grid at a time over what matters for
/// its scores (decisions for WebRTC, probabilities otherwise).
fn grid(engine: EngineKind, binary: bool) -> Vec<SegmentParams> {
    let d = SegmentParams::for_engine(engine);
    let ms = |v: &[u64]| -> Vec<Duration> { v.iter().map(|&m| Duration::from_millis(m)).collect() };
    let mut out = Vec::new();
    let (thresholds, negs, smoothings, triggers): (Vec<f32>, Vec<f32>, Vec<Duration>, Vec<f32>) =
        if binary {
            (
                vec![d.threshold],
                vec![0.0],
                ms(&[0, 90, 150, 300, 450]),
                vec![0.3, 0.5, 0.7, 0.9],
            )
        } else {
            (
                vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
                vec![0.05, 0.15, 0.3],
                vec![d.smoothing],
                vec![d.trigger],
            )
        };
    for &threshold in &thresholds {
        for &gap in &negs {
            for &smoothing in &smoothings {
                for &trigger in &triggers {
                    for &pad_start in &ms(&[0, 60, 150, 300]) {
                        for &pad_end in &ms(&[0, 60, 150, 300]) {
                            for &min_speech in &ms(&[60, 150, 300]) {
                                for &min_silence in &ms(&[100, 300, 600, 1000]) {
                                    out.push(SegmentParams {
                                        threshold,
                                        neg_threshold: if binary {
                                            threshold
                                        } else {
                                            (threshold - gap).max(0.01)
                                        },
                                        smoothing,
                                        trigger,
                                        pad_start,
                                        pad_end,
                                        min_speech,
                                        min_silence,
                                        ..d
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// What `tune` found.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub files: usize,
    pub settings_tried: usize,
    pub before: Counts,
    pub after: Counts,
    pub profile: Profile,
}

pub fn run(args: &TuneArgs) -> anyhow::Result<Outcome> {
    if let Some(f) = args.recall_floor {
        anyhow::ensure!(
            (0.0..=1.0).contains(&f),
            "--recall-floor is a share, 0 to 1"
        );
    }
    let items = load_items(args)?;
    let header = &items[0].1.track.header;
    let engine = header.vad.engine;
    let binary = items.iter().all(|(_, i)| {
        i.track
            .header
            .signals
            .iter()
            .all(|s| s.encoding == track::Encoding::U8)
    });
    let frame = header.vad.frame_duration();
    let mut pred = Vec::new();
    let defaults = SegmentParams::for_engine(engine);
    let before = score(&items, &defaults, &mut pred);
    let candidates: Vec<SegmentParams> = grid(engine, binary)
        .into_iter()
        .filter(|p| p.validate(frame).is_ok())
        .collect();
    let mut best: Option<(SegmentParams, Counts)> = None;
    for p in &candidates {
        let c = score(&items, p, &mut pred);
        if args.recall_floor.is_some_and(|f| c.recall() < f) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, b)| c.f1() > b.f1()) {
            best = Some((*p, c));
        }
    }
    let Some((params, after)) = best else {
        anyhow::bail!(
            "no setting reaches a frame recall of {}",
            args.recall_floor.unwrap_or(0.0)
        );
    };
    let pct = |x: f64| (x * 1000.0).round() / 10.0;
    let profile = Profile {
        vadflow_profile: 1,
        engine,
        segmentation: ProfileSettings::from_params(&params),
        tuned: serde_json::json!({
            "files": items.len(),
            "labelled_seconds": items.iter().map(|(_, i)| i.duration).sum::<f64>(),
            "settings_tried": candidates.len(),
            "recall_floor": args.recall_floor,
            "defaults": {"precision": pct(before.precision()), "recall": pct(before.recall()), "f1": pct(before.f1())},
            "tuned": {"precision": pct(after.precision()), "recall": pct(after.recall()), "f1": pct(after.f1())},
        }),
    };
    let mut json = serde_json::to_vec_pretty(&profile).context("encode the profile")?;
    json.push(b'\n');
    std::fs::write(&args.out, json).with_context(|| format!("write {}", args.out.display()))?;
    Ok(Outcome {
        files: items.len(),
        settings_tried: candidates.len(),
        before,
        after,
        profile,
    })
}
