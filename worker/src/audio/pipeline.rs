//! The audio pipeline of one file: **decode → resample → vad → segment**, streaming, with the
//! speech-only audio and optional clips rendered as segments become final.
//!
//! This is blocking, CPU-bound code: the worker runs it in `spawn_blocking`, local mode on its
//! own threads.

use super::channels::{AUTO_WINDOW_S, ChannelMode, same_signal};
use super::decoder::Decoder;
use super::levels::{FileLevels, Levels, SegmentScores, Totals};
use super::resample::Resampler;
use super::segment::{Segment, Segmenter};
use super::vad::to_i16;
use super::wav;
use crate::fetch::source::SourceStatus;
use serde::Serialize;
use std::collections::VecDeque;
use symphonia::core::io::MediaSource;
use vadflow_common::Failure;

pub use super::params::Params;

/// Receives the speech-only audio, in order, as 16-bit samples at the VAD rate.
pub trait SpeechWriter {
    fn write(&mut self, samples: &[i16]) -> Result<(), Failure>;
}

/// Receives one WAV clip per segment, with the segment's scores when they are measured.
pub trait ClipWriter {
    fn clip(
        &mut self,
        index: usize,
        segment: &Segment,
        scores: Option<&SegmentScores>,
        wav: Vec<u8>,
    ) -> Result<(), Failure>;
}

/// Optional outputs produced while the audio streams through.
#[derive(Default)]
#[allow(missing_debug_implementations)]
pub struct Sinks<'a> {
    pub speech: Option<&'a mut dyn SpeechWriter>,
    pub clips: Option<&'a mut dyn ClipWriter>,
    /// Per-frame engine scores, for evaluation and parity tests (grows with the audio).
    pub scores: Option<&'a mut Vec<f32>>,
    /// Measure each segment and the file ([`super::levels`]): `Analysis::segment_scores` and
    /// `Analysis::levels`.
    pub levels: bool,
    /// Keep every signal's frame scores: `Analysis::tracks` (for the score track).
    pub track: bool,
}

/// What the source was.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// The channels were analysed separately: each segment names its channel.
    pub separate_channels: bool,
    pub segments: Vec<Segment>,
    /// Each segment's scores, in the order of `segments` (empty unless `Sinks::levels`).
    pub segment_scores: Vec<SegmentScores>,
    /// The file's figures (with `Sinks::levels`).
    pub levels: Option<FileLevels>,
    /// Samples per VAD frame.
    pub frame_len: u64,
    /// Every analysed signal's frame scores, as the segmenter saw them (with `Sinks::track`;
    /// one byte or four per frame: about 0.1 to 0.5 MB per hour).
    pub tracks: Vec<(Option<u16>, Vec<f32>)>,
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

/// The analysis of one signal (the mix, or one channel): **vad → segment**, and the rendering
/// of its segments as they become final.
struct Run {
    /// The 1-based channel, when channels are analysed separately.
    channel: Option<u16>,
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
    frames: u64,
    speech_frames: u64,
    total: u64,
    sample_rate: u32,
    scratch: Vec<i16>,
    levels: Option<Levels>,
    /// The signal's sums, once finished (with levels).
    totals: Option<Totals>,
    /// Every frame score (with `Sinks::track`).
    track: Option<Vec<f32>>,
}

/// What a run keeps besides its segments.
#[derive(Debug, Clone, Copy)]
struct Keep {
    /// Recent audio, to render speech.wav and clips.
    audio: bool,
    levels: bool,
    track: bool,
}

/// Where every run's results go: the shared sinks and the segment list.
struct Out<'a, 'b> {
    sinks: &'a mut Sinks<'b>,
    segments: Vec<Segment>,
    segment_scores: Vec<SegmentScores>,
}

impl Run {
    fn new(params: &Params, keep: Keep, channel: Option<u16>) -> Result<Run, Failure> {
        let rate = params.vad.sample_rate;
        let engine = params.vad.engine()?;
        let frame_len = engine.frame_len();
        let block_frames = engine.block_frames().max(1);
        Ok(Run {
            channel,
            segmenter: Segmenter::new(&params.segment, rate, frame_len),
            engine,
            frame_len,
            block_frames,
            threshold: params.segment.threshold,
            block_scores: Vec::with_capacity(block_frames),
            pending: Vec::with_capacity(frame_len * (block_frames + 1)),
            ring: keep.audio.then(|| Ring {
                base: 0,
                samples: VecDeque::new(),
            }),
            frames: 0,
            speech_frames: 0,
            total: 0,
            sample_rate: rate,
            scratch: Vec::new(),
            levels: keep
                .levels
                .then(|| Levels::new(rate, frame_len, params.segment.threshold)),
            totals: None,
            track: keep.track.then(Vec::new),
        })
    }

