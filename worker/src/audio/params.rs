//! The settings of one analysis, validated once at start-up: engine, segmentation, limits,
//! decoders and channels.

use super::Limits;
use super::channels::ChannelChoice;
use super::decoder::DecoderChoice;
use super::segment::SegmentParams;
use super::vad::VadParams;

/// Everything that shapes the analysis of a file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Params {
    pub vad: VadParams,
    pub segment: SegmentParams,
    pub limits: Limits,
    pub decoder: DecoderChoice,
    pub channels: ChannelChoice,
}

impl Params {
    /// `engine` with its own defaults for the engine and the segmentation, and the default
    /// limits, decoders and channels.
    pub fn for_engine(engine: super::vad::EngineKind) -> Params {
        Params {
            vad: VadParams::for_engine(engine),
            segment: SegmentParams::for_engine(engine),
            ..Params::default()
        }
    }

    /// Validates the whole configuration once, at start-up.
    pub fn validate(&self) -> Result<(), String> {
        self.vad.validate()?;
        self.segment.validate(self.vad.frame_duration())?;
        if self.limits.max_channels == 0 || self.limits.max_input_bytes == 0 {
            return Err("limits must be positive".into());
        }
        if self.decoder.mode == super::decoder::DecoderMode::Ffmpeg && self.decoder.ffmpeg.is_none()
        {
            return Err("--decoder ffmpeg needs ffmpeg on the PATH, or --ffmpeg PATH".into());
        }
        Ok(())
    }
}
