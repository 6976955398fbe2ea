//! Command-line interface of `worker`. Every flag has an environment fallback.

use crate::audio::Limits;
use crate::audio::pipeline::Params;
use crate::audio::render::Outputs;
use crate::audio::segment::SegmentParams;
use crate::audio::vad::{EngineKind, VadParams};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use vadflow_common::config::{AmqpArgs, parse_duration};
use vadflow_common::s3::S3Args;

#[derive(Debug, Parser)]
#[command(
    name = "worker",
    version,
    about = "vadflow worker: finds the speech in audio jobs from RabbitMQ",
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Local mode: analyse files or directories, no servers needed.
    Vad(LocalArgs),
}

/// Consume jobs (the default command).
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub analysis: AnalysisArgs,

    /// Bucket the results are written to.
    #[arg(long, env = "VADFLOW_RESULTS_BUCKET")]
    pub results_bucket: String,

    /// Key prefix of the results; a job's results go under {prefix}{bucket}/{key}/.
    #[arg(long, env = "VADFLOW_RESULTS_PREFIX", default_value = "vadflow/")]
    pub results_prefix: String,

    /// Jobs processed at once (default: the number of CPUs).
    #[arg(long, env = "VADFLOW_CONCURRENCY")]
    pub concurrency: Option<usize>,

    /// Unacknowledged jobs the broker may send ahead (default: 2 × concurrency).
    #[arg(long, env = "VADFLOW_PREFETCH")]
    pub prefetch: Option<u16>,

    /// Attempts before a transiently failing job is dead-lettered.
    #[arg(long, env = "VADFLOW_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,

    /// On SIGTERM, time allowed for in-flight jobs to finish before they are requeued. Keep it
    /// below the pod's termination grace period.
    #[arg(long, env = "VADFLOW_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// A download stalled longer than this fails the attempt (transiently).
    #[arg(long, env = "VADFLOW_FETCH_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub fetch_idle_timeout: Duration,
}

/// Local mode.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Audio files or directories (walked recursively, filtered by extension).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,

    /// Output directory; results go under {out}/{relative path}/, plus a manifest of done files.
    #[arg(long)]
    pub out: PathBuf,

    /// Files processed at once (default: the number of CPUs).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,

    /// Extensions to include when walking directories (comma-separated).
    #[arg(long, default_value = "wav,wave,flac,mp3,ogg,oga,opus")]
    pub extensions: String,

    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,

    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// How audio is analysed; shared by both modes.
#[derive(Debug, Clone, Args)]
pub struct AnalysisArgs {
    /// VAD engine.
    #[arg(long, env = "VADFLOW_ENGINE", value_enum, default_value = "webrtc")]
    pub engine: EngineKind,

    /// Rate the audio is resampled to for VAD: 8000, 16000, 32000 or 48000.
    #[arg(long, env = "VADFLOW_VAD_RATE", default_value_t = 16_000)]
    pub vad_rate: u32,

    /// WebRTC aggressiveness, 0 to 3.
    #[arg(long, env = "VADFLOW_VAD_MODE", default_value_t = VadParams::default().mode)]
    pub mode: u8,

    /// Frame length in ms: 10, 20 or 30.
    #[arg(long, env = "VADFLOW_FRAME_MS", default_value_t = VadParams::default().frame_ms)]
    pub frame_ms: u32,

    /// Speech score threshold (engines with probabilities).
    #[arg(long, env = "VADFLOW_THRESHOLD")]
    pub threshold: Option<f32>,

    /// Score below which speech ends (hysteresis).
    #[arg(long, env = "VADFLOW_NEG_THRESHOLD")]
    pub neg_threshold: Option<f32>,

    /// Padding added before each segment.
    #[arg(long, env = "VADFLOW_PAD_START", value_parser = parse_duration)]
    pub pad_start: Option<Duration>,

    /// Padding added after each segment.
    #[arg(long, env = "VADFLOW_PAD_END", value_parser = parse_duration)]
    pub pad_end: Option<Duration>,

    /// Shortest segment kept.
    #[arg(long, env = "VADFLOW_MIN_SPEECH", value_parser = parse_duration)]
    pub min_speech: Option<Duration>,

    /// Pauses shorter than this do not end a segment.
    #[arg(long, env = "VADFLOW_MIN_SILENCE", value_parser = parse_duration)]
    pub min_silence: Option<Duration>,

    /// Longest segment, padding included; longer speech is split at its longest pause.
    #[arg(long, env = "VADFLOW_MAX_SEGMENT", value_parser = parse_duration)]
    pub max_segment: Option<Duration>,

    /// Outputs per file (comma-separated): segments.json, segments.rttm, manifest.jsonl,
    /// speech.wav, clips.
    #[arg(
        long,
        env = "VADFLOW_OUTPUTS",
        default_value = "segments.json,segments.rttm,manifest.jsonl,speech.wav"
    )]
    pub outputs: String,

    /// Largest input accepted, in bytes.
    #[arg(long, env = "VADFLOW_MAX_INPUT_BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_input_bytes: u64,

    /// Longest audio accepted.
    #[arg(long, env = "VADFLOW_MAX_DURATION", default_value = "24h", value_parser = parse_duration)]
    pub max_duration: Duration,

    /// Most channels accepted.
    #[arg(long, env = "VADFLOW_MAX_CHANNELS", default_value_t = Limits::default().max_channels)]
    pub max_channels: usize,
}

impl AnalysisArgs {
    /// The validated analysis parameters and output selection; an error names the bad setting.
    pub fn resolve(&self) -> anyhow::Result<(Params, Outputs)> {
        let vad = VadParams {
            engine: self.engine,
            sample_rate: self.vad_rate,
            mode: self.mode,
            frame_ms: self.frame_ms,
        };
        let d = SegmentParams::default();
        let segment = SegmentParams {
            threshold: self.threshold.unwrap_or(d.threshold),
            neg_threshold: self.neg_threshold.unwrap_or(d.neg_threshold),
            pad_start: self.pad_start.unwrap_or(d.pad_start),
            pad_end: self.pad_end.unwrap_or(d.pad_end),
            min_speech: self.min_speech.unwrap_or(d.min_speech),
            min_silence: self.min_silence.unwrap_or(d.min_silence),
            max_segment: self.max_segment.unwrap_or(d.max_segment),
        };
        let params = Params {
            vad,
            segment,
            limits: Limits {
                max_input_bytes: self.max_input_bytes,
                max_duration: self.max_duration,
                max_channels: self.max_channels,
            },
        };
        params
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid analysis settings: {e}"))?;
        let outputs = Outputs::parse(&self.outputs).map_err(anyhow::Error::msg)?;
        Ok((params, outputs))
    }
}
