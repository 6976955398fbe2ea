//! Quality evaluation of vadflow's VAD on the labelled corpus, side by side with the reference
//! (py-webrtcvad's example.py, run in the same invocation). See `bench/eval.sh`.
//!
//! - `generate`: write the corpus (`vadflow_corpus::corpus`);
//! - `evaluate`: frame- and segment-level precision, recall and F1 per noise condition, for
//!   vadflow's segmenter and for the reference, as Markdown tables;
//! - `sweep`: the segmenter settings ranked by overall segment F1 (how the defaults were chosen);
//! - `formats`: every format against the 16 kHz WAV of the same audio.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vadflow_corpus::corpus::{self, CONDITIONS, FORMATS, RATE, timing};
use vadflow_corpus::eval::{Counts, frame_counts, median, segment_match};
use vadflow_worker::audio::pipeline::{Params, Sinks, analyze};
use vadflow_worker::audio::segment::{SegmentParams, Segmenter};
use vadflow_worker::audio::vad::{EngineKind, VadParams};
use vadflow_worker::cli::AnalysisArgs;

mod real;
mod sweep;
use sweep::sweep;

#[derive(Parser)]
#[command(name = "vadflow-eval")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write the labelled corpus.
    Generate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        files: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Skip the per-format files.
        #[arg(long)]
        no_formats: bool,
    },
    /// Evaluate vadflow (with the given settings) and the reference on every condition.
    Evaluate {
        #[arg(long)]
        corpus: PathBuf,
        /// Python with webrtcvad installed (bench/setup-venv.sh prints it).
        #[arg(long)]
        python: PathBuf,
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
    /// Rank segmenter settings by overall segment F1.
    Sweep {
        #[arg(long)]
        corpus: PathBuf,
        /// Python with webrtcvad installed: the reference each setting must not fall below.
        #[arg(long)]
        python: PathBuf,
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Real recordings with human labels (a folder with a labels.json): vadflow's engines and
    /// the references, scored the same way.
    Real {
        /// The folder (../shared/realaudio for the development set).
        #[arg(long)]
        labels: PathBuf,
        /// Python with the references (`bench/setup-venv.sh --real` prints it); without it,
        /// vadflow only.
        #[arg(long)]
        python: Option<PathBuf>,
        /// A further vadflow system: NAME=FLAGS, the flags of `worker vad` (repeatable).
        #[arg(long = "system")]
        systems: Vec<String>,
    },
    /// Every format against the 16 kHz WAV of the same audio.
    Formats {
        #[arg(long)]
        corpus: PathBuf,
        #[command(flatten)]
        analysis: AnalysisArgs,
    },
}

type Truth = BTreeMap<String, Vec<(f64, f64)>>;
/// Reference segments by (file path, mode).
type Reference = BTreeMap<(String, u8), Vec<(f64, f64)>>;

fn load_truth(corpus: &Path) -> anyhow::Result<Truth> {
    let bytes =
        std::fs::read(corpus.join("truth.json")).context("read truth.json (run generate first)")?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Generate {
            out,
            files,
            seed,
            no_formats,
        } => {
            corpus::generate(&out, files, seed, !no_formats)?;
            println!(
                "corpus: {files} files x {} conditions in {}",
                CONDITIONS.len(),
                out.display()
            );
            Ok(())
        }
        Cmd::Evaluate {
            corpus,
            python,
            analysis,
        } => {
            let (params, _) = analysis.resolve()?;
            evaluate(&corpus, &python, &params)
        }
        Cmd::Sweep {
            corpus,
            python,
            top,
        } => sweep(&corpus, &python, top),
        Cmd::Real {
            labels,
            python,
            systems,
        } => real_audio(&labels, python.as_deref(), &systems),
        Cmd::Formats { corpus, analysis } => {
            let (params, _) = analysis.resolve()?;
            formats(&corpus, &params)
        }
    }
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    analysis: AnalysisArgs,
}

/// `worker vad`'s analysis flags, as parameters.
fn params_of(flags: &str) -> anyhow::Result<Params> {
    let argv = std::iter::once("vad").chain(flags.split_whitespace());
    let f = Flags::try_parse_from(argv).with_context(|| format!("flags {flags:?}"))?;
    Ok(f.analysis.resolve()?.0)
}

