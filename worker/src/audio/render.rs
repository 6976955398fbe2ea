//! **render**: the per-file outputs, as bytes. Deterministic: the same audio and parameters give
//! byte-identical outputs (no timestamps, no host names), so a redelivered job rewrites identical
//! objects. `docs/segments-schema.md` documents the formats.

use super::chunk::ChunkParams;
use super::pipeline::{Analysis, Params, SourceInfo};
use super::segment::Segment;
use serde::Serialize;
use vadflow_common::wire;

/// Version of the `segments.json` schema.
pub const SCHEMA_VERSION: u32 = 1;

pub const SEGMENTS_JSON: &str = "segments.json";
pub const SEGMENTS_RTTM: &str = "segments.rttm";
pub const MANIFEST_JSONL: &str = "manifest.jsonl";
pub const SPEECH_WAV: &str = "speech.wav";
pub const CHUNKS_JSONL: &str = "chunks.jsonl";
pub const CLIPS_DIR: &str = "clips/";

/// Which outputs a job writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outputs {
    pub json: bool,
    pub rttm: bool,
    pub manifest: bool,
    pub speech: bool,
    pub clips: bool,
    /// `chunks.jsonl`, with `--chunk-max`.
    pub chunks: Option<ChunkParams>,
    /// Scores and levels of each segment and of the file in `segments.json` (on unless
    /// `--segment-scores false`).
    pub scores: bool,
    /// `scores.bin`, the score track (`super::track`), to segment again without the audio.
    pub track: bool,
    /// `shards/NNNNNN.tar`: WebDataset shards of the segments' clips, each at most this many
    /// bytes (`super::shard`).
    pub shards: Option<u64>,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            json: true,
            rttm: true,
            manifest: true,
            speech: true,
            clips: false,
            chunks: None,
            scores: true,
            track: false,
            shards: None,
        }
    }
}

impl Outputs {
    /// Parses a comma-separated list of output names: `segments.json`, `segments.rttm`,
    /// `manifest.jsonl`, `speech.wav`, `clips` (also `json`, `rttm`, `manifest`, `speech`).
    pub fn parse(list: &str) -> Result<Outputs, String> {
        let mut o = Outputs {
            json: false,
            rttm: false,
            manifest: false,
            speech: false,
            clips: false,
            chunks: None,
            scores: true,
            track: false,
            shards: None,
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "segments.json" | "json" => o.json = true,
                "segments.rttm" | "rttm" => o.rttm = true,
                "manifest.jsonl" | "manifest" => o.manifest = true,
                "speech.wav" | "speech" => o.speech = true,
                "clips" => o.clips = true,
                "scores.bin" | "scores" => o.track = true,
                "shards" => o.shards = Some(super::shard::DEFAULT_SHARD_BYTES),
                other => {
                    return Err(format!(
                        "unknown output {other:?}: expected segments.json, segments.rttm, \
                         manifest.jsonl, speech.wav, clips, scores.bin or shards"
                    ));
                }
            }
        }
        if !o.json {
            // segments.json is the record of a finished job: it is always written, last.
            return Err("segments.json cannot be turned off: it marks a job as complete".into());
        }
        Ok(o)
    }

    /// File name of clip `index` (0-based) under the results prefix.
    pub fn clip_name(index: usize) -> String {
        format!("{CLIPS_DIR}{:06}.wav", index + 1)
    }
}

/// The segments as a result event carries them: milliseconds, rounded as in `segments.json`
/// (so `start_ms / 1000` is the document's `start`); `None` beyond
/// [`wire::MAX_EVENT_SEGMENTS`].
pub fn event_segments(analysis: &Analysis) -> Option<Vec<wire::SegmentSpan>> {
    if analysis.segments.len() > wire::MAX_EVENT_SEGMENTS {
        return None;
    }
    let rate = f64::from(analysis.sample_rate);
    let at = |samples: u64| (samples as f64 * 1000.0 / rate).round() as u64;
    Some(
        analysis
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let scores = analysis.segment_scores.get(i).map(|x| {
                    // As segments.json rounds them.
                    let r = |v: f64, d: i32| round_to(v, d) as f32;
                    wire::SegmentScores(
                        r(x.score_mean, 3),
                        r(x.score_min, 3),
                        r(x.rms_dbfs, 2),
                        r(x.peak_dbfs, 2),
                        r(x.clipped, 6),
                        x.snr_db.map(|v| r(v, 2)),
                    )
                });
                wire::SegmentSpan(at(s.start), at(s.end), s.channel, scores)
            })
            .collect(),
    )
}

pub(crate) fn ms(samples: u64, rate: u32) -> f64 {
    // Round to the millisecond so that the text is short and stable.
    (samples as f64 * 1000.0 / f64::from(rate)).round() / 1000.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Serialize)]
struct SegmentsDoc<'a> {
    schema_version: u32,
    generator: &'static str,
    source: SourceDoc<'a>,
    duration: f64,
    sample_rate: u32,
    parameters: ParamsDoc<'a>,
    speech_duration: f64,
    speech_ratio: f64,
    /// Per channel, when channels were analysed separately.
    #[serde(skip_serializing_if = "Option::is_none")]
    channels: Option<Vec<ChannelDoc>>,
    /// The file's levels (with segment scores).
    #[serde(skip_serializing_if = "Option::is_none")]
    levels: Option<LevelsDoc>,
    segments: Vec<SegDoc>,
}

