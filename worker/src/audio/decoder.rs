//! The **decode** stage's entry: the front door ([`super::guard`]), then the native decoders
//! ([`super::decode`]) or ffmpeg ([`super::ffmpeg`]), as `--decoder` says.
//!
//! With `auto` (the default), a file the native decoders call unsupported, or whose container
//! they do not recognise, is decoded by ffmpeg when there is one. The bytes the native attempt
//! read are replayed to ffmpeg (a seekable source is rewound instead), so a file streamed from
//! S3 is still downloaded once.

use super::Limits;
use super::decode::{NOT_RECOGNISED, Native};
use super::ffmpeg::{FfmpegDecoder, Input};
use super::guard::{Front, guard};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use symphonia::core::io::MediaSource;
use vadflow_common::{Failure, Reason};

/// Bytes of a one-way stream kept while the native decoders probe it, for a replay to ffmpeg.
const REPLAY_MAX: usize = 1 << 20;

/// Which decoders read the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DecoderMode {
    /// Native; ffmpeg for what they do not decode, when ffmpeg is there.
    #[default]
    Auto,
    /// Native only.
    Native,
    /// ffmpeg for every file.
    Ffmpeg,
}

/// The decoder settings (resolved once, at start-up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecoderChoice {
    pub mode: DecoderMode,
    /// The ffmpeg program, if there is one.
    pub ffmpeg: Option<&'static Path>,
    /// ffmpeg is killed after this long on one file.
    pub ffmpeg_timeout: Duration,
}

impl Default for DecoderChoice {
    fn default() -> Self {
        DecoderChoice {
            mode: DecoderMode::Auto,
            ffmpeg: None,
            ffmpeg_timeout: Duration::from_secs(600),
        }
    }
}

/// A decoder of one file, producing mono samples.
#[derive(Debug)]
pub enum Decoder {
    Native(Native),
    Ffmpeg {
        decoder: FfmpegDecoder,
        frames: u64,
        max_frames: u64,
        /// Why the native decoders did not take the file, when ffmpeg is their fallback.
        native: Option<Failure>,
    },
}

impl Decoder {
    /// Opens `source` with the decoder `choice` picks. `preferred_rate` is the VAD rate (ffmpeg
    /// and Opus decode straight to it). A native decoder keeps 2 to `keep_channels` channels
    /// apart ([`Decoder::out_channels`]); ffmpeg always averages them.
    pub fn open(
        source: Box<dyn MediaSource>,
        extension: Option<&str>,
        limits: &Limits,
        preferred_rate: u32,
        choice: &DecoderChoice,
        keep_channels: usize,
    ) -> Result<Decoder, Failure> {
        let front = guard(source, limits)?;
        let ffmpeg = |input: Box<dyn Read + Send>, seek: bool, program: &Path| {
            start_ffmpeg(input, seek, program, limits, preferred_rate, choice)
        };
        match (choice.mode, choice.ffmpeg) {
            (DecoderMode::Ffmpeg, Some(program)) => {
                let seek = front.needs_seek;
                ffmpeg(Box::new(Upcast(front.source)), seek, program)
            }
            (DecoderMode::Ffmpeg, None) => Err(Failure::new(
                Reason::Internal,
                "--decoder ffmpeg, but no ffmpeg program was found",
            )),
            (DecoderMode::Auto, Some(program)) => {
                let seek = front.needs_seek;
                let rewind = Rewind::new(front.source);
                let attempt = Front {
                    source: Box::new(rewind.handle()),
                    edit: front.edit,
                    needs_seek: seek,
                    unsupported: front.unsupported,
                };
                match contained(|| {
                    Native::open(attempt, extension, limits, preferred_rate, keep_channels)
                }) {
                    Ok(native) => {
                        rewind.stop_recording();
                        Ok(Decoder::Native(native))
                    }
                    Err(f) if ffmpeg_may_decode(&f) => {
                        // What the native attempt logged is not about the decode that counts.
                        let _ = vadflow_common::telemetry::take_decoder_warnings();
                        let replay = rewind.replay().map_err(|why| {
                            Failure::new(f.reason, format!("{}; {why}", f.message))
                        })?;
                        match ffmpeg(replay, seek, program) {
                            Ok(Decoder::Ffmpeg {
                                decoder,
                                frames,
                                max_frames,
                                ..
                            }) => Ok(Decoder::Ffmpeg {
                                decoder,
                                frames,
                                max_frames,
                                native: Some(f),
                            }),
                            other => other.map_err(|e| after_native(Some(&f), e)),
                        }
                    }
                    Err(f) => Err(f),
                }
            }
            (mode, _) => {
                contained(|| Native::open(front, extension, limits, preferred_rate, keep_channels))
                    .map(Decoder::Native)
                    .map_err(|f| with_ffmpeg_hint(f, mode))
            }
        }
    }

