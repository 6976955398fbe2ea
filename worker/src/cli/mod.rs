//! Command-line interface of `worker`. Every flag has an environment fallback.

use crate::audio::Limits;
use crate::audio::channels::{ChannelChoice, ChannelMode};
use crate::audio::decoder::{DecoderChoice, DecoderMode};
use crate::audio::ffmpeg;
use crate::audio::pipeline::Params;
use crate::audio::render::Outputs;
use crate::audio::vad::{EngineKind, Precision, VadParams};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use vadflow_common::config::{AmqpArgs, parse_duration};
use vadflow_common::s3::S3Args;

mod segmentation;
pub use segmentation::{ResegmentArgs, SegmentationArgs};

/// `worker [run] [OPTIONS]` consumes jobs; `worker vad FILES... --out DIR` is local mode.
#[derive(Debug, Parser)]
#[command(
    name = "worker",
    version,
    about = "vadflow worker: finds the speech in audio jobs from RabbitMQ, or in local files",
    override_usage = "worker [run] [OPTIONS]\n       worker vad <INPUTS>... --out <OUT> [OPTIONS]\n       worker resegment <TRACKS>... --out <OUT> [OPTIONS]",
    after_help = "With no command, `worker [OPTIONS]` runs `worker run [OPTIONS]`: the \
                  Kubernetes Deployment's form, configured from the environment."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What the command line asks for.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume jobs from RabbitMQ until stopped (the default command).
    Run(Box<RunArgs>),
    /// Local mode, no servers needed: find the speech in local files or directories.
    Vad(Box<LocalArgs>),
    /// Segment stored score tracks (scores.bin) again with other settings, without the audio.
    Resegment(Box<ResegmentArgs>),
    /// Fit segmentation settings to labelled recordings from their score tracks; write a
    /// profile for --profile.
    Tune(Box<crate::tune::TuneArgs>),
    /// Write one HTML page showing a `worker vad` run: outcomes, distributions, timelines.
    Report(Box<crate::report::ReportArgs>),
}

