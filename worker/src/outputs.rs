//! A file's outputs: run the audio pipeline, **render** every output and hand it to the
//! **store**. [`process`] is the one code path for both modes; only the [`ResultStore`] differs
//! (S3 objects for the worker, files for local mode, memory in tests).
//!
//! `segments.json` is always written last: its presence marks a complete result set.

use crate::audio::pipeline::{self, Analysis, ClipWriter, Params, Sinks, SpeechWriter};
use crate::audio::render::{self, Outputs};
use crate::audio::segment::Segment;
use crate::audio::track;
use crate::events::DecoderWarnings;
use crate::fetch::source::SourceStatus;
use crate::store::ResultStore;
use std::panic::{AssertUnwindSafe, catch_unwind};
use symphonia::core::io::MediaSource;
use vadflow_common::{Failure, Reason, telemetry};

struct Clips<'a> {
    store: &'a mut dyn ResultStore,
}

impl ClipWriter for Clips<'_> {
    fn clip(&mut self, index: usize, _segment: &Segment, wav: Vec<u8>) -> Result<(), Failure> {
        self.store.put(&Outputs::clip_name(index), "audio/wav", wav)
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
            let mut clips = outputs_wanted.clips.then_some(Clips { store: &mut *store });
            let sinks = Sinks {
                speech: speech.as_deref_mut().map(|s| s as &mut dyn SpeechWriter),
                clips: clips.as_mut().map(|c| c as &mut dyn ClipWriter),
                scores: None,
                levels: outputs_wanted.scores,
                track: outputs_wanted.track,
            };
            let _ = telemetry::take_decoder_warnings();
            let analysis = pipeline::analyze(source, extension, params, status, sinks);
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