    fn feed(&mut self, samples: &[f32], out: &mut Out<'_, '_>) -> Result<(), Failure> {
        self.total += samples.len() as u64;
        if let Some(ring) = &mut self.ring {
            ring.samples.extend(samples.iter().map(|&x| to_i16(x)));
        }
        self.pending.extend_from_slice(samples);
        self.score_pending(false, out)
    }

    /// Scores the pending whole frames, in blocks of the engine's size (all of them at the end
    /// of the stream), and segments them.
    fn score_pending(&mut self, end_of_stream: bool, out: &mut Out<'_, '_>) -> Result<(), Failure> {
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
        if let Some(levels) = &mut self.levels {
            for (frame, &score) in self.pending.chunks_exact(self.frame_len).zip(&scores) {
                levels.push(frame, score);
            }
        }
        self.pending.drain(..frames * self.frame_len);
        for &score in &scores {
            self.frames += 1;
            // Per-frame scores are kept for the first signal only.
            if self.channel.is_none_or(|c| c == 1)
                && let Some(sink) = out.sinks.scores.as_deref_mut()
            {
                sink.push(score);
            }
            if score >= self.threshold {
                self.speech_frames += 1;
            }
            if let Some(track) = &mut self.track {
                track.push(score);
            }
            self.segmenter.push(score);
            self.drain_ready(out)?;
        }
        self.block_scores = scores;
        Ok(())
    }

    fn finish(&mut self, out: &mut Out<'_, '_>) -> Result<(), Failure> {
        self.score_pending(true, out)?;
        self.segmenter.finish(self.total);
        self.drain_ready(out)?;
        if let Some(levels) = self.levels.take() {
            let (totals, fills) = levels.finish();
            for (i, snr) in fills {
                if let Some(s) = out.segment_scores.get_mut(i) {
                    s.snr_db = snr;
                }
            }
            self.totals = Some(totals);
        }
        Ok(())
    }

    fn drain_ready(&mut self, out: &mut Out<'_, '_>) -> Result<(), Failure> {
        let ready: Vec<Segment> = self.segmenter.take_ready().collect();
        for mut seg in ready {
            seg.channel = self.channel;
            let index = out.segments.len();
            let scores = self.levels.as_mut().map(|l| l.segment(&seg, index));
            if let Some(ring) = &self.ring {
                let (iter, len) = ring.range(&seg);
                self.scratch.clear();
                self.scratch.reserve(len);
                self.scratch.extend(iter);
                if let Some(speech) = out.sinks.speech.as_deref_mut() {
                    speech.write(&self.scratch)?;
                }
                if let Some(clips) = out.sinks.clips.as_deref_mut() {
                    clips.clip(
                        index,
                        &seg,
                        scores.as_ref(),
                        wav::encode(self.sample_rate, &self.scratch),
                    )?;
                }
            }
            out.segment_scores.extend(scores);
            out.segments.push(seg);
        }
        let earliest = self.segmenter.earliest_needed();
        if let Some(ring) = &mut self.ring {
            ring.trim_before(earliest);
        }
        if let Some(levels) = &mut self.levels {
            levels.trim_before(earliest);
        }
        Ok(())
    }
}

/// One decoded channel (or the mix) on its way to the VAD rate.
struct Lane {
    resampler: Resampler,
    block: Vec<f32>,
    resampled: Vec<f32>,
}

/// How the lanes are analysed: not yet known (`auto`, gathering its window), mixed, or one run
/// per lane.
enum Runs {
    Deciding { held: Vec<Vec<f32>> },
    Mixed(Box<Run>),
    Separate(Vec<Run>),
}

impl Runs {
    fn feed(
        &mut self,
        lanes: &[Lane],
        params: &Params,
        keep: Keep,
        out: &mut Out<'_, '_>,
        end: bool,
    ) -> Result<(), Failure> {
        match self {
            Runs::Mixed(run) if lanes.len() == 1 => run.feed(&lanes[0].resampled, out),
            Runs::Mixed(run) => run.feed(&mix(lanes.iter().map(|l| &l.resampled[..])), out),
            Runs::Separate(runs) => {
                for (run, lane) in runs.iter_mut().zip(lanes) {
                    run.feed(&lane.resampled, out)?;
                }
                Ok(())
            }
            Runs::Deciding { held } => {
                for (h, lane) in held.iter_mut().zip(lanes) {
                    h.extend_from_slice(&lane.resampled);
                }
                let window = (AUTO_WINDOW_S * params.vad.sample_rate) as usize;
                if held[0].len() < window && !end {
                    return Ok(());
                }
                let held = std::mem::take(held);
                *self = if same_signal(&held[0], &held[1]) {
                    let mut run = Run::new(params, keep, None)?;
                    run.feed(&mix(held.iter().map(|h| &h[..])), out)?;
                    Runs::Mixed(Box::new(run))
                } else {
                    let mut runs = separate_runs(params, keep, held.len())?;
                    for (run, h) in runs.iter_mut().zip(&held) {
                        run.feed(h, out)?;
                    }
                    Runs::Separate(runs)
                };
                Ok(())
            }
        }
    }