/// Parses the command line. Without a command name, `run` is meant, so that `worker` with
/// flags or environment alone consumes jobs, as it always did.
pub fn parse<I, T>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let named = args.get(1).and_then(|a| a.to_str()).is_some_and(|a| {
        matches!(
            a,
            "run"
                | "vad"
                | "resegment"
                | "tune"
                | "report"
                | "help"
                | "-h"
                | "--help"
                | "-V"
                | "--version"
        )
    });
    if !named {
        args.insert(1.min(args.len()), "run".into());
    }
    Ok(Cli::try_parse_from(args)?.command)
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

    /// Address of the HTTP endpoint serving /healthz, /readyz and /metrics (port 0: any free port).
    #[arg(long, env = "VADFLOW_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: std::net::SocketAddr,

    /// Bucket the results are written to.
    #[arg(long, env = "VADFLOW_RESULTS_BUCKET")]
    pub results_bucket: String,

    /// Key prefix of the results; a job's results go under {prefix}{bucket}/{key}/.
    #[arg(long, env = "VADFLOW_RESULTS_PREFIX", default_value = "vadflow/")]
    pub results_prefix: String,

    /// Jobs processed at once (default: 4 per CPU; jobs mostly wait on storage).
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

    /// This worker's id in logs, dead-letter headers and result events (default: the host name,
    /// the pod's on Kubernetes, and the process id).
    #[arg(long, env = "VADFLOW_WORKER_ID")]
    pub worker_id: Option<String>,

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
    #[arg(long, default_value_t = vadflow_common::keys::AUDIO_EXTENSIONS.join(","))]
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
    /// VAD engine: webrtc (fast; fails in heavy noise, calls music speech), silero (neural;
    /// holds up in noise, rejects music) or auto (silero, helped by WebRTC in quiet rooms: the
    /// best on real recordings, docs/quality.md). Segmentation defaults depend on the engine
    /// (see docs/segments-schema.md).
    #[arg(long, env = "VADFLOW_ENGINE", value_enum, default_value = "webrtc")]
    pub engine: EngineKind,

    /// Rate the audio is resampled to for VAD: 8000, 16000, 32000 or 48000.
    #[arg(long, env = "VADFLOW_VAD_RATE", default_value_t = 16_000)]
    pub vad_rate: u32,

    /// WebRTC aggressiveness, 0 to 3 [webrtc default: 3; not for silero].
    #[arg(long, env = "VADFLOW_VAD_MODE")]
    pub mode: Option<u8>,

    /// Frame length in ms: 10, 20 or 30 [webrtc default: 30; silero: 32 only].
    #[arg(long, env = "VADFLOW_FRAME_MS")]
    pub frame_ms: Option<u32>,

    /// The auto engine's arithmetic: int8 (8-bit products where the CPU has AVX-512 VNNI, about
    /// 1.8x faster; f32 elsewhere) or f32 (on every CPU: the same results everywhere). Both are
    /// measured in docs/quality.md.
    #[arg(
        long,
        env = "VADFLOW_AUTO_PRECISION",
        value_enum,
        default_value = "int8"
    )]
    pub auto_precision: Precision,

    #[command(flatten)]
    pub segmentation: SegmentationArgs,

    /// Outputs per file (comma-separated): segments.json, segments.rttm, manifest.jsonl,
    /// speech.wav, clips.
    #[arg(
        long,
        env = "VADFLOW_OUTPUTS",
        default_value = "segments.json,segments.rttm,manifest.jsonl,speech.wav"
    )]
    pub outputs: String,

    /// Scores and levels of every segment (detector score, RMS and peak level, clipping, SNR)
    /// and of the file in segments.json: true or false.
    #[arg(long, env = "VADFLOW_SEGMENT_SCORES", default_value_t = true, action = clap::ArgAction::Set)]
    pub segment_scores: bool,

    /// With `shards` in --outputs: the largest shard, in bytes (64 KiB to 512 MiB; a shard is
    /// held in memory until full).
    #[arg(long, env = "VADFLOW_SHARD_MAX_BYTES", default_value_t = crate::audio::shard::DEFAULT_SHARD_BYTES)]
    pub shard_max_bytes: u64,

    /// Largest input accepted, in bytes.
    #[arg(long, env = "VADFLOW_MAX_INPUT_BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_input_bytes: u64,

    /// Longest audio accepted.
    #[arg(long, env = "VADFLOW_MAX_DURATION", default_value = "24h", value_parser = parse_duration)]
    pub max_duration: Duration,

    /// Most channels accepted.
    #[arg(long, env = "VADFLOW_MAX_CHANNELS", default_value_t = Limits::default().max_channels)]
    pub max_channels: usize,

    /// Decoders: auto (native; ffmpeg for what they do not decode, when ffmpeg is there),
    /// native (never ffmpeg) or ffmpeg (every file).
    #[arg(long, env = "VADFLOW_DECODER", value_enum, default_value = "auto")]
    pub decoder: DecoderMode,

    /// The ffmpeg program [default: ffmpeg on the PATH, if any].
    #[arg(long, env = "VADFLOW_FFMPEG")]
    pub ffmpeg: Option<PathBuf>,

    /// Channels: mix (average them), separate (one VAD per channel; every segment names its
    /// channel) or auto (separate a 2-channel file whose channels differ, such as a call; mix a
    /// stereo copy of mono).
    #[arg(long, env = "VADFLOW_CHANNELS", value_enum, default_value = "mix")]
    pub channels: ChannelMode,

    /// Most channels analysed separately; a file with more is mixed.
    #[arg(long, env = "VADFLOW_MAX_SEPARATE_CHANNELS", default_value_t = ChannelChoice::default().max_separate)]
    pub max_separate_channels: usize,

    /// ffmpeg is killed after this long on one file.
    #[arg(long, env = "VADFLOW_FFMPEG_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub ffmpeg_timeout: Duration,
}