fn real_audio(dir: &Path, python: Option<&Path>, extra: &[String]) -> anyhow::Result<()> {
    let labels = real::load(dir)?;
    let mut systems: Vec<(String, String)> = ["webrtc", "silero"]
        .iter()
        .map(|e| (format!("vadflow --engine {e}"), format!("--engine {e}")))
        .collect();
    for s in extra {
        let (name, flags) = s.split_once('=').context("--system NAME=FLAGS")?;
        systems.push((name.to_owned(), flags.to_owned()));
    }
    let mut reports = Vec::new();
    for (name, flags) in &systems {
        let out = real::run_vadflow(dir, &labels, &params_of(flags)?)?;
        reports.push((name.clone(), real::report(&labels, &out)));
    }
    if let Some(python) = python {
        let (refs, versions) = real::references(dir, python)?;
        println!("references: {versions}\n");
        for (name, out) in refs {
            reports.push((name, real::report(&labels, &out)));
        }
    }
    let speech: usize = labels
        .files
        .values()
        .filter(|l| !l.speech.is_empty())
        .count();
    println!(
        "{} files ({speech} with speech) in {}\n",
        labels.files.len(),
        dir.display()
    );
    real::print(&reports);
    Ok(())
}

/// Output of one file: segments in seconds, duration, per-frame scores.
struct Run {
    segments: Vec<(f64, f64)>,
    duration: f64,
    scores: Vec<f32>,
}

fn run_file(path: &Path, params: &Params) -> anyhow::Result<Run> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let mut scores = Vec::new();
    let a = analyze(
        Box::new(file),
        ext.as_deref(),
        params,
        None,
        Sinks {
            scores: Some(&mut scores),
            ..Default::default()
        },
    )
    .map_err(|f| anyhow::anyhow!("{}: {f}", path.display()))?;
    let rate = f64::from(a.sample_rate);
    Ok(Run {
        segments: a
            .segments
            .iter()
            .map(|s| (s.start as f64 / rate, s.end as f64 / rate))
            .collect(),
        duration: a.duration_s(),
        scores,
    })
}

/// Runs `f` over `items` on all cores, keeping the order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut slot) = out[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    out.into_iter()
        .map(|m| m.into_inner().ok().flatten().expect("every item ran"))
        .collect()
}

#[derive(Default, Clone, Copy)]
struct Score {
    frame: Counts,
    seg: Counts,
}

impl Score {
    fn add(&mut self, o: Score) {
        self.frame.add(o.frame);
        self.seg.add(o.seg);
    }
}

fn score(truth: &[(f64, f64)], pred: &[(f64, f64)], duration: f64) -> Score {
    Score {
        frame: frame_counts(truth, pred, duration),
        seg: segment_match(truth, pred).0,
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

/// Reference output per (file, mode): segments.
fn reference(python: &Path, files: &[PathBuf], modes: &str) -> anyhow::Result<Reference> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../reference/webrtcvad_example.py");
    let mut out = BTreeMap::new();
    for chunk in files.chunks(64) {
        let o = Command::new(python)
            .arg(&script)
            .args(["--modes", modes])
            .args(chunk)
            .output()
            .with_context(|| format!("run {}", python.display()))?;
        anyhow::ensure!(
            o.status.success(),
            "reference failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for line in o.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line)?;
            let file = v["file"].as_str().unwrap_or_default().to_owned();
            let mode = v["mode"].as_u64().unwrap_or(0) as u8;
            let segs = v["segments"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| (p[0].as_f64().unwrap_or(0.0), p[1].as_f64().unwrap_or(0.0)))
                        .collect()
                })
                .unwrap_or_default();
            out.insert((file, mode), segs);
        }
    }
    Ok(out)
}