#[derive(Serialize)]
struct LevelsDoc {
    rms_dbfs: Option<f64>,
    peak_dbfs: Option<f64>,
    clipped: f64,
    score_mean: Option<f64>,
    speech_dbfs: Option<f64>,
    noise_dbfs: Option<f64>,
    snr_db: Option<f64>,
}

/// A segment's scores as `segments.json` writes them (rounded, so the text is stable).
#[derive(Serialize)]
pub(crate) struct ScoresDoc {
    score_mean: f64,
    score_min: f64,
    rms_dbfs: f64,
    peak_dbfs: f64,
    clipped: f64,
    snr_db: Option<f64>,
}

impl ScoresDoc {
    pub(crate) fn of(x: &crate::audio::levels::SegmentScores) -> ScoresDoc {
        ScoresDoc {
            score_mean: round_to(x.score_mean, 3),
            score_min: round_to(x.score_min, 3),
            rms_dbfs: db(x.rms_dbfs),
            peak_dbfs: db(x.peak_dbfs),
            clipped: round_to(x.clipped, 6),
            snr_db: x.snr_db.map(db),
        }
    }
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (x * k).round() / k
}

fn db(x: f64) -> f64 {
    round_to(x, 2)
}

#[derive(Serialize)]
struct ChannelDoc {
    channel: u16,
    speech_duration: f64,
    segment_count: usize,
}

#[derive(Serialize)]
struct SourceDoc<'a> {
    uri: &'a str,
    #[serde(flatten)]
    info: &'a SourceInfo,
}

#[derive(Serialize)]
struct ParamsDoc<'a> {
    #[serde(flatten)]
    vad: &'a super::vad::VadParams,
    #[serde(flatten)]
    segment: &'a super::segment::SegmentParams,
}

#[derive(Serialize)]
struct SegDoc {
    start: f64,
    end: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<u16>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    scores: Option<ScoresDoc>,
}

