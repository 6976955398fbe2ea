//! A file's outputs: run the audio pipeline, **render** every output and hand it to the
//! **store**. [`process`] is the one code path for both modes; only the [`ResultStore`] differs
//! (S3 objects for the worker, files for local mode, memory in tests).
//!
//! `segments.json` is always written last: its presence marks a complete result set.

use crate::audio::levels::SegmentScores;
use crate::audio::pipeline::{self, Analysis, ClipWriter, Params, Sinks, SpeechWriter};
use crate::audio::render::{self, Outputs};
use crate::audio::segment::Segment;
use crate::audio::shard::{self, Shards};
use crate::audio::track;
use crate::events::DecoderWarnings;
use crate::fetch::source::SourceStatus;
use crate::store::ResultStore;
use std::panic::{AssertUnwindSafe, catch_unwind};
use symphonia::core::io::MediaSource;
use vadflow_common::{Failure, Reason, telemetry};

/// Where segment clips go: files under `clips/`, samples in `shards/`, or both.
struct Clips<'a> {
    store: &'a mut dyn ResultStore,
    uri: &'a str,
    rate: u32,
    files: bool,
    shards: Option<Shards>,
}

impl Clips<'_> {
    fn put_shard(&mut self, shard: Option<(usize, Vec<u8>)>) -> Result<(), Failure> {
        match shard {
            Some((n, bytes)) => self
                .store
                .put(&shard::shard_name(n), "application/x-tar", bytes),
            None => Ok(()),
        }
    }

    /// Writes the last, partly filled shard.
    fn finish(&mut self) -> Result<(), Failure> {
        let last = self.shards.as_mut().and_then(Shards::finish);
        self.put_shard(last)
    }
}

impl ClipWriter for Clips<'_> {
    fn clip(
        &mut self,
        index: usize,
        segment: &Segment,
        scores: Option<&SegmentScores>,
        wav: Vec<u8>,
    ) -> Result<(), Failure> {
        if let Some(shards) = &mut self.shards {
            let json = shard::sample_json(self.uri, index, segment, self.rate, scores);
            let full = shards.add(&shard::sample_key(self.uri, index), &json, &wav);
            self.put_shard(full)?;
        }
        if self.files {
            self.store
                .put(&Outputs::clip_name(index), "audio/wav", wav)?;
        }
        Ok(())
    }
}

/// Analyses `source` and writes the selected outputs to `store`.
///
/// `uri` names the source in the outputs (`s3://bucket/key` or a path). A panic anywhere in the
/// decoder or pipeline is caught and reported as invalid audio: it never escapes.
pub fn process(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
    uri: &str,
    params: &Params,
    outputs_wanted: &Outputs,
    status: Option<&SourceStatus>,
    store: &mut dyn ResultStore,
) -> Result<Analysis, Failure> {
    let run = AssertUnwindSafe(|| {
        let mut speech = if outputs_wanted.speech {
            Some(store.speech(params.vad.sample_rate)?)
        } else {
            None
        };
        let analysis = {
            let mut clips =
                (outputs_wanted.clips || outputs_wanted.shards.is_some()).then(|| Clips {
                    store: &mut *store,
                    uri,
                    rate: params.vad.sample_rate,
                    files: outputs_wanted.clips,
                    shards: outputs_wanted.shards.map(Shards::new),
                });
            let sinks = Sinks {
                speech: speech.as_deref_mut().map(|s| s as &mut dyn SpeechWriter),
                clips: clips.as_mut().map(|c| c as &mut dyn ClipWriter),
                scores: None,
                levels: outputs_wanted.scores,
                track: outputs_wanted.track,
            };
            let _ = telemetry::take_decoder_warnings();
            let analysis = pipeline::analyze(source, extension, params, status, sinks)
                .and_then(|a| clips.as_mut().map_or(Ok(()), Clips::finish).map(|()| a));
            DecoderWarnings {
                uri,
                warnings: telemetry::take_decoder_warnings(),
            }
            .emit();
            analysis
        };
        let analysis = match analysis {
            Ok(a) => a,
            Err(f) => {
                if let Some(s) = speech {
                    s.abort();
                }
                return Err(f);
            }
        };
        let mut outputs = Vec::new();
        if outputs_wanted.rttm {
            outputs.push((
                render::SEGMENTS_RTTM,
                "text/plain",
                render::segments_rttm(uri, &analysis),
            ));
        }
        if outputs_wanted.manifest {
            outputs.push((
                render::MANIFEST_JSONL,
                "application/x-ndjson",
                render::manifest_jsonl(uri, &analysis),
            ));
        }
        if outputs_wanted.track {
            outputs.push((
                track::SCORES_BIN,
                "application/octet-stream",
                track::encode(uri, &analysis, &params.vad),
            ));
        }
        if let Some(chunking) = &outputs_wanted.chunks {
            outputs.push((
                render::CHUNKS_JSONL,
                "application/x-ndjson",
                render::chunks_jsonl(uri, &analysis, chunking),
            ));
        }
        // speech.wav's last parts and the small outputs go out together; segments.json last.
        std::thread::scope(|scope| {
            let speech = speech.map(|s| scope.spawn(move || s.finish()));
            let small = store.put_all(outputs);
            let speech = match speech {
                Some(h) => h.join().unwrap_or_else(|_| {
                    Err(Failure::new(Reason::Internal, "speech.wav upload panicked"))
                }),
                None => Ok(()),
            };
            small.and(speech)
        })?;
        store.put(
            render::SEGMENTS_JSON,
            "application/json",
            render::segments_json(uri, &analysis, params),
        )?;
        Ok(analysis)
    });
    catch_unwind(run).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Failure::new(
            Reason::InvalidAudio,
            format!("the decoder crashed on this input: {what}"),
        ))
    })
}