    /// Output sample rate.
    pub fn sample_rate(&self) -> u32 {
        match self {
            Decoder::Native(n) => n.sample_rate(),
            Decoder::Ffmpeg { decoder, .. } => decoder.sample_rate(),
        }
    }

    /// Channels of the source, before downmixing.
    pub fn channels(&self) -> usize {
        match self {
            Decoder::Native(n) => n.channels(),
            Decoder::Ffmpeg { decoder, .. } => decoder.source().1,
        }
    }

    /// Channels in the output of [`Decoder::next_block`]: 1, or the source's, interleaved.
    pub fn out_channels(&self) -> usize {
        match self {
            Decoder::Native(n) => n.out_channels(),
            Decoder::Ffmpeg { .. } => 1,
        }
    }

    /// Name of the codec, e.g. `pcm_s16le`, `mp3`, `ffmpeg:gsm_ms`.
    pub fn codec_name(&self) -> String {
        match self {
            Decoder::Native(n) => n.codec_name().to_owned(),
            Decoder::Ffmpeg { decoder, .. } => decoder.source().0,
        }
    }

    /// Appends the next samples (mono, or [`Decoder::out_channels`] interleaved) to `out`;
    /// `false` at the end of the stream.
    pub fn next_block(&mut self, out: &mut Vec<f32>, limits: &Limits) -> Result<bool, Failure> {
        match self {
            Decoder::Native(n) => contained(|| n.next_block(out, limits)),
            Decoder::Ffmpeg {
                decoder,
                frames,
                max_frames,
                native,
            } => {
                let before = out.len();
                let more = decoder
                    .next_block(out)
                    .map_err(|e| after_native(native.as_ref(), e))?;
                *frames += (out.len() - before) as u64;
                if *frames > *max_frames {
                    return Err(super::decode::too_long(limits));
                }
                if !more && *frames == 0 {
                    return Err(Failure::new(
                        Reason::InvalidAudio,
                        "the stream holds no audio samples (ffmpeg decoded nothing)",
                    ));
                }
                Ok(more)
            }
        }
    }
}

/// Runs a call into the native decoding libraries: a panic in them (an arithmetic overflow on a
/// corrupt header, found by fuzzing: `fuzz/regressions/decode/`) is invalid audio, not the end of
/// the job's thread. (Inside the decoder, a panic on one packet only skips that packet.)
fn contained<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Failure::new(
            Reason::InvalidAudio,
            "not decodable audio: the decoding library failed on this file (a panic, caught)",
        ))
    })
}

/// ffmpeg's failure on a file the native decoders refused. A codec they call unsupported stays
/// `unsupported-codec` whatever ffmpeg made of it, so a file's reason does not depend on whether
/// ffmpeg is installed; the message says both.
fn after_native(native: Option<&Failure>, ffmpeg: Failure) -> Failure {
    match native {
        Some(n)
            if n.reason == Reason::UnsupportedCodec
                && matches!(
                    ffmpeg.reason,
                    Reason::InvalidAudio | Reason::UnsupportedCodec
                ) =>
        {
            Failure::new(
                Reason::UnsupportedCodec,
                format!(
                    "{}; ffmpeg could not decode it either: {}",
                    n.message, ffmpeg.message
                ),
            )
        }
        _ => ffmpeg,
    }
}

