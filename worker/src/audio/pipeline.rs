//! The audio pipeline of one file: **decode → resample → vad → segment**, streaming, with the
//! speech-only audio and optional clips rendered as segments become final.
//!
//! This is blocking, CPU-bound code: the worker runs it in `spawn_blocking`, local mode on its
//! own threads.

use super::decoder::{Decoder, DecoderChoice};
use super::resample::Resampler;
use super::segment::{Segment, SegmentParams, Segmenter};
use super::vad::{VadParams, to_i16};
use super::{Limits, wav};
use crate::fetch::source::SourceStatus;
use serde::Serialize;
use std::collections::VecDeque;
use symphonia::core::io::MediaSource;
use vadflow_common::Failure;

/// Everything that shapes the analysis of a file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Params {
    pub vad: VadParams,
    pub segment: SegmentParams,
    pub limits: Limits,
    pub decoder: DecoderChoice,
}

impl Params {
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

/// Receives the speech-only audio, in order, as 16-bit samples at the VAD rate.
pub trait SpeechWriter {
    fn write(&mut self, samples: &[i16]) -> Result<(), Failure>;
}

/// Receives one WAV clip per segment.
pub trait ClipWriter {
    fn clip(&mut self, index: usize, segment: &Segment, wav: Vec<u8>) -> Result<(), Failure>;
}

/// Optional outputs produced while the audio streams through.
#[derive(Default)]
#[allow(missing_debug_implementations)]
pub struct Sinks<'a> {
    pub speech: Option<&'a mut dyn SpeechWriter>,
    pub clips: Option<&'a mut dyn ClipWriter>,
    /// Per-frame engine scores, for evaluation and parity tests (grows with the audio).
    pub scores: Option<&'a mut Vec<f32>>,
}

/// What the source was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: usize,
}

/// The result of analysing one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub source: SourceInfo,
    /// The VAD rate; segment positions are in samples at this rate.
    pub sample_rate: u32,
    pub total_samples: u64,
    pub frames: u64,
    pub speech_frames: u64,
    pub segments: Vec<Segment>,
}

impl Analysis {
    pub fn duration_s(&self) -> f64 {
        self.total_samples as f64 / f64::from(self.sample_rate)
    }
    pub fn speech_samples(&self) -> u64 {
        self.segments.iter().map(Segment::len).sum()
    }
    pub fn speech_s(&self) -> f64 {
        self.speech_samples() as f64 / f64::from(self.sample_rate)
    }
}

/// Recent audio kept for rendering segments, bounded by the segmenter's look-back.
struct Ring {
    base: u64,
    samples: VecDeque<i16>,
}

impl Ring {
    fn range(&self, seg: &Segment) -> (std::collections::vec_deque::Iter<'_, i16>, usize) {
        let from = seg.start.saturating_sub(self.base) as usize;
        let to = (seg.end.saturating_sub(self.base) as usize).min(self.samples.len());
        let from = from.min(to);
        (self.samples.range(from..to), to - from)
    }

    fn trim_before(&mut self, pos: u64) {
        let n = (pos.saturating_sub(self.base) as usize).min(self.samples.len());
        self.samples.drain(..n);
        self.base += n as u64;
    }
}

struct Run<'a, 'b> {
    engine: Box<dyn super::vad::Engine>,
    frame_len: usize,
    /// Frames scored at once (the engine's preference).
    block_frames: usize,
    /// A frame counts as speech at this score.
    threshold: f32,
    block_scores: Vec<f32>,
    segmenter: Segmenter,
    pending: Vec<f32>,
    ring: Option<Ring>,
    sinks: &'a mut Sinks<'b>,
    segments: Vec<Segment>,
    frames: u64,
    speech_frames: u64,
    total: u64,
    sample_rate: u32,
    scratch: Vec<i16>,
}

impl Run<'_, '_> {
    fn feed(&mut self, samples: &[f32]) -> Result<(), Failure> {
        self.total += samples.len() as u64;
        if let Some(ring) = &mut self.ring {
            ring.samples.extend(samples.iter().map(|&x| to_i16(x)));
        }
        self.pending.extend_from_slice(samples);
        self.score_pending(false)
    }

