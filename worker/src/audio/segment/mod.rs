//! **segment**: per-frame speech scores to speech segments, online.
//!
//! Rules, in order:
//! 1. A frame is voiced when its score is at least `threshold`, or, while inside speech, at least
//!    `neg_threshold` (hysteresis; for WebRTC's 0/1 scores both are 0.5).
//! 2. Speech starts when more than `trigger` of the frames in the last `smoothing` window are
//!    voiced — at the first voiced frame of that window — and ends when more than `trigger` of
//!    them are unvoiced, at the last voiced frame. Isolated voiced frames (noise) never start
//!    speech. A window of one frame turns this off.
//! 3. Speech separated by less than `min_silence` is one segment (short pauses merge).
//! 4. Segments shorter than `min_speech` are dropped.
//! 5. Segments are padded by `pad_start` and `pad_end`, never overlapping the previous segment.
//! 6. A segment longer than `max_segment` (padding included) is split at its longest internal
//!    pause, not mid-word; only speech without any pause is cut at the limit.
//!
//! Segments are emitted as soon as they are final, so the state is bounded by `max_segment`,
//! whatever the length of the audio.

use serde::Serialize;
use std::time::Duration;

/// A speech segment, in samples at the VAD rate, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub start: u64,
    pub end: u64,
    /// The 1-based channel, when channels are analysed separately.
    pub channel: Option<u16>,
}

impl Segment {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Segmenter settings. See the module documentation for their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SegmentParams {
    pub threshold: f32,
    pub neg_threshold: f32,
    #[serde(serialize_with = "secs")]
    pub smoothing: Duration,
    pub trigger: f32,
    #[serde(serialize_with = "secs")]
    pub pad_start: Duration,
    #[serde(serialize_with = "secs")]
    pub pad_end: Duration,
    #[serde(serialize_with = "secs")]
    pub min_speech: Duration,
    #[serde(serialize_with = "secs")]
    pub min_silence: Duration,
    #[serde(serialize_with = "secs")]
    pub max_segment: Duration,
    /// silero-vad's pause rules (`get_speech_timestamps`): a pause is measured up to the start
    /// of the frame being scored, not its end (so it ends speech one frame later), and only a
    /// frame below `neg_threshold` can end speech. Implied by the engine, so not written to
    /// `segments.json`.
    #[serde(skip)]
    pub silero_pauses: bool,
    /// How far a segment's start may reach back over the frames just before it that score at
    /// least `neg_threshold`: hysteresis at the start as at the end (0: off). Soft onsets, which
    /// score low until the voice is well under way, then start where they begin.
    #[serde(serialize_with = "secs", skip_serializing_if = "Duration::is_zero")]
    pub lookback: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for SegmentParams {
    fn default() -> Self {
        SegmentParams {
            threshold: 0.5,
            neg_threshold: 0.5,
            smoothing: Duration::from_millis(300),
            trigger: 0.5,
            pad_start: Duration::from_millis(60),
            pad_end: Duration::from_millis(60),
            min_speech: Duration::from_millis(150),
            min_silence: Duration::from_millis(300),
            max_segment: Duration::from_secs(30),
            silero_pauses: false,
            lookback: Duration::ZERO,
        }
    }
}

/// Longest `max_segment` accepted: it bounds the audio a job keeps in memory.
pub const MAX_SEGMENT_LIMIT: Duration = Duration::from_secs(120);

/// Silero's speech threshold (its authors' default).
pub const SILERO_THRESHOLD: f32 = 0.5;

impl SegmentParams {
    /// The engine's default settings. WebRTC's were chosen by measurement on a labelled corpus
    /// (`vadflow-eval sweep`); Silero's are its authors' (`get_speech_timestamps`): threshold
    /// 0.5 with a negative threshold 0.15 below it, no trigger window, 250 ms minimum speech,
    /// 100 ms minimum silence, 30 ms padding.
    pub fn for_engine(engine: super::vad::EngineKind) -> SegmentParams {
        match engine {
            super::vad::EngineKind::Webrtc => SegmentParams::default(),
            super::vad::EngineKind::Silero => SegmentParams {
                threshold: SILERO_THRESHOLD,
                neg_threshold: SegmentParams::silero_neg_threshold(SILERO_THRESHOLD),
                smoothing: Duration::ZERO,
                trigger: 0.5,
                pad_start: Duration::from_millis(30),
                pad_end: Duration::from_millis(30),
                min_speech: Duration::from_millis(250),
                min_silence: Duration::from_millis(100),
                max_segment: Duration::from_secs(30),
                silero_pauses: true,
                lookback: Duration::ZERO,
            },
            // Silero's rules with a longer minimum silence and a 1 s lookback, chosen on the
            // real-audio development set and the synthetic corpus together (docs/quality.md).
            super::vad::EngineKind::Auto => SegmentParams {
                min_silence: Duration::from_millis(400),
                lookback: Duration::from_secs(1),
                ..SegmentParams::for_engine(super::vad::EngineKind::Silero)
            },
        }
    }