impl AnalysisArgs {
    /// The validated analysis parameters and output selection; an error names the bad setting.
    pub fn resolve(&self) -> anyhow::Result<(Params, Outputs)> {
        let dv = VadParams::for_engine(self.engine);
        let vad = VadParams {
            engine: self.engine,
            sample_rate: self.vad_rate,
            mode: match self.engine {
                EngineKind::Webrtc => self.mode.or(dv.mode),
                EngineKind::Silero | EngineKind::Auto => self.mode,
            },
            frame_ms: self.frame_ms.unwrap_or(dv.frame_ms),
            precision: self.auto_precision,
        };
        let segment = self.segmentation.segment_params(self.engine)?;
        let params = Params {
            vad,
            segment,
            limits: Limits {
                max_input_bytes: self.max_input_bytes,
                max_duration: self.max_duration,
                max_channels: self.max_channels,
            },
            decoder: DecoderChoice {
                mode: self.decoder,
                // Resolved once per process; the path lives as long as it.
                ffmpeg: match self.decoder {
                    DecoderMode::Native => None,
                    _ => ffmpeg::locate(self.ffmpeg.as_deref())
                        .map_err(anyhow::Error::msg)?
                        .map(|p| &*Box::leak(p.into_boxed_path())),
                },
                ffmpeg_timeout: self.ffmpeg_timeout,
            },
            channels: ChannelChoice {
                mode: self.channels,
                max_separate: self.max_separate_channels,
            },
        };
        params
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid analysis settings: {e}"))?;
        let mut outputs = Outputs::parse(&self.outputs).map_err(anyhow::Error::msg)?;
        outputs.scores = self.segment_scores;
        outputs.chunks = self.segmentation.chunk_params()?;
        if outputs.shards.is_some() {
            use crate::audio::shard::{MAX_SHARD_BYTES, MIN_SHARD_BYTES};
            anyhow::ensure!(
                (MIN_SHARD_BYTES..=MAX_SHARD_BYTES).contains(&self.shard_max_bytes),
                "--shard-max-bytes must be between {MIN_SHARD_BYTES} and {MAX_SHARD_BYTES}"
            );
            outputs.shards = Some(self.shard_max_bytes);
        }
        Ok((params, outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::segment::SegmentParams;
    use clap::CommandFactory;

    #[test]
    fn cli_definitions_are_consistent() {
        Cli::command().debug_assert();
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("vad") && help.contains("run"), "{help}");
    }

    #[test]
    fn local_mode_needs_no_server_settings() {
        let inv = parse(["worker", "vad", "in.wav", "--out", "o"]).expect("parses");
        let Command::Vad(args) = inv else {
            panic!("local mode")
        };
        assert_eq!(args.inputs, [PathBuf::from("in.wav")]);
    }

    #[test]
    fn consuming_needs_the_broker_and_storage() {
        let err = parse(["worker"]).expect_err("settings missing");
        assert!(err.to_string().contains("--amqp-url"), "{err}");
    }

    #[test]
    fn default_analysis_settings_are_valid() {
        let Command::Vad(args) = parse(["worker", "vad", "x", "--out", "o"]).expect("parses")
        else {
            panic!("local mode")
        };
        let (params, outputs) = args.analysis.resolve().expect("valid defaults");
        // The one setting found on the machine: ffmpeg on the PATH, if any.
        let found = ffmpeg::locate(None).expect("no --ffmpeg");
        assert_eq!(
            params.decoder.ffmpeg.map(std::path::Path::to_path_buf),
            found
        );
        let without_ffmpeg = Params {
            decoder: DecoderChoice {
                ffmpeg: None,
                ..params.decoder
            },
            ..params
        };
        assert_eq!(without_ffmpeg, Params::default());
        assert_eq!(outputs, Outputs::default());
    }

    fn local(args: &[&str]) -> anyhow::Result<(Params, Outputs)> {
        let argv = ["worker", "vad", "x", "--out", "o"].iter().chain(args);
        let Command::Vad(local) = parse(argv).expect("parses") else {
            panic!("local mode")
        };
        local.analysis.resolve()
    }

    #[test]
    fn auto_takes_its_own_defaults_and_refuses_webrtc_settings() {
        let (p, _) = local(&["--engine", "auto"]).expect("valid");
        assert_eq!(p.vad, VadParams::for_engine(EngineKind::Auto));
        assert_eq!(p.segment.min_silence, Duration::from_millis(400));
        assert_eq!(p.segment.lookback, Duration::from_secs(1));
        assert!(p.segment.silero_pauses);
        let err = local(&["--engine", "auto", "--mode", "2"]).expect_err("refused");
        assert!(err.to_string().contains("webrtc"), "{err}");
        let err = local(&["--engine", "auto", "--frame-ms", "30"]).expect_err("refused");
        assert!(err.to_string().contains("auto engine"), "{err}");
        let (p, _) = local(&["--engine", "auto", "--auto-precision", "f32"]).expect("valid");
        assert_eq!(p.vad.precision, Precision::F32);
        let argv = [
            "worker",
            "vad",
            "x",
            "--out",
            "o",
            "--auto-precision",
            "f16",
        ];
        let err = parse(argv.iter()).expect_err("an unknown precision is refused");
        assert!(err.to_string().contains("--auto-precision"), "{err}");
    }

    #[test]
    fn silero_takes_its_own_defaults_and_refuses_webrtc_settings() {
        let (p, _) = local(&["--engine", "silero"]).expect("valid");
        assert_eq!(p.vad, VadParams::for_engine(EngineKind::Silero));
        assert_eq!(p.segment, SegmentParams::for_engine(EngineKind::Silero));
        let (p, _) = local(&["--engine", "silero", "--threshold", "0.6"]).expect("valid");
        assert!((p.segment.neg_threshold - 0.45).abs() < 1e-6);
        for bad in [
            &["--engine", "silero", "--mode", "2"][..],
            &["--engine", "silero", "--frame-ms", "30"],
            &["--engine", "silero", "--vad-rate", "8000"],
        ] {
            let err = local(bad).expect_err("refused");
            assert!(
                err.to_string().contains("silero") || err.to_string().contains("webrtc"),
                "{err}"
            );
        }
        let (p, _) = local(&["--threshold", "0.3"]).expect("webrtc threshold alone");
        assert_eq!(p.segment.neg_threshold, 0.3);
    }
}
