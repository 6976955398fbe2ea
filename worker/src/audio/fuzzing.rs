//! The decoder front end as the `decode` fuzz target drives it, shared with the regression test
//! that replays what fuzzing found (`fuzz/regressions/decode/`), so both read an input the same
//! way: the first byte picks the extension hint (low 4 bits) and whether the rest is read from
//! memory or as a one-way stream, as from S3 (top bit); the rest is the file. Native decoders
//! only: ffmpeg is another program.

use super::Limits;
use super::decoder::{DecoderChoice, DecoderMode};
use super::pipeline::{Analysis, Params, Sinks, analyze};
use std::time::Duration;
use symphonia::core::io::{MediaSource, ReadOnlySource};
use vadflow_common::Failure;

/// Extension hints, by the low 4 bits of the first byte.
pub const HINTS: [&str; 15] = [
    "wav", "flac", "mp3", "ogg", "opus", "m4a", "mp4", "aac", "webm", "mkv", "aiff", "caf", "mp2",
    "mov", "oga",
];

/// Analyses a fuzz input; `None` for an empty one.
pub fn decode_input(data: &[u8]) -> Option<Result<Analysis, Failure>> {
    let (&hint, bytes) = data.split_first()?;
    let extension = HINTS.get(usize::from(hint & 0x0f)).copied();
    let params = Params {
        limits: Limits {
            max_input_bytes: 1 << 20,
            max_duration: Duration::from_secs(600),
            max_channels: 8,
        },
        decoder: DecoderChoice {
            mode: DecoderMode::Native,
            ..DecoderChoice::default()
        },
        ..Params::default()
    };
    let cursor = std::io::Cursor::new(bytes.to_vec());
    let source: Box<dyn MediaSource> = if hint & 0x80 != 0 {
        Box::new(ReadOnlySource::new(cursor))
    } else {
        Box::new(cursor)
    };
    Some(analyze(source, extension, &params, None, Sinks::default()))
}