    /// Silero's rule for the negative threshold: 0.15 below the threshold, at least 0.01.
    pub const fn silero_neg_threshold(threshold: f32) -> f32 {
        (threshold - 0.15).max(0.01)
    }

    pub fn validate(&self, frame: Duration) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold) || !(0.0..=1.0).contains(&self.neg_threshold) {
            return Err("thresholds must be between 0 and 1".into());
        }
        if self.neg_threshold > self.threshold {
            return Err("the negative threshold must not exceed the threshold".into());
        }
        if !(0.0..1.0).contains(&self.trigger) {
            return Err("trigger must be at least 0 and below 1".into());
        }
        if self.smoothing > Duration::from_secs(2) {
            return Err("smoothing window must be at most 2 s".into());
        }
        if self.max_segment > MAX_SEGMENT_LIMIT {
            return Err(format!(
                "max segment {:?} exceeds the limit of {:?}",
                self.max_segment, MAX_SEGMENT_LIMIT
            ));
        }
        if self.max_segment < self.pad_start + self.pad_end + frame * 2 {
            return Err("max segment must exceed the padding by at least two frames".into());
        }
        if self.pad_start > Duration::from_secs(5) || self.pad_end > Duration::from_secs(5) {
            return Err("padding must be at most 5 s".into());
        }
        if self.lookback > Duration::from_secs(5) {
            return Err("lookback must be at most 5 s".into());
        }
        if self.min_silence > Duration::from_secs(30) {
            return Err("min silence must be at most 30 s".into());
        }
        Ok(())
    }
}

/// The online segmenter.
#[derive(Debug)]
pub struct Segmenter {
    frame: u64,
    threshold: f32,
    neg_threshold: f32,
    pad_start: u64,
    pad_end: u64,
    min_speech: u64,
    /// A segment closes after this much silence: max(min_silence (+ a frame), pad_end).
    close_after: u64,
    silero_pauses: bool,
    /// Longest reach back of a segment's start, in samples, and where the current run of frames
    /// at or above the negative threshold began (while no speech is triggered).
    lookback: u64,
    weak_since: Option<u64>,
    /// Longest unpadded span of a segment.
    max_span: u64,
    pos: u64,
    /// The trigger window: (frame start, voiced) of the last frames, and how many are voiced.
    window: std::collections::VecDeque<(u64, bool)>,
    window_len: usize,
    window_voiced: usize,
    trigger: f32,
    triggered: bool,
    open: Option<Open>,
    last_end: u64,
    ready: Vec<Segment>,
}

#[derive(Debug)]
struct Open {
    start: u64,
    end: u64,
    /// Internal pauses (start, end), in order.
    pauses: Vec<(u64, u64)>,
}

fn samples(d: Duration, rate: u32) -> u64 {
    (d.as_secs_f64() * f64::from(rate)).round() as u64
}

impl Segmenter {
    pub fn new(params: &SegmentParams, rate: u32, frame_len: usize) -> Segmenter {
        let frame = frame_len as u64;
        let pad_start = samples(params.pad_start, rate);
        let pad_end = samples(params.pad_end, rate);
        Segmenter {
            frame,
            threshold: params.threshold,
            neg_threshold: params.neg_threshold,
            pad_start,
            pad_end,
            min_speech: samples(params.min_speech, rate),
            close_after: (samples(params.min_silence, rate)
                + if params.silero_pauses { frame } else { 0 })
            .max(pad_end)
            .max(1),
            silero_pauses: params.silero_pauses,
            lookback: samples(params.lookback, rate),
            weak_since: None,
            max_span: samples(params.max_segment, rate)
                .saturating_sub(pad_start + pad_end)
                .max(frame),
            pos: 0,
            window: std::collections::VecDeque::new(),
            window_len: ((samples(params.smoothing, rate) + frame / 2) / frame).max(1) as usize,
            window_voiced: 0,
            trigger: params.trigger,
            triggered: false,
            open: None,
            last_end: 0,
            ready: Vec::new(),
        }
    }

    /// Samples the segmenter may still need from the past (for rendering speech audio):
    /// everything before this position is final.
    pub fn earliest_needed(&self) -> u64 {
        let front = self.window.front().map_or(self.pos, |w| w.0);
        let mut from = front;
        if let Some(o) = &self.open {
            from = from.min(o.start);
        }
        // A start found in the window may still reach back over the soft frames before it.
        if let Some(w) = self.weak_since {
            from = from.min(w.max(front.saturating_sub(self.lookback)));
        }
        from.saturating_sub(self.pad_start).max(self.last_end)
    }