    /// Scores the pending whole frames, in blocks of the engine's size (all of them at the end
    /// of the stream), and segments them.
    fn score_pending(&mut self, end_of_stream: bool) -> Result<(), Failure> {
        let whole = self.pending.len() / self.frame_len;
        let frames = if end_of_stream {
            whole
        } else {
            whole - whole % self.block_frames
        };
        if frames == 0 {
            return Ok(());
        }
        let mut scores = std::mem::take(&mut self.block_scores);
        scores.clear();
        self.engine
            .score_frames(&self.pending[..frames * self.frame_len], &mut scores);
        self.pending.drain(..frames * self.frame_len);
        for &score in &scores {
            self.frames += 1;
            if let Some(sink) = self.sinks.scores.as_deref_mut() {
                sink.push(score);
            }
            if score >= self.threshold {
                self.speech_frames += 1;
            }
            self.segmenter.push(score);
            self.drain_ready()?;
        }
        self.block_scores = scores;
        Ok(())
    }

    fn drain_ready(&mut self) -> Result<(), Failure> {
        let ready: Vec<Segment> = self.segmenter.take_ready().collect();
        for seg in ready {
            if let Some(ring) = &self.ring {
                let (iter, len) = ring.range(&seg);
                self.scratch.clear();
                self.scratch.reserve(len);
                self.scratch.extend(iter);
                if let Some(speech) = self.sinks.speech.as_deref_mut() {
                    speech.write(&self.scratch)?;
                }
                if let Some(clips) = self.sinks.clips.as_deref_mut() {
                    clips.clip(
                        self.segments.len(),
                        &seg,
                        wav::encode(self.sample_rate, &self.scratch),
                    )?;
                }
            }
            self.segments.push(seg);
        }
        if let Some(ring) = &mut self.ring {
            ring.trim_before(self.segmenter.earliest_needed());
        }
        Ok(())
    }
}

/// Analyses one file. `status` is the byte source's status, when the bytes come from a network
/// stream: its failure, if any, is the real cause of a decode error and is reported instead.
pub fn analyze(
    source: Box<dyn MediaSource>,
    extension: Option<&str>,
    params: &Params,
    status: Option<&SourceStatus>,
    mut sinks: Sinks<'_>,
) -> Result<Analysis, Failure> {
    let real_cause = |f: Failure| status.and_then(SourceStatus::failure).unwrap_or(f);
    let rate = params.vad.sample_rate;
    let mut decoder = Decoder::open(source, extension, &params.limits, rate, &params.decoder)
        .map_err(real_cause)?;
    let mut resampler = Resampler::new(decoder.sample_rate(), rate)?;
    let engine = params.vad.engine()?;
    let frame_len = engine.frame_len();
    let block_frames = engine.block_frames().max(1);
    let segmenter = Segmenter::new(&params.segment, rate, frame_len);
    let keep_audio = sinks.speech.is_some() || sinks.clips.is_some();
    let mut run = Run {
        engine,
        frame_len,
        block_frames,
        threshold: params.segment.threshold,
        block_scores: Vec::with_capacity(block_frames),
        segmenter,
        pending: Vec::with_capacity(frame_len * (block_frames + 1)),
        ring: keep_audio.then(|| Ring {
            base: 0,
            samples: VecDeque::new(),
        }),
        sinks: &mut sinks,
        segments: Vec::new(),
        frames: 0,
        speech_frames: 0,
        total: 0,
        sample_rate: rate,
        scratch: Vec::new(),
    };
    let mut block = Vec::new();
    let mut resampled = Vec::new();
    loop {
        block.clear();
        resampled.clear();
        let more = decoder
            .next_block(&mut block, &params.limits)
            .map_err(real_cause)?;
        if more {
            resampler.process(&block, &mut resampled)?;
        } else {
            resampler.finish(&mut resampled)?;
        }
        run.feed(&resampled)?;
        if !more {
            break;
        }
    }
    // A stream that ended early because its source failed is not a complete file.
    if let Some(f) = status.and_then(SourceStatus::failure) {
        return Err(f);
    }
    run.score_pending(true)?;
    run.segmenter.finish(run.total);
    run.drain_ready()?;
    Ok(Analysis {
        source: SourceInfo {
            codec: decoder.codec_name(),
            sample_rate: decoder.sample_rate(),
            channels: decoder.channels(),
        },
        sample_rate: rate,
        total_samples: run.total,
        frames: run.frames,
        speech_frames: run.speech_frames,
        segments: run.segments,
    })
}
