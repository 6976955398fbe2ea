//! `worker resegment`: new segments from stored score tracks (`scores.bin`), with other
//! segmentation settings, without fetching or decoding any audio. A track at
//! `{input}/{path}/scores.bin` gives `{out}/{path}/segments.json` and the other outputs that need
//! no audio; the segments are those a full run with the same settings gives.
//!
//! Inputs are local folders, or `s3://bucket/prefix/` (every `scores.bin` under it, as the
//! distributed worker writes them with `--outputs …,scores.bin`), the outputs then going under
//! the `s3://` prefix `--out` names, `--jobs` tracks at a time: a collection re-segmented by one
//! process (or one Kubernetes Job per prefix).

use crate::audio::pipeline::Params;
use crate::audio::render::{self, Outputs};
use crate::audio::track::{self, SCORES_BIN};
use crate::cli::ResegmentArgs;
use anyhow::Context;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use vadflow_common::keys::parse_s3_uri;
use vadflow_common::s3::classify;

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

/// The outputs of one track: (name, content type, bytes), `segments.json` last.
type Rendered = Vec<(&'static str, &'static str, Vec<u8>)>;

/// Re-segments one track's bytes: the pure part, shared by both kinds of input.
fn render_track(bytes: &[u8], args: &ResegmentArgs, outputs: &Outputs) -> Result<Rendered, String> {
    let track = track::decode(bytes)?;
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
    let mut out = Rendered::new();
    if outputs.rttm {
        out.push((
            render::SEGMENTS_RTTM,
            "text/plain",
            render::segments_rttm(&h.uri, &analysis),
        ));
    }
    if outputs.manifest {
        out.push((
            render::MANIFEST_JSONL,
            "application/x-ndjson",
            render::manifest_jsonl(&h.uri, &analysis),
        ));
    }
    if let Some(chunking) = &outputs.chunks {
        out.push((
            render::CHUNKS_JSONL,
            "application/x-ndjson",
            render::chunks_jsonl(&h.uri, &analysis, chunking),
        ));
    }
    out.push((
        render::SEGMENTS_JSON,
        "application/json",
        render::segments_json(&h.uri, &analysis, &params),
    ));
    Ok(out)
}

/// Every track under the local inputs, with the folder its outputs go to (relative to `--out`).
fn local_tracks(inputs: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
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

fn local_one(
    path: &Path,
    dir: &Path,
    args: &ResegmentArgs,
    outputs: &Outputs,
) -> Result<(), String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_TRACK_BYTES {
        return Err(format!("{len} bytes, more than a track can be"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let rendered = render_track(&bytes, args, outputs)?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for (name, _, bytes) in rendered {
        std::fs::write(dir.join(name), bytes).map_err(|e| format!("write {name}: {e}"))?;
    }
    Ok(())
}

fn tally(report: &mut Report, what: &str, result: Result<(), String>) {
    match result {
        Ok(()) => {
            report.done += 1;
            tracing::debug!(track = what, "re-segmented");
        }
        Err(e) => {
            report.failed += 1;
            tracing::error!(track = what, error = %e, "cannot re-segment this track");
        }
    }
}

/// Re-segments every track under `args.inputs`. A track that cannot be read is reported,
/// naming it, and the others go on.
pub async fn run(args: &ResegmentArgs) -> anyhow::Result<Report> {
    let mut outputs = Outputs::parse(&args.outputs).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        !(outputs.speech || outputs.clips || outputs.track || outputs.shards.is_some()),
        "resegment writes segments.json, segments.rttm and manifest.jsonl: the others need the audio"
    );
    outputs.chunks = args.segmentation.chunk_params()?;
    let remote = |p: &PathBuf| p.to_str().is_some_and(|s| s.starts_with("s3://"));
    let out_remote = remote(&args.out);
    anyhow::ensure!(
        args.inputs.iter().all(|i| remote(i) == out_remote),
        "--out and the inputs must all be local, or all s3:// prefixes"
    );
    if out_remote {
        return run_s3(args, &outputs).await;
    }
    let found = local_tracks(&args.inputs)?;
    let mut report = Report {
        total: found.len(),
        ..Report::default()
    };
    for (path, rel) in &found {
        let result = local_one(path, &args.out.join(rel), args, &outputs);
        tally(&mut report, &path.display().to_string(), result);
    }
    Ok(report)
}

/// Reads an object, refusing one larger than a track can be.
async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let what = format!("get s3://{bucket}/{key}");
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(&e, &what).to_string())?;
    if out.content_length().unwrap_or(0) as u64 > MAX_TRACK_BYTES {
        return Err(format!("{what}: more than a track can be"));
    }
    let mut body = out.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.try_next().await.map_err(|e| format!("{what}: {e}"))? {
        if (bytes.len() + chunk.len()) as u64 > MAX_TRACK_BYTES {
            return Err(format!("{what}: more than a track can be"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

async fn run_s3(args: &ResegmentArgs, outputs: &Outputs) -> anyhow::Result<Report> {
    let client = args.s3.client().await?;
    let out = args.out.to_str().unwrap_or_default();
    let (out_bucket, out_prefix) = parse_s3_uri(out)?;
    anyhow::ensure!(
        out_prefix.is_empty() || out_prefix.ends_with('/'),
        "--out {out}: an s3:// prefix ends with /"
    );
    // (bucket, key of the track, key prefix of its outputs)
    let mut found = Vec::new();
    for input in &args.inputs {
        let uri = input.to_str().unwrap_or_default();
        let (bucket, prefix) = parse_s3_uri(uri)?;
        let mut pages = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e, &format!("list {uri}")))?;
            for key in page.contents().iter().filter_map(|o| o.key()) {
                let Some(dir) = key.strip_suffix(SCORES_BIN) else {
                    continue;
                };
                if !(dir.is_empty() || dir.ends_with('/')) {
                    continue;
                }
                let rel = dir.strip_prefix(prefix.as_str()).unwrap_or(dir);
                found.push((bucket.clone(), key.to_owned(), format!("{out_prefix}{rel}")));
            }
        }
    }
    found.sort();
    anyhow::ensure!(!found.is_empty(), "no {SCORES_BIN} under {:?}", args.inputs);
    let mut report = Report {
        total: found.len(),
        ..Report::default()
    };
    let jobs = args.jobs.max(1);
    let results: Vec<(String, Result<(), String>)> =
        futures_util::stream::iter(found.iter().map(|(bucket, key, dest)| {
            let client = &client;
            let out_bucket = &out_bucket;
            async move {
                let result = async {
                    let bytes = get(client, bucket, key).await?;
                    for (name, content_type, body) in render_track(&bytes, args, outputs)? {
                        let dest_key = format!("{dest}{name}");
                        client
                            .put_object()
                            .bucket(out_bucket)
                            .key(&dest_key)
                            .content_type(content_type)
                            .body(body.into())
                            .send()
                            .await
                            .map_err(|e| {
                                classify(&e, &format!("put s3://{out_bucket}/{dest_key}"))
                                    .to_string()
                            })?;
                    }
                    Ok(())
                }
                .await;
                (format!("s3://{bucket}/{key}"), result)
            }
        }))
        .buffer_unordered(jobs)
        .collect()
        .await;
    for (what, result) in results {
        tally(&mut report, &what, result);
    }
    Ok(report)
}