    /// Feeds the score of the next frame.
    pub fn push(&mut self, score: f32) {
        let voiced = score >= self.threshold || (self.triggered && score >= self.neg_threshold);
        let frame_start = self.pos;
        let frame_end = self.pos + self.frame;
        self.pos = frame_end;
        self.window.push_back((frame_start, voiced));
        self.window_voiced += usize::from(voiced);
        if self.window.len() > self.window_len
            && let Some((_, v)) = self.window.pop_front()
        {
            self.window_voiced -= usize::from(v);
        }
        let limit = self.trigger * self.window_len as f32;
        let mut extended = false;
        if !self.triggered {
            if self.lookback > 0 {
                self.weak_since =
                    (score >= self.neg_threshold).then(|| self.weak_since.unwrap_or(frame_start));
            }
            if self.window_voiced as f32 > limit {
                // Speech starts at the first voiced frame of the window, or, with a lookback,
                // where the run of frames above the negative threshold before it began.
                let mut start = self
                    .window
                    .iter()
                    .find(|w| w.1)
                    .map_or(frame_start, |w| w.0);
                if let Some(w) = self.weak_since.take() {
                    start = start.min(w.max(start.saturating_sub(self.lookback)));
                }
                self.triggered = true;
                self.clear_window();
                self.speech(start, frame_end);
                extended = true;
            }
        } else {
            if voiced {
                self.speech(frame_start, frame_end);
                extended = true;
            }
            let unvoiced = self.window.len() - self.window_voiced;
            if unvoiced as f32 > limit {
                self.triggered = false;
                self.clear_window();
            }
        }
        if !extended
            && (!self.silero_pauses || score < self.neg_threshold)
            && let Some(open) = &self.open
            && frame_end - open.end >= self.close_after
        {
            self.close(frame_end);
        }
    }

    fn clear_window(&mut self) {
        self.window.clear();
        self.window_voiced = 0;
    }

    /// Speech from `start` to `end`: opens a segment or extends the open one.
    fn speech(&mut self, start: u64, end: u64) {
        match &mut self.open {
            None => {
                self.open = Some(Open {
                    start,
                    end,
                    pauses: Vec::new(),
                });
            }
            Some(open) => {
                if start > open.end {
                    open.pauses.push((open.end, start));
                }
                open.end = open.end.max(end);
            }
        }
        self.split_long();
    }

    /// Ends the stream at `total` samples and closes any open segment. Under silero-vad's rules
    /// (`get_speech_timestamps`), speech still open when the audio ends (a pause shorter than
    /// the minimum silence included) runs to the end of the audio; otherwise it ends with its last
    /// speech frame and padding, as py-webrtcvad's example.py ends it.
    pub fn finish(&mut self, total: u64) {
        self.pos = self.pos.max(total);
        if self.silero_pauses
            && let Some(open) = self.open.as_mut()
        {
            open.end = open.end.max(total);
            self.split_long();
        }
        if self.open.is_some() {
            self.close(total);
        }
    }

    /// Segments that became final since the last call.
    pub fn take_ready(&mut self) -> std::vec::Drain<'_, Segment> {
        self.ready.drain(..)
    }

    fn close(&mut self, limit: u64) {
        let Some(open) = self.open.take() else { return };
        if open.end - open.start >= self.min_speech {
            self.emit(open.start, open.end, limit);
        }
    }

    /// Emits [start, end) with padding; the padded end never passes `limit`.
    fn emit(&mut self, start: u64, end: u64, limit: u64) {
        let s = start.saturating_sub(self.pad_start).max(self.last_end);
        let e = (end + self.pad_end).min(limit).max(s);
        if e > s {
            self.ready.push(Segment {
                start: s,
                end: e,
                channel: None,
            });
            self.last_end = e;
        }
    }

    fn split_long(&mut self) {
        while let Some(open) = self.open.as_mut() {
            if open.end - open.start <= self.max_span {
                return;
            }
            let limit = open.start + self.max_span;
            // The longest pause that leaves a first part within the limit; later wins ties.
            let best = open
                .pauses
                .iter()
                .enumerate()
                .filter(|(_, p)| p.0 <= limit)
                .max_by_key(|(i, p)| (p.1 - p.0, *i))
                .map(|(i, _)| i);
            let start = open.start;
            // (end of the first part, start of the rest, how far the first part may be padded)
            let (cut, next_start, pad_limit) = match best {
                Some(i) => {
                    let (p_start, p_end) = open.pauses[i];
                    open.pauses.drain(..=i);
                    let room = ((p_end - p_start) / 2).min(self.pad_end);
                    (p_start, p_end, p_start + room)
                }
                // Speech without a pause within the limit: cut there.
                None => (limit, limit, limit),
            };
            open.start = next_start;
            self.emit(start, cut, pad_limit);
            // The rest's start padding must not reach back into the part just emitted.
            self.last_end = self.last_end.max(pad_limit);
        }
    }
}

#[cfg(test)]
mod tests;
