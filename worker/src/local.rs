//! Local mode, `worker vad <files or dirs> --out DIR`: the same pipeline and outputs as the
//! distributed worker, on local files, in parallel across cores, resumable.
//!
//! As in the seed design, worker threads only compute; one writer thread owns the manifest
//! (`{out}/vadflow-manifest.json`) and rewrites it atomically (temp file, then rename) as files
//! complete. A file counts as done once the manifest records it, so an interruption — Ctrl-C or
//! `kill -9` — loses at most the files in flight, and a rerun skips the files already done.

use crate::audio::pipeline::Params;
use crate::audio::render::Outputs;
use crate::cli::LocalArgs;
use crate::outputs::process;
use crate::store::DirStore;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vadflow_common::{Failure, Reason};

/// File name of the manifest in the output directory.
pub const MANIFEST: &str = "vadflow-manifest.json";

/// The record of one finished file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The manifest: finished files by relative path.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub files: BTreeMap<String, Entry>,
}

impl Manifest {
    /// Loads the manifest of `out`, or an empty one. A manifest that cannot be read is an error:
    /// silently starting over could redo days of work.
    pub fn load(out: &Path) -> anyhow::Result<Manifest> {
        let path = out.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "manifest {} is not valid; move it away to start over",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest {
                version: 1,
                files: BTreeMap::new(),
            }),
            Err(e) => Err(e).with_context(|| format!("read manifest {}", path.display())),
        }
    }

    /// Writes the manifest atomically: a temporary file in the same directory, synced, renamed.
    pub fn save(&self, out: &Path) -> anyhow::Result<()> {
        let tmp = out.join(format!(".{MANIFEST}.tmp"));
        {
            let mut f = BufWriter::new(
                File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?,
            );
            serde_json::to_writer(&mut f, self)?;
            f.write_all(b"\n")?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, out.join(MANIFEST)).context("replace manifest")?;
        Ok(())
    }
}

/// A file to analyse: its path and its name relative to the input it was found under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Input {
    pub rel: String,
    pub path: PathBuf,
}

/// Expands files and directories (recursively, by extension) into sorted inputs.
pub fn collect_inputs(inputs: &[PathBuf], extensions: &[String]) -> anyhow::Result<Vec<Input>> {
    let wanted = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
    };
    let mut out = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).with_context(|| format!("{}", input.display()))?;
        if meta.is_file() {
            let name = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Input {
                rel: name,
                path: input.clone(),
            });
            continue;
        }
        for entry in walkdir::WalkDir::new(input)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.with_context(|| format!("walk {}", input.display()))?;
            if entry.file_type().is_file() && wanted(entry.path()) {
                let rel = entry
                    .path()
                    .strip_prefix(input)
                    .unwrap_or(entry.path())
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(Input {
                    rel,
                    path: entry.path().to_path_buf(),
                });
            }
        }
    }
    out.sort();
    for pair in out.windows(2) {
        anyhow::ensure!(
            pair[0].rel != pair[1].rel,
            "two inputs map to the same output {:?}: {} and {}",
            pair[0].rel,
            pair[0].path.display(),
            pair[1].path.display()
        );
    }
    Ok(out)
}

/// Analyses one local file into `dir`.
pub fn analyse_file(path: &Path, dir: &Path, params: &Params, outputs: &Outputs) -> Entry {
    let uri = path.to_string_lossy().into_owned();
    let result = (|| {
        let meta = std::fs::metadata(path)
            .map_err(|e| Failure::new(Reason::ObjectMissing, format!("{uri}: {e}")))?;
        if meta.len() > params.limits.max_input_bytes {
            return Err(Failure::new(
                Reason::LimitExceeded,
                format!(
                    "{uri}: {} bytes, more than the limit of {} bytes",
                    meta.len(),
                    params.limits.max_input_bytes
                ),
            ));
        }
        let file = File::open(path)
            .map_err(|e| Failure::new(Reason::ObjectMissing, format!("{uri}: {e}")))?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let mut store = DirStore {
            dir: dir.to_path_buf(),
        };
        process(
            Box::new(file),
            ext.as_deref(),
            &uri,
            params,
            outputs,
            None,
            &mut store,
        )
        .map_err(|f| {
            if f.message.contains(&uri) {
                f
            } else {
                f.context(&uri)
            }
        })
    })();
    match result {
        Ok(a) => Entry {
            status: "done".into(),
            duration_s: Some(a.duration_s()),
            speech_s: Some(a.speech_s()),
            segments: Some(a.segments.len()),
            reason: None,
            error: None,
        },
        Err(f) => Entry {
            status: "failed".into(),
            duration_s: None,
            speech_s: None,
            segments: None,
            reason: Some(f.reason.as_str().into()),
            error: Some(f.message),
        },
    }
}

/// Summary of a local run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalReport {
    pub total: usize,
    pub skipped: usize,
    pub done: usize,
    pub failed: usize,
    pub interrupted: bool,
}

/// Runs local mode until every file is processed or `shutdown` is cancelled.
pub fn run(args: &LocalArgs, shutdown: &CancellationToken) -> anyhow::Result<LocalReport> {
    let (params, outputs) = args.analysis.resolve()?;
    let extensions: Vec<String> = args
        .extensions
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let inputs = collect_inputs(&args.inputs, &extensions)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let mut manifest = Manifest::load(&args.out)?;
    let todo: Vec<Input> = inputs
        .iter()
        .filter(|i| {
            manifest
                .files
                .get(&i.rel)
                .is_none_or(|e| e.status != "done")
        })
        .cloned()
        .collect();
    let mut report = LocalReport {
        total: inputs.len(),
        skipped: inputs.len() - todo.len(),
        ..Default::default()
    };
    tracing::info!(
        files = inputs.len(),
        already_done = report.skipped,
        to_do = todo.len(),
        "local mode"
    );
    let threads = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256)
        .min(todo.len().max(1));
    let progress = progress_bar(todo.len() as u64, args.no_progress);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(String, Entry)>();

    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (todo, next, params, outputs) = (&todo, &next, &params, &outputs);
            scope.spawn(move || {
                while !shutdown.is_cancelled() {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = todo.get(i) else { break };
                    let dir = args.out.join(&input.rel);
                    let entry = analyse_file(&input.path, &dir, params, outputs);
                    if tx.send((input.rel.clone(), entry)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // The single writer: record results as they come, rewriting the manifest atomically.
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            for (rel, entry) in batch {
                if let Some(p) = &progress {
                    p.inc(1);
                }
                if entry.status == "done" {
                    report.done += 1;
                } else {
                    report.failed += 1;
                    let msg = format!("failed: {}", entry.error.as_deref().unwrap_or(""));
                    match &progress {
                        Some(p) => p.println(msg),
                        None => {
                            tracing::warn!(file = %rel, reason = entry.reason.as_deref().unwrap_or(""), error = entry.error.as_deref().unwrap_or(""), "file failed")
                        }
                    }
                }
                manifest.files.insert(rel, entry);
            }
            manifest.save(&args.out)?;
            tracing::debug!(recorded = manifest.files.len(), "manifest saved");
        }
        Ok(())
    })?;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    report.interrupted =
        shutdown.is_cancelled() && report.done + report.failed + report.skipped < report.total;
    manifest.save(&args.out)?;
    Ok(report)
}

fn progress_bar(len: u64, disabled: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if disabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