    fn finish(self, out: &mut Out<'_, '_>) -> Result<Vec<Run>, Failure> {
        let mut runs = match self {
            Runs::Mixed(run) => vec![*run],
            Runs::Separate(runs) => runs,
            Runs::Deciding { .. } => Vec::new(),
        };
        for run in &mut runs {
            run.finish(out)?;
        }
        Ok(runs)
    }
}

fn separate_runs(params: &Params, keep: Keep, n: usize) -> Result<Vec<Run>, Failure> {
    (1..=n)
        .map(|c| Run::new(params, keep, Some(c as u16)))
        .collect()
}

/// The average of equally long signals.
fn mix<'a>(signals: impl Iterator<Item = &'a [f32]>) -> Vec<f32> {
    let signals: Vec<&[f32]> = signals.collect();
    let len = signals.iter().map(|s| s.len()).min().unwrap_or(0);
    let scale = 1.0 / signals.len().max(1) as f32;
    (0..len)
        .map(|i| signals.iter().map(|s| s[i]).sum::<f32>() * scale)
        .collect()
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
    let keep_channels = params.channels.keep_channels();
    let mut decoder = Decoder::open(
        source,
        extension,
        &params.limits,
        rate,
        &params.decoder,
        keep_channels,
    )
    .map_err(real_cause)?;
    let width = decoder.out_channels();
    let keep = Keep {
        audio: sinks.speech.is_some() || sinks.clips.is_some(),
        levels: sinks.levels,
        track: sinks.track,
    };
    let mut lanes = (0..width)
        .map(|_| {
            Ok(Lane {
                resampler: Resampler::new(decoder.sample_rate(), rate)?,
                block: Vec::new(),
                resampled: Vec::new(),
            })
        })
        .collect::<Result<Vec<Lane>, Failure>>()?;
    let mut runs = match (width, params.channels.mode) {
        (1, _) | (_, ChannelMode::Mix) => Runs::Mixed(Box::new(Run::new(params, keep, None)?)),
        (2, ChannelMode::Auto) => Runs::Deciding {
            held: vec![Vec::new(); 2],
        },
        _ => Runs::Separate(separate_runs(params, keep, width)?),
    };
    let mut out = Out {
        sinks: &mut sinks,
        segments: Vec::new(),
        segment_scores: Vec::new(),
    };
    let mut block = Vec::new();
    loop {
        block.clear();
        let more = decoder
            .next_block(&mut block, &params.limits)
            .map_err(real_cause)?;
        for (c, lane) in lanes.iter_mut().enumerate() {
            lane.resampled.clear();
            // Mono goes straight from the decoder's block; channels are picked out of it.
            let input = if width == 1 {
                &block
            } else {
                lane.block.clear();
                lane.block
                    .extend(block.iter().skip(c).step_by(width).copied());
                &lane.block
            };
            if more {
                lane.resampler.process(input, &mut lane.resampled)?;
            } else {
                lane.resampler.finish(&mut lane.resampled)?;
            }
        }
        runs.feed(&lanes, params, keep, &mut out, !more)?;
        if !more {
            break;
        }
    }
    // A stream that ended early because its source failed is not a complete file.
    if let Some(f) = status.and_then(SourceStatus::failure) {
        return Err(f);
    }
    let mut runs = runs.finish(&mut out)?;
    Ok(Analysis {
        source: SourceInfo {
            codec: decoder.codec_name(),
            sample_rate: decoder.sample_rate(),
            channels: decoder.channels(),
        },
        sample_rate: rate,
        total_samples: runs.first().map_or(0, |r| r.total),
        frames: runs.iter().map(|r| r.frames).sum(),
        speech_frames: runs.iter().map(|r| r.speech_frames).sum(),
        separate_channels: matches!(runs.first(), Some(r) if r.channel.is_some()),
        segments: out.segments,
        segment_scores: out.segment_scores,
        levels: keep.levels.then(|| {
            let mut all = Totals::default();
            for t in runs.iter().filter_map(|r| r.totals.as_ref()) {
                all.merge(t);
            }
            all.file()
        }),
        frame_len: runs.first().map_or(0, |r| r.frame_len as u64),
        tracks: runs
            .iter_mut()
            .filter_map(|r| Some((r.channel, r.track.take()?)))
            .collect(),
    })
}
