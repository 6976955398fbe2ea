//! `worker resegment`: new segments from stored score tracks (`scores.bin`), with other
//! segmentation settings, without fetching or decoding any audio. A track at
//! `{input}/{path}/scores.bin` gives `{out}/{path}/segments.json` and the other outputs that need
//! no audio; the segments are those a full run with the same settings gives.

use crate::audio::pipeline::Params;
use crate::audio::render::{self, Outputs};
use crate::audio::track::{self, SCORES_BIN};
use crate::cli::ResegmentArgs;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Largest track read: 24 hours of f32 scores at 10 ms frames, per channel of a stereo file,
/// with room to spare.
const MAX_TRACK_BYTES: u64 = 256 * 1024 * 1024;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
}

/// Every track under the inputs, with the folder its outputs go to (relative to `--out`).
fn tracks(inputs: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_file() {
            let parent = input.parent().and_then(Path::file_name).unwrap_or_default();
            out.push((input.clone(), PathBuf::from(parent)));
            continue;
        }
        let mut stack = vec![input.clone()];
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().is_some_and(|n| n == SCORES_BIN) {
                    let rel = path
                        .parent()
                        .and_then(|p| p.strip_prefix(input).ok())
                        .unwrap_or(Path::new(""))
                        .to_path_buf();
                    out.push((path, rel));
                }
            }
        }
    }
    out.sort();
    anyhow::ensure!(!out.is_empty(), "no {SCORES_BIN} under {inputs:?}");
    Ok(out)
}

/// Re-segments one track into `dir`.
fn one(path: &Path, dir: &Path, args: &ResegmentArgs, outputs: &Outputs) -> Result<usize, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_TRACK_BYTES {
        return Err(format!("{len} bytes, more than a track can be"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let track = track::decode(&bytes)?;
    let h = &track.header;
    let params = Params {
        vad: h.vad,
        segment: args
            .segmentation
            .segment_params(h.vad.engine)
            .map_err(|e| format!("{e:#}"))?,
        ..Params::default()
    };
    params.segment.validate(h.vad.frame_duration())?;
    let analysis = track::resegment(&track, &params.segment);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let write = |name: &str, bytes: Vec<u8>| {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("write {name}: {e}"))
    };
    if outputs.rttm {
        write(
            render::SEGMENTS_RTTM,
            render::segments_rttm(&h.uri, &analysis),
        )?;
    }
    if outputs.manifest {
        write(
            render::MANIFEST_JSONL,
            render::manifest_jsonl(&h.uri, &analysis),
        )?;
    }
    if let Some(chunking) = &outputs.chunks {
        write(
            render::CHUNKS_JSONL,
            render::chunks_jsonl(&h.uri, &analysis, chunking),
        )?;
    }
    write(
        render::SEGMENTS_JSON,
        render::segments_json(&h.uri, &analysis, &params),
    )?;
    Ok(analysis.segments.len())
}

/// Re-segments every track under `args.inputs`. A track that cannot be read is reported,
/// naming it, and the others go on.
pub fn run(args: &ResegmentArgs) -> anyhow::Result<Report> {
    let mut outputs = Outputs::parse(&args.outputs).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !(outputs.speech || outputs.clips || outputs.track),
        "resegment writes segments.json, segments.rttm and manifest.jsonl: the others need the audio"
    );
    outputs.chunks = args.segmentation.chunk_params()?;
    let found = tracks(&args.inputs)?;
    let mut report = Report {
        total: found.len(),
        ..Report::default()
    };
    for (path, rel) in &found {
        match one(path, &args.out.join(rel), args, &outputs) {
            Ok(segments) => {
                report.done += 1;
                tracing::debug!(track = %path.display(), segments, "re-segmented");
            }
            Err(e) => {
                report.failed += 1;
                tracing::error!(track = %path.display(), error = %e, "cannot re-segment this track");
            }
        }
    }
    Ok(report)
}