fn evaluate(corpus: &Path, python: &Path, params: &Params) -> anyhow::Result<()> {
    let truth = load_truth(corpus)?;
    let ids: Vec<&String> = truth.keys().collect();
    let mode = params.vad.mode.unwrap_or(3);
    let silero = Params {
        vad: VadParams::for_engine(EngineKind::Silero),
        segment: SegmentParams::for_engine(EngineKind::Silero),
        limits: params.limits,
        decoder: params.decoder,
        channels: params.channels,
    };
    println!(
        "Corpus: {} files, {:.1} min of audio per condition. vadflow: engine {}, mode {mode}, frame {} ms, \
         min_silence {:?}, min_speech {:?}, padding {:?}/{:?}; and engine silero with its defaults. \
         Reference: py-webrtcvad example.py (30 ms frames, 300 ms ring, 90 % trigger), same mode, \
         and its best mode per condition.\n",
        ids.len(),
        duration_of(corpus, &ids)? / 60.0,
        params.vad.engine.as_str(),
        params.vad.frame_ms,
        params.segment.min_silence,
        params.segment.min_speech,
        params.segment.pad_start,
        params.segment.pad_end,
    );
    let engine = params.vad.engine.as_str();
    println!(
        "| condition | vadflow {engine} frame P / R / F1 | vadflow {engine} segment P / R / F1 | vadflow silero frame P / R / F1 | vadflow silero segment P / R / F1 | example.py (mode {mode}) frame F1 | example.py (mode {mode}) segment F1 | example.py best mode: segment F1 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let prf = |c: &Counts| {
        format!(
            "{} / {} / {}",
            pct(c.precision()),
            pct(c.recall()),
            pct(c.f1())
        )
    };
    let mut all = [Score::default(); 3];
    for cond in CONDITIONS {
        let files: Vec<PathBuf> = ids
            .iter()
            .map(|id| corpus.join(cond).join(format!("{id}.wav")))
            .collect();
        let runs = parallel(&files, |p| (run_file(p, params), run_file(p, &silero)));
        let refs = reference(python, &files, "0,1,2,3")?;
        let mut ours = Score::default();
        let mut sil = Score::default();
        let mut theirs = [Score::default(); 4];
        for ((id, path), (run, run_silero)) in ids.iter().zip(&files).zip(runs) {
            let (run, run_silero) = (run?, run_silero?);
            let t = &truth[*id];
            ours.add(score(t, &run.segments, run.duration));
            sil.add(score(t, &run_silero.segments, run_silero.duration));
            for (m, s) in theirs.iter_mut().enumerate() {
                let key = (path.display().to_string(), m as u8);
                s.add(score(
                    t,
                    refs.get(&key).map_or(&[][..], |v| v),
                    run.duration,
                ));
            }
        }
        let same = theirs[usize::from(mode.min(3))];
        let best = theirs.iter().map(|s| s.seg.f1()).fold(0.0, f64::max);
        println!(
            "| {cond} | {} | {} | {} | {} | {} | {} | {} |",
            prf(&ours.frame),
            prf(&ours.seg),
            prf(&sil.frame),
            prf(&sil.seg),
            pct(same.frame.f1()),
            pct(same.seg.f1()),
            pct(best),
        );
        all[0].add(ours);
        all[1].add(sil);
        all[2].add(same);
    }
    println!(
        "| **overall** | {} | {} | {} | {} | {} | {} | |",
        prf(&all[0].frame),
        prf(&all[0].seg),
        prf(&all[1].frame),
        prf(&all[1].seg),
        pct(all[2].frame.f1()),
        pct(all[2].seg.f1()),
    );
    Ok(())
}

fn duration_of(corpus: &Path, ids: &[&String]) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for id in ids {
        let len = std::fs::metadata(corpus.join("clean").join(format!("{id}.wav")))?.len();
        total += (len.saturating_sub(44)) as f64 / 2.0 / f64::from(RATE);
    }
    Ok(total)
}

fn formats(corpus: &Path, params: &Params) -> anyhow::Result<()> {
    let truth = load_truth(corpus)?;
    let ids: Vec<&String> = truth.keys().collect();
    let wavs: Vec<PathBuf> = ids
        .iter()
        .map(|id| corpus.join("clean").join(format!("{id}.wav")))
        .collect();
    let base: Vec<Run> = parallel(&wavs, |p| run_file(p, params))
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "| format | files | segment F1 vs 16 kHz WAV | median boundary difference | start (container keeps no delay) | length difference beyond it (max) |"
    );
    println!("|---|---|---|---|---|---|");
    for (suffix, _) in FORMATS {
        let files: Vec<PathBuf> = ids
            .iter()
            .map(|id| corpus.join("formats").join(format!("{id}.{suffix}")))
            .collect();
        let runs = parallel(&files, |p| run_file(p, params));
        let mut counts = Counts::default();
        let mut errors = Vec::new();
        let mut max_dur = 0.0f64;
        let (offset, _) = timing(suffix);
        for (run, b) in runs.into_iter().zip(&base) {
            let run = run?;
            let shifted: Vec<(f64, f64)> = run
                .segments
                .iter()
                .map(|&(s, e)| (s - offset, e - offset))
                .collect();
            let (c, e) = segment_match(&b.segments, &shifted);
            counts.add(c);
            errors.extend(e);
            let extra = run.duration - b.duration - offset;
            if extra.abs() > max_dur.abs() {
                max_dur = extra;
            }
        }
        let start = if offset > 0.0 {
            format!("+{:.1} ms", 1000.0 * offset)
        } else {
            "exact".to_owned()
        };
        println!(
            "| {suffix} | {} | {} | {:.1} ms | {start} | {:+.1} ms |",
            files.len(),
            pct(counts.f1()),
            1000.0 * median(&mut errors),
            1000.0 * max_dur
        );
    }
    Ok(())
}
