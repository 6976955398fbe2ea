//! **decode** through the `ffmpeg` program, for what the native decoders do not read: WAV with
//! GSM 6.10, G.722 or G.726 (call recorders), AMR, HE-AAC, WMA, AC-3, and the like.
//!
//! The file goes into ffmpeg's standard input, streamed through a pipe, or, for containers that
//! need seeking (MP4 and CAF), as an unlinked spool file ([`super::spool`]) that ffmpeg opens as
//! `/dev/stdin`. Its standard output is mono 32-bit float PCM at the VAD rate. No shell is
//! involved and the arguments are fixed; a watchdog kills ffmpeg at the time limit, and dropping
//! the decoder (the job ends, however it ends) kills it too. Its stderr's last lines are in the
//! error when it fails. The input byte limit applies to what is fed in, the duration limit to
//! what comes out (counted by the caller).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use vadflow_common::{Failure, Reason};

/// Lines of ffmpeg's stderr kept for the error message.
const STDERR_TAIL_LINES: usize = 8;
/// Longest stderr line kept.
const STDERR_LINE_MAX: usize = 300;
/// Bytes read from ffmpeg's stdout at once.
const READ_CHUNK: usize = 64 * 1024;

/// Finds `ffmpeg` on the `PATH`, or checks the given program exists.
pub fn locate(explicit: Option<&Path>) -> Result<Option<PathBuf>, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(Some(p.to_path_buf()))
        } else {
            Err(format!("--ffmpeg {}: no such program", p.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path)
        .map(|dir| dir.join("ffmpeg"))
        .find(|p| p.is_file()))
}

/// What ffmpeg said about its input (the first audio stream of the `Input` section).
#[derive(Debug, Default, Clone)]
struct Probe {
    codec: Option<String>,
    channels: Option<usize>,
}

#[derive(Debug, Default)]
struct Stderr {
    probe: Probe,
    tail: VecDeque<String>,
}

/// A running ffmpeg decode.
pub struct FfmpegDecoder {
    child: Arc<Mutex<Child>>,
    stdout: ChildStdout,
    stderr: Arc<Mutex<Stderr>>,
    stderr_reader: Option<JoinHandle<()>>,
    feeder: Option<JoinHandle<std::io::Result<()>>>,
    /// Dropping it stops the watchdog.
    _watchdog: mpsc::Sender<()>,
    timed_out: Arc<std::sync::atomic::AtomicBool>,
    timeout: Duration,
    buf: Vec<u8>,
    /// Bytes of an incomplete sample carried to the next read.
    carry: Vec<u8>,
    rate: u32,
}

impl std::fmt::Debug for FfmpegDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FfmpegDecoder")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// The input handed to ffmpeg.
#[allow(missing_debug_implementations)]
pub enum Input {
    /// Streamed through a pipe.
    Stream(Box<dyn Read + Send>),
    /// A file ffmpeg may seek in (opened as `/dev/stdin`).
    File(std::fs::File),
}

