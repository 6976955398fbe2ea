//! The audio engine: **decode → resample → vad → segment → render** (fetch is `crate::fetch`).
//!
//! Each stage is a streaming step with state of bounded size: memory does not grow with the
//! length of the audio. [`pipeline::analyze`] wires them together; the same function serves the
//! distributed worker and local mode.

mod alac;
pub mod channels;
pub mod chunk;
pub mod decode;
pub mod decoder;
pub mod ffmpeg;
pub mod fused;
pub mod fuzzing;
pub mod guard;
pub mod isomp4;
pub mod levels;
mod mp3;
mod opus;
mod packet;
pub mod params;
mod pcm;
pub mod pipeline;
pub mod render;
pub mod resample;
pub mod segment;
pub mod shard;
pub mod silero;
pub mod spool;
pub mod track;
pub mod vad;
pub mod wav;

use std::time::Duration;

/// Input limits. Every value comes from configuration; none is derived from a file's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest input read, in bytes.
    pub max_input_bytes: u64,
    /// Longest audio decoded.
    pub max_duration: Duration,
    /// Most channels accepted.
    pub max_channels: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 4 << 30,
            max_duration: Duration::from_secs(24 * 3600),
            max_channels: 32,
        }
    }
}

/// Lowest and highest source sample rates accepted.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
pub const MAX_SAMPLE_RATE: u32 = 768_000;