/// `segments.json`.
pub fn segments_json(uri: &str, analysis: &Analysis, params: &Params) -> Vec<u8> {
    let rate = analysis.sample_rate;
    let duration = ms(analysis.total_samples, rate);
    let speech = ms(analysis.speech_samples(), rate);
    let doc = SegmentsDoc {
        schema_version: SCHEMA_VERSION,
        generator: concat!("vadflow ", env!("CARGO_PKG_VERSION")),
        source: SourceDoc {
            uri,
            info: &analysis.source,
        },
        duration,
        sample_rate: rate,
        parameters: ParamsDoc {
            vad: &params.vad,
            segment: &params.segment,
        },
        speech_duration: speech,
        speech_ratio: if duration > 0.0 {
            round3(speech / duration)
        } else {
            0.0
        },
        channels: analysis.separate_channels.then(|| {
            let n = analysis.source.channels.min(usize::from(u16::MAX)) as u16;
            (1..=n)
                .map(|c| {
                    let mine = analysis.segments.iter().filter(|s| s.channel == Some(c));
                    ChannelDoc {
                        channel: c,
                        speech_duration: ms(mine.clone().map(Segment::len).sum(), rate),
                        segment_count: mine.count(),
                    }
                })
                .collect()
        }),
        levels: analysis.levels.map(|l| LevelsDoc {
            rms_dbfs: l.rms_dbfs.map(db),
            peak_dbfs: l.peak_dbfs.map(db),
            clipped: round_to(l.clipped, 6),
            score_mean: l.score_mean.map(|x| round_to(x, 3)),
            speech_dbfs: l.speech_dbfs.map(db),
            noise_dbfs: l.noise_dbfs.map(db),
            snr_db: l.snr_db.map(db),
        }),
        segments: analysis
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| SegDoc {
                start: ms(s.start, rate),
                end: ms(s.end, rate),
                channel: s.channel,
                scores: analysis.segment_scores.get(i).map(ScoresDoc::of),
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The RTTM file id of a source: its file name without extension, whitespace replaced.
pub fn rttm_file_id(uri: &str) -> String {
    let name = uri.rsplit('/').next().unwrap_or(uri);
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    stem.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// `segments.rttm`: one `SPEAKER` line per segment, label `speech`; the channel column is the
/// segment's channel (1-based), 1 for mixed audio.
pub fn segments_rttm(uri: &str, analysis: &Analysis) -> Vec<u8> {
    let id = rttm_file_id(uri);
    let rate = analysis.sample_rate;
    let mut out = String::new();
    for s in &analysis.segments {
        out.push_str(&format!(
            "SPEAKER {id} {} {:.3} {:.3} <NA> <NA> speech <NA> <NA>\n",
            s.channel.unwrap_or(1),
            ms(s.start, rate),
            ms(s.len(), rate)
        ));
    }
    out.into_bytes()
}

pub use super::chunk::chunks_jsonl;

#[derive(Serialize)]
struct ManifestLine<'a> {
    audio_filepath: &'a str,
    offset: f64,
    duration: f64,
    label: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<u16>,
}

/// `manifest.jsonl`: a NeMo-style manifest, one line per segment.
pub fn manifest_jsonl(uri: &str, analysis: &Analysis) -> Vec<u8> {
    let rate = analysis.sample_rate;
    let mut out = Vec::new();
    for s in &analysis.segments {
        let line = ManifestLine {
            audio_filepath: uri,
            offset: ms(s.start, rate),
            duration: ms(s.len(), rate),
            label: "speech",
            channel: s.channel,
        };
        if serde_json::to_writer(&mut out, &line).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::segment::Segment;

    fn analysis() -> Analysis {
        Analysis {
            source: SourceInfo {
                codec: "pcm_s16le".to_owned(),
                sample_rate: 44_100,
                channels: 2,
            },
            sample_rate: 16_000,
            total_samples: 160_000,
            frames: 333,
            speech_frames: 100,
            separate_channels: false,
            segments: vec![
                Segment {
                    start: 8_000,
                    end: 40_000,
                    channel: None,
                },
                Segment {
                    start: 80_000,
                    end: 96_000,
                    channel: None,
                },
            ],
            segment_scores: Vec::new(),
            levels: None,
            frame_len: 480,
            tracks: Vec::new(),
        }
    }

    #[test]
    fn json_has_the_documented_fields_and_is_deterministic() {
        let a = analysis();
        let p = Params::default();
        let bytes = segments_json("s3://b/k.wav", &a, &p);
        assert_eq!(bytes, segments_json("s3://b/k.wav", &a, &p));
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["duration"], 10.0);
        assert_eq!(v["sample_rate"], 16_000);
        assert_eq!(v["source"]["uri"], "s3://b/k.wav");
        assert_eq!(v["source"]["channels"], 2);
        assert_eq!(v["parameters"]["engine"], "webrtc");
        assert_eq!(v["parameters"]["min_silence"], 0.3);
        assert_eq!(v["parameters"]["smoothing"], 0.3);
        assert_eq!(v["segments"][0]["start"], 0.5);
        assert_eq!(v["segments"][1]["end"], 6.0);
        assert_eq!(v["speech_duration"], 3.0);
        assert_eq!(v["speech_ratio"], 0.3);
        assert!(v.get("levels").is_none() && v["segments"][0].get("snr_db").is_none());
    }

    #[test]
    fn scores_are_added_fields_rounded_for_stable_text() {
        let mut a = analysis();
        let s = crate::audio::levels::SegmentScores {
            score_mean: 0.87654,
            score_min: 0.51,
            rms_dbfs: -23.4567,
            peak_dbfs: -3.001,
            clipped: 0.000_012_34,
            snr_db: None,
        };
        a.segment_scores = vec![
            s,
            crate::audio::levels::SegmentScores {
                snr_db: Some(31.4159),
                ..s
            },
        ];
        a.levels = Some(crate::audio::levels::FileLevels {
            rms_dbfs: Some(-30.0),
            snr_db: Some(20.123),
            ..Default::default()
        });
        let v: serde_json::Value =
            serde_json::from_slice(&segments_json("s3://b/k.wav", &a, &Params::default()))
                .expect("json");
        let seg = &v["segments"][0];
        assert_eq!(
            (seg["start"].as_f64(), seg["end"].as_f64()),
            (Some(0.5), Some(2.5))
        );
        assert_eq!(seg["score_mean"], 0.877);
        assert_eq!(seg["rms_dbfs"], -23.46);
        assert_eq!(seg["clipped"], 0.000012);
        assert!(seg["snr_db"].is_null(), "written, as null, when unknown");
        assert_eq!(v["segments"][1]["snr_db"], 31.42);
        assert_eq!(v["levels"]["snr_db"], 20.12);
    }

    #[test]
    fn rttm_and_manifest_have_one_line_per_segment() {
        let a = analysis();
        let rttm = String::from_utf8(segments_rttm("s3://b/dir/my file.wav", &a)).expect("utf8");
        assert_eq!(
            rttm.lines().next(),
            Some("SPEAKER my_file 1 0.500 2.000 <NA> <NA> speech <NA> <NA>")
        );
        assert_eq!(rttm.lines().count(), 2);
        let manifest = String::from_utf8(manifest_jsonl("s3://b/k.wav", &a)).expect("utf8");
        let first: serde_json::Value =
            serde_json::from_str(manifest.lines().next().expect("a line")).expect("json");
        assert_eq!(first["audio_filepath"], "s3://b/k.wav");
        assert_eq!(first["offset"], 0.5);
        assert_eq!(first["duration"], 2.0);
        assert_eq!(first["label"], "speech");
    }

    #[test]
    fn outputs_parse() {
        assert_eq!(
            Outputs::parse("segments.json,rttm").map(|o| (o.rttm, o.speech)),
            Ok((true, false))
        );
        assert!(Outputs::parse("rttm").is_err());
        assert!(Outputs::parse("segments.json,bogus").is_err());
        assert_eq!(Outputs::clip_name(0), "clips/000001.wav");
    }
}