impl FfmpegDecoder {
    /// Starts `ffmpeg` decoding `input` to mono at `rate`.
    pub fn start(
        program: &Path,
        input: Input,
        rate: u32,
        timeout: Duration,
    ) -> Result<FfmpegDecoder, Failure> {
        let (stdin, url, stream) = match input {
            Input::Stream(r) => (Stdio::piped(), "pipe:0", Some(r)),
            Input::File(f) => (Stdio::from(f), "/dev/stdin", None),
        };
        let rate_arg = rate.to_string();
        let mut child = Command::new(program)
            .args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"])
            .args(["-i", url])
            .args(["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar"])
            .arg(&rate_arg)
            .args(["-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Failure::new(
                    Reason::Internal,
                    format!("cannot start {}: {e}", program.display()),
                )
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Failure::new(
                Reason::Internal,
                "ffmpeg has no stdout/stderr",
            ));
        };
        let feeder = match (stream, child.stdin.take()) {
            (Some(mut r), Some(mut w)) => Some(std::thread::spawn(move || {
                let copied = std::io::copy(&mut r, &mut w).map(|_| ());
                drop(w);
                match copied {
                    // ffmpeg stopped reading (it failed, or needs no more): its status tells.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                }
            })),
            _ => None,
        };
        let state = Arc::new(Mutex::new(Stderr::default()));
        let stderr_reader = {
            let state = state.clone();
            Some(std::thread::spawn(move || read_stderr(stderr, &state)))
        };
        let child = Arc::new(Mutex::new(child));
        let timed_out = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<()>();
        {
            let (child, timed_out) = (child.clone(), timed_out.clone());
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                    timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                    if let Ok(mut c) = child.lock() {
                        let _ = c.kill();
                    }
                }
            });
        }
        Ok(FfmpegDecoder {
            child,
            stdout,
            stderr: state,
            stderr_reader,
            feeder,
            _watchdog: tx,
            timed_out,
            timeout,
            buf: vec![0u8; READ_CHUNK],
            carry: Vec::new(),
            rate,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// The source's codec and channels, as ffmpeg named them (known once decoding started).
    pub fn source(&self) -> (String, usize) {
        let probe = self
            .stderr
            .lock()
            .map(|s| s.probe.clone())
            .unwrap_or_default();
        (
            format!("ffmpeg:{}", probe.codec.as_deref().unwrap_or("unknown")),
            probe.channels.unwrap_or(1),
        )
    }

    /// Appends the next samples to `out`; `false` at the end (after checking ffmpeg's status).
    pub fn next_block(&mut self, out: &mut Vec<f32>) -> Result<bool, Failure> {
        loop {
            let n = match self.stdout.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(invalid(format!("reading ffmpeg's output: {e}"))),
            };
            if n == 0 {
                self.finish()?;
                return Ok(false);
            }
            self.carry.extend_from_slice(&self.buf[..n]);
            let whole = self.carry.len() / 4 * 4;
            out.extend(
                self.carry[..whole]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            self.carry.drain(..whole);
            if whole > 0 {
                return Ok(true);
            }
        }
    }

    fn finish(&mut self) -> Result<(), Failure> {
        let status = self
            .child
            .lock()
            .map_err(|_| Failure::new(Reason::Internal, "ffmpeg handle poisoned"))?
            .wait()
            .map_err(|e| Failure::new(Reason::Internal, format!("waiting for ffmpeg: {e}")))?;
        if let Some(h) = self.stderr_reader.take() {
            let _ = h.join();
        }
        let fed = self.feeder.take().map(|h| h.join());
        if self.timed_out.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Failure::new(
                Reason::Timeout,
                format!(
                    "ffmpeg did not finish within {} s; killed",
                    self.timeout.as_secs()
                ),
            ));
        }
        if let Some(Ok(Err(e))) = fed {
            return Err(invalid(format!("cannot read audio: {e}")));
        }
        if !status.success() {
            let tail = self
                .stderr
                .lock()
                .map(|s| Vec::from(s.tail.clone()).join(" | "))
                .unwrap_or_default();
            let reason = if tail.contains("Decoder (codec") || tail.contains("not supported") {
                Reason::UnsupportedCodec
            } else {
                Reason::InvalidAudio
            };
            return Err(Failure::new(
                reason,
                format!("ffmpeg failed ({status}): {tail}"),
            ));
        }
        Ok(())
    }
}

impl Drop for FfmpegDecoder {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

fn invalid(msg: String) -> Failure {
    Failure::new(Reason::InvalidAudio, msg)
}

fn read_stderr(stderr: impl Read, state: &Mutex<Stderr>) {
    let mut input_section = false;
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Lines are bounded: a longer one is cut (the rest read and dropped).
        match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let Ok(mut s) = state.lock() else { return };
        if text.starts_with("Input #") {
            input_section = true;
        } else if text.starts_with("Output #") || text.starts_with("Stream mapping") {
            input_section = false;
        }
        if input_section
            && s.probe.codec.is_none()
            && let Some(p) = parse_audio_stream(text)
        {
            s.probe = p;
        }
        let kept: String = text.chars().take(STDERR_LINE_MAX).collect();
        if !kept.is_empty() {
            if s.tail.len() == STDERR_TAIL_LINES {
                s.tail.pop_front();
            }
            s.tail.push_back(kept);
        }
    }
}

/// `Stream #0:0: Audio: gsm_ms (1[0][0][0] / 0x0031), 8000 Hz, mono, s16, 13 kb/s` → codec and
/// channels.
fn parse_audio_stream(line: &str) -> Option<Probe> {
    let rest = line.trim_start().strip_prefix("Stream #")?;
    let (_, audio) = rest.split_once("Audio: ")?;
    let codec: String = audio
        .split([' ', ','])
        .next()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    let channels = audio.split(", ").find_map(|part| match part.trim() {
        "mono" => Some(1),
        "stereo" => Some(2),
        "2.1" | "3.0" => Some(3),
        "quad" | "4.0" => Some(4),
        "5.0" | "5.0(side)" => Some(5),
        "5.1" | "5.1(side)" => Some(6),
        "7.1" => Some(8),
        other => other
            .strip_suffix(" channels")
            .and_then(|n| n.parse::<usize>().ok()),
    });
    Some(Probe {
        codec: (!codec.is_empty()).then_some(codec),
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_codec_and_channels_of_the_input_stream() {
        let p = parse_audio_stream(
            "  Stream #0:0: Audio: gsm_ms (1[0][0][0] / 0x0031), 8000 Hz, mono, s16, 13 kb/s",
        )
        .expect("an audio stream");
        assert_eq!((p.codec.as_deref(), p.channels), (Some("gsm_ms"), Some(1)));
        let p = parse_audio_stream(
            "  Stream #0:1(eng): Audio: wmav2 (a[1][0][0] / 0x0161), 44100 Hz, 2 channels, fltp",
        )
        .expect("an audio stream");
        assert_eq!((p.codec.as_deref(), p.channels), (Some("wmav2"), Some(2)));
        assert!(parse_audio_stream("  Stream #0:0: Video: h264").is_none());
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = locate(Some(Path::new("/nonexistent/ffmpeg"))).expect_err("missing");
        assert!(err.contains("/nonexistent/ffmpeg"), "{err}");
    }
}
