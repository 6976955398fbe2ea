//! The segmentation settings, shared by every command that segments: `run` and `vad` (from the
//! audio) and `resegment` (from a stored score track). Defaults depend on the engine.

use crate::audio::chunk::ChunkParams;
use crate::audio::segment::SegmentParams;
use crate::audio::vad::EngineKind;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use vadflow_common::config::parse_duration;

/// How scores become segments, and segments chunks.
#[derive(Debug, Clone, Args)]
pub struct SegmentationArgs {
    /// A profile written by `worker tune`: its settings replace the engine's defaults (flags
    /// given here still win). It must have been tuned for the engine in use.
    #[arg(long = "profile", id = "segmentation_profile", env = "VADFLOW_PROFILE")]
    pub profile: Option<PathBuf>,

    /// A frame is speech at this score or above [default: 0.5].
    #[arg(long, env = "VADFLOW_THRESHOLD")]
    pub threshold: Option<f32>,

    /// Inside speech, a frame stays speech down to this score (hysteresis) [webrtc default: the
    /// threshold; silero: the threshold − 0.15].
    #[arg(long, env = "VADFLOW_NEG_THRESHOLD")]
    pub neg_threshold: Option<f32>,

    /// Trigger window: speech starts when more than --trigger of the frames in this window are
    /// voiced, and ends when more than --trigger of them are unvoiced (one frame: off).
    #[arg(long, env = "VADFLOW_SMOOTHING", value_parser = parse_duration)]
    pub smoothing: Option<Duration>,

    /// Fraction of the trigger window, see --smoothing.
    #[arg(long, env = "VADFLOW_TRIGGER")]
    pub trigger: Option<f32>,

    /// Padding added before each segment.
    #[arg(long, env = "VADFLOW_PAD_START", value_parser = parse_duration)]
    pub pad_start: Option<Duration>,

    /// Padding added after each segment.
    #[arg(long, env = "VADFLOW_PAD_END", value_parser = parse_duration)]
    pub pad_end: Option<Duration>,

    /// How far a segment's start may reach back over the frames just before it that score at
    /// least the negative threshold (hysteresis at the start; 0: off) [default: off].
    #[arg(long, env = "VADFLOW_LOOKBACK", value_parser = parse_duration)]
    pub lookback: Option<Duration>,

    /// Shortest segment kept.
    #[arg(long, env = "VADFLOW_MIN_SPEECH", value_parser = parse_duration)]
    pub min_speech: Option<Duration>,

    /// Pauses shorter than this do not end a segment.
    #[arg(long, env = "VADFLOW_MIN_SILENCE", value_parser = parse_duration)]
    pub min_silence: Option<Duration>,

    /// Longest segment, padding included; longer speech is split at its longest pause.
    #[arg(long, env = "VADFLOW_MAX_SEGMENT", value_parser = parse_duration)]
    pub max_segment: Option<Duration>,

    /// Also write chunks.jsonl: consecutive segments grouped into ASR-ready chunks of at most
    /// this length, cut at the longest pauses (e.g. 30s for Whisper-style models).
    #[arg(long, env = "VADFLOW_CHUNK_MAX", value_parser = parse_duration)]
    pub chunk_max: Option<Duration>,

    /// With --chunk-max: a chunk shorter than this joins a neighbour when the two fit.
    #[arg(long, env = "VADFLOW_CHUNK_MIN", default_value = "0s", value_parser = parse_duration)]
    pub chunk_min: Duration,
}

impl SegmentationArgs {
    /// The segment parameters for `engine`: its defaults (or the profile's), overridden by what
    /// is set. An error names the profile and what is wrong with it.
    pub fn segment_params(&self, engine: EngineKind) -> anyhow::Result<SegmentParams> {
        let d = match &self.profile {
            Some(path) => crate::tune::Profile::load(path)?
                .segment_params(engine)
                .map_err(|e| anyhow::anyhow!("profile {}: {e}", path.display()))?,
            None => SegmentParams::for_engine(engine),
        };
        let threshold = self.threshold.unwrap_or(d.threshold);
        let neg_default = match (engine, self.threshold) {
            (_, None) => d.neg_threshold,
            (EngineKind::Webrtc, Some(t)) => t,
            (EngineKind::Silero | EngineKind::Auto, Some(t)) => {
                SegmentParams::silero_neg_threshold(t)
            }
        };
        Ok(SegmentParams {
            threshold,
            neg_threshold: self.neg_threshold.unwrap_or(neg_default),
            smoothing: self.smoothing.unwrap_or(d.smoothing),
            trigger: self.trigger.unwrap_or(d.trigger),
            pad_start: self.pad_start.unwrap_or(d.pad_start),
            pad_end: self.pad_end.unwrap_or(d.pad_end),
            min_speech: self.min_speech.unwrap_or(d.min_speech),
            min_silence: self.min_silence.unwrap_or(d.min_silence),
            max_segment: self.max_segment.unwrap_or(d.max_segment),
            silero_pauses: d.silero_pauses,
            lookback: self.lookback.unwrap_or(d.lookback),
        })
    }

    /// The chunking of `chunks.jsonl`, with `--chunk-max`; an error names the bad setting.
    pub fn chunk_params(&self) -> anyhow::Result<Option<ChunkParams>> {
        let Some(max) = self.chunk_max else {
            return Ok(None);
        };
        let chunking = ChunkParams {
            max,
            min: self.chunk_min,
        };
        chunking.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(chunking))
    }
}

/// `worker resegment`: segment stored score tracks again.
#[derive(Debug, Args)]
pub struct ResegmentArgs {
    /// Score tracks (scores.bin, written with --outputs ...,scores.bin), or directories searched
    /// for them (a `worker vad --out` directory, say), or s3://bucket/prefix/ (every scores.bin
    /// under it, as the worker writes them).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,

    /// Output directory, or s3://bucket/prefix/ with s3:// inputs; a track at
    /// {input}/{path}/scores.bin gives {out}/{path}/.
    #[arg(long)]
    pub out: PathBuf,

    /// Outputs per track (comma-separated): segments.json, segments.rttm, manifest.jsonl (what
    /// needs no audio).
    #[arg(long, default_value = "segments.json,segments.rttm,manifest.jsonl")]
    pub outputs: String,

    /// Tracks re-segmented at once, with s3:// inputs.
    #[arg(long, short = 'j', default_value_t = 16)]
    pub jobs: usize,

    #[command(flatten)]
    pub segmentation: SegmentationArgs,

    /// Object storage, for s3:// inputs and --out.
    #[command(flatten)]
    pub s3: vadflow_common::s3::S3Args,
}