/// Whether a native failure is one ffmpeg may get past: an unsupported codec, or a container no
/// native demuxer recognises.
fn ffmpeg_may_decode(f: &Failure) -> bool {
    f.reason == Reason::UnsupportedCodec
        || (f.reason == Reason::InvalidAudio && f.message == NOT_RECOGNISED)
}

fn with_ffmpeg_hint(f: Failure, mode: DecoderMode) -> Failure {
    if f.reason != Reason::UnsupportedCodec {
        return f;
    }
    let hint = match mode {
        DecoderMode::Native => "ffmpeg may decode it (--decoder auto)",
        _ => "ffmpeg may decode it: install ffmpeg, or pass --ffmpeg PATH",
    };
    Failure::new(f.reason, format!("{}; {hint}", f.message))
}

fn start_ffmpeg(
    input: Box<dyn Read + Send>,
    needs_seek: bool,
    program: &Path,
    limits: &Limits,
    rate: u32,
    choice: &DecoderChoice,
) -> Result<Decoder, Failure> {
    let input = if needs_seek {
        Input::File(super::spool::spool(input, limits.max_input_bytes)?)
    } else {
        Input::Stream(input)
    };
    let decoder = FfmpegDecoder::start(program, input, rate, choice.ffmpeg_timeout)?;
    Ok(Decoder::Ffmpeg {
        decoder,
        native: None,
        frames: 0,
        max_frames: limits
            .max_duration
            .as_secs()
            .saturating_mul(u64::from(rate)),
    })
}

/// A media source read as a plain reader.
struct Upcast(Box<dyn MediaSource>);

impl Read for Upcast {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

struct RewindState {
    inner: Box<dyn MediaSource>,
    recorded: Vec<u8>,
    recording: bool,
    overflowed: bool,
}

/// Keeps what a one-way source delivers while the native decoders probe it.
struct Rewind(Arc<Mutex<RewindState>>);

/// The reading end handed to the native decoders.
struct RewindHandle(Arc<Mutex<RewindState>>);

impl Rewind {
    fn new(inner: Box<dyn MediaSource>) -> Rewind {
        let recording = !inner.is_seekable();
        Rewind(Arc::new(Mutex::new(RewindState {
            inner,
            recorded: Vec::new(),
            recording,
            overflowed: false,
        })))
    }

    fn handle(&self) -> RewindHandle {
        RewindHandle(self.0.clone())
    }

    fn stop_recording(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.recording = false;
            s.recorded = Vec::new();
        }
    }

    /// The whole source again, from its first byte (the native attempt must be dropped).
    fn replay(self) -> Result<Box<dyn Read + Send>, String> {
        let state = Arc::try_unwrap(self.0)
            .map_err(|_| "the source is still held by the native decoder".to_owned())?
            .into_inner()
            .map_err(|_| "the source's lock is poisoned".to_owned())?;
        let mut inner = state.inner;
        if inner.is_seekable() {
            inner
                .seek(SeekFrom::Start(0))
                .map_err(|e| format!("cannot rewind for ffmpeg: {e}"))?;
            return Ok(Box::new(Upcast(inner)));
        }
        if state.overflowed {
            return Err(format!(
                "the native probe read over {REPLAY_MAX} bytes, too many to replay to ffmpeg"
            ));
        }
        Ok(Box::new(
            io::Cursor::new(state.recorded).chain(Upcast(inner)),
        ))
    }
}

impl RewindHandle {
    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, RewindState>> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("source lock poisoned"))
    }
}

impl Read for RewindHandle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.state()?;
        let n = s.inner.read(buf)?;
        if s.recording {
            if s.recorded.len() + n > REPLAY_MAX {
                s.recording = false;
                s.overflowed = true;
                s.recorded = Vec::new();
            } else {
                s.recorded.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }
}

impl Seek for RewindHandle {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.state()?.inner.seek(to)
    }
}

impl MediaSource for RewindHandle {
    fn is_seekable(&self) -> bool {
        self.state().map(|s| s.inner.is_seekable()).unwrap_or(false)
    }
    fn byte_len(&self) -> Option<u64> {
        self.state().ok().and_then(|s| s.inner.byte_len())
    }
}
