//! **levels**: quality measures of each segment and of the file, for filtering what to
//! transcribe or train on. Per frame of the VAD (score, energy, peak, clipped samples, on the
//! signal the VAD sees), kept in a ring bounded like the rendering audio: a segment's figures
//! are read when it becomes final. Deterministic: the same audio and settings give the same
//! figures. `docs/segments-schema.md` defines each.

use super::segment::Segment;
use std::collections::VecDeque;

/// A sample at or above this magnitude (−0.01 dBFS) counts as clipped.
pub const CLIP_LEVEL: f32 = 0.999;
/// How much non-speech around a segment its noise level is measured on, each side, in seconds.
pub const CONTEXT_S: f64 = 1.0;
/// The level reported for digital silence.
pub const FLOOR_DBFS: f64 = -120.0;

/// One VAD frame's figures.
#[derive(Debug, Clone, Copy)]
struct Frame {
    score: f32,
    sumsq: f64,
    peak: f32,
    clipped: u32,
    samples: u32,
    /// Inside a segment already emitted.
    in_segment: bool,
}

/// Sums over frames.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    sumsq: f64,
    samples: u64,
    peak: f32,
    clipped: u64,
    score: f64,
    frames: u64,
    score_min: f32,
}

impl Sums {
    fn add(&mut self, f: &Frame) {
        if self.frames == 0 || f.score < self.score_min {
            self.score_min = f.score;
        }
        self.sumsq += f.sumsq;
        self.samples += u64::from(f.samples);
        self.peak = self.peak.max(f.peak);
        self.clipped += u64::from(f.clipped);
        self.score += f64::from(f.score);
        self.frames += 1;
    }

    fn merge(&mut self, o: &Sums) {
        if o.frames == 0 {
            return;
        }
        if self.frames == 0 || o.score_min < self.score_min {
            self.score_min = o.score_min;
        }
        self.sumsq += o.sumsq;
        self.samples += o.samples;
        self.peak = self.peak.max(o.peak);
        self.clipped += o.clipped;
        self.score += o.score;
        self.frames += o.frames;
    }

    /// RMS level in dBFS (full scale 1.0); `None` with no samples.
    pub fn rms_dbfs(&self) -> Option<f64> {
        (self.samples > 0).then(|| dbfs((self.sumsq / self.samples as f64).sqrt()))
    }
}

fn dbfs(amplitude: f64) -> f64 {
    if amplitude <= 0.0 {
        FLOOR_DBFS
    } else {
        (20.0 * amplitude.log10()).max(FLOOR_DBFS)
    }
}

/// The figures of one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentScores {
    /// The detector's mean and lowest frame score over the segment (0 to 1).
    pub score_mean: f64,
    pub score_min: f64,
    pub rms_dbfs: f64,
    pub peak_dbfs: f64,
    /// Share of the segment's samples at or above [`CLIP_LEVEL`].
    pub clipped: f64,
    /// The segment's RMS level over the non-speech around it (up to [`CONTEXT_S`] each side);
    /// where it has none, over the file's non-speech; `None` if the file has none.
    pub snr_db: Option<f64>,
}

/// The figures of the whole file (all channels analysed).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FileLevels {
    pub rms_dbfs: Option<f64>,
    pub peak_dbfs: Option<f64>,
    pub clipped: f64,
    pub score_mean: Option<f64>,
    /// Level of what is inside segments, and of what is not.
    pub speech_dbfs: Option<f64>,
    pub noise_dbfs: Option<f64>,
    pub snr_db: Option<f64>,
}

/// Sum of squares, peak magnitude and clipped samples of a frame. Eight independent lanes, so
/// that the compiler can keep them in vector registers (a single running sum cannot be
/// reordered, and would not vectorise); the order is fixed, so the result is deterministic.
fn measure(samples: &[f32]) -> (f32, f32, u32) {
    const LANES: usize = 8;
    let (mut sumsq, mut peak, mut clipped) = ([0.0f32; LANES], [0.0f32; LANES], [0u32; LANES]);
    let blocks = samples.chunks_exact(LANES);
    let tail = blocks.remainder();
    for block in blocks {
        for i in 0..LANES {
            let x = block[i];
            let a = x.abs();
            sumsq[i] += x * x;
            peak[i] = if a > peak[i] { a } else { peak[i] };
            clipped[i] += u32::from(a >= CLIP_LEVEL);
        }
    }
    for (i, &x) in tail.iter().enumerate() {
        let a = x.abs();
        sumsq[i] += x * x;
        peak[i] = if a > peak[i] { a } else { peak[i] };
        clipped[i] += u32::from(a >= CLIP_LEVEL);
    }
    (
        sumsq.iter().sum(),
        peak.iter().fold(0.0, |m, &p| if p > m { p } else { m }),
        clipped.iter().sum(),
    )
}

/// The figures of one analysed signal, as its frames are scored.
#[derive(Debug)]
pub struct Levels {
    frame_len: usize,
    context: usize,
    threshold: f32,
    /// Frame index of `frames[0]`.
    base: u64,
    frames: VecDeque<Frame>,
    all: Sums,
    speech: Sums,
    /// Noise of frames that left the ring outside any segment.
    noise: Sums,
    /// Segments (their index in the file's list) whose SNR waits for the file's noise level.
    waiting: Vec<(usize, f64)>,
}

impl Levels {
    pub fn new(rate: u32, frame_len: usize, threshold: f32) -> Levels {
        let frame_len = frame_len.max(1);
        Levels {
            frame_len,
            context: ((CONTEXT_S * f64::from(rate)) as usize).div_ceil(frame_len),
            threshold,
            base: 0,
            frames: VecDeque::new(),
            all: Sums::default(),
            speech: Sums::default(),
            noise: Sums::default(),
            waiting: Vec::new(),
        }
    }

    /// One scored frame and its samples.
    pub fn push(&mut self, samples: &[f32], score: f32) {
        let (sumsq, peak, clipped) = measure(samples);
        let frame = Frame {
            score,
            sumsq: f64::from(sumsq),
            peak,
            clipped,
            samples: samples.len() as u32,
            in_segment: false,
        };
        self.all.add(&frame);
        self.frames.push_back(frame);
    }

    /// The frames of `[start, end)` samples still in the ring, as ring indices.
    fn span(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        let fl = self.frame_len as u64;
        let (first, last) = (start / fl, end.div_ceil(fl));
        let at = |f: u64| (f.saturating_sub(self.base) as usize).min(self.frames.len());
        at(first)..at(last)
    }

    /// The figures of `seg`, a segment just made final, which is the file's segment number
    /// `index`; marks its frames as speech.
    pub fn segment(&mut self, seg: &Segment, index: usize) -> SegmentScores {
        let range = self.span(seg.start, seg.end);
        let mut sums = Sums::default();
        for f in self.frames.range_mut(range.clone()) {
            sums.add(f);
            if !f.in_segment {
                f.in_segment = true;
                self.speech.add(f);
            }
        }
        let mut around = Sums::default();
        let before = range.start.saturating_sub(self.context)..range.start;
        let after = range.end..(range.end + self.context).min(self.frames.len());
        for i in before.chain(after) {
            let f = &self.frames[i];
            if !f.in_segment && f.score < self.threshold {
                around.add(f);
            }
        }
        let rms = sums.rms_dbfs().unwrap_or(FLOOR_DBFS);
        let snr_db = match around.rms_dbfs() {
            Some(noise) => Some(rms - noise),
            None => {
                self.waiting.push((index, rms));
                None
            }
        };
        SegmentScores {
            score_mean: if sums.frames > 0 {
                sums.score / sums.frames as f64
            } else {
                0.0
            },
            score_min: f64::from(sums.score_min),
            rms_dbfs: rms,
            peak_dbfs: dbfs(f64::from(sums.peak)),
            clipped: if sums.samples > 0 {
                sums.clipped as f64 / sums.samples as f64
            } else {
                0.0
            },
            snr_db,
        }
    }

    /// Drops the frames no future segment or context can need: those more than the context
    /// before sample `earliest` (the segmenter's earliest possible segment start).
    pub fn trim_before(&mut self, earliest: u64) {
        let keep_from = (earliest / self.frame_len as u64).saturating_sub(self.context as u64);
        while self.base < keep_from {
            let Some(f) = self.frames.pop_front() else {
                break;
            };
            if !f.in_segment {
                self.noise.add(&f);
            }
            self.base += 1;
        }
    }

    /// At the end of the signal: its sums, and the SNR of the segments that had no non-speech
    /// around them, against the signal's non-speech level (`(index, snr)` pairs).
    pub fn finish(mut self) -> (Totals, Vec<(usize, Option<f64>)>) {
        for f in self.frames.drain(..) {
            if !f.in_segment {
                self.noise.add(&f);
            }
        }
        let noise = self.noise.rms_dbfs();
        let fills = self
            .waiting
            .iter()
            .map(|&(i, rms)| (i, noise.map(|n| rms - n)))
            .collect();
        (
            Totals {
                all: self.all,
                speech: self.speech,
                noise: self.noise,
            },
            fills,
        )
    }
}

/// The sums of one signal, to combine into the file's figures.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    all: Sums,
    speech: Sums,
    noise: Sums,
}

impl Totals {
    pub fn merge(&mut self, o: &Totals) {
        self.all.merge(&o.all);
        self.speech.merge(&o.speech);
        self.noise.merge(&o.noise);
    }

    pub fn file(&self) -> FileLevels {
        let (speech, noise) = (self.speech.rms_dbfs(), self.noise.rms_dbfs());
        FileLevels {
            rms_dbfs: self.all.rms_dbfs(),
            peak_dbfs: (self.all.samples > 0).then(|| dbfs(f64::from(self.all.peak))),
            clipped: if self.all.samples > 0 {
                self.all.clipped as f64 / self.all.samples as f64
            } else {
                0.0
            },
            score_mean: (self.all.frames > 0).then(|| self.all.score / self.all.frames as f64),
            speech_dbfs: speech,
            noise_dbfs: noise,
            snr_db: speech.zip(noise).map(|(s, n)| s - n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FL: usize = 10;

    fn seg(start: u64, end: u64) -> Segment {
        Segment {
            start,
            end,
            channel: None,
        }
    }

    /// 100 frames: quiet noise (amplitude 0.01) everywhere, a tone of amplitude 0.5 in frames
    /// 40..60 (score 0.9 there, 0.1 elsewhere), one clipped sample in frame 50.
    fn levels() -> Levels {
        let mut l = Levels::new(1000, FL, 0.5);
        for f in 0..100 {
            let speech = (40..60).contains(&f);
            let mut frame: Vec<f32> = (0..FL)
                .map(|i| {
                    let a = if speech { 0.5 } else { 0.01 };
                    if i % 2 == 0 { a } else { -a }
                })
                .collect();
            if f == 50 {
                frame[3] = 1.0;
            }
            l.push(&frame, if speech { 0.9 } else { 0.1 });
        }
        l
    }

    #[test]
    fn frames_are_measured_whatever_their_length() {
        for n in [0, 1, 7, 8, 9, 480, 512, 1023] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
                .collect();
            let (sumsq, peak, clipped) = measure(&x);
            let want: f32 = x.iter().map(|v| v * v).sum();
            assert!(
                (sumsq - want).abs() <= 1e-4 * want.max(1.0),
                "{n}: {sumsq} vs {want}"
            );
            assert_eq!(peak, x.iter().fold(0.0f32, |m, v| m.max(v.abs())), "{n}");
            assert_eq!(
                clipped,
                x.iter().filter(|v| v.abs() >= CLIP_LEVEL).count() as u32
            );
        }
    }

    #[test]
    fn a_segment_has_its_scores_levels_and_snr() {
        let mut l = levels();
        let s = l.segment(&seg(400, 600), 0);
        assert!((s.score_mean - 0.9).abs() < 1e-6 && (s.score_min - 0.9).abs() < 1e-6);
        // One sample of 200 at full scale, the rest at 0.5.
        let rms = ((199.0 * 0.25 + 1.0) / 200.0f64).sqrt();
        assert!((s.rms_dbfs - 20.0 * rms.log10()).abs() < 1e-3, "{s:?}");
        assert!(s.peak_dbfs.abs() < 1e-9);
        assert!((s.clipped - 1.0 / 200.0).abs() < 1e-12);
        // Noise at 0.01 around it: about 20*log10(0.5/0.01) = 34 dB.
        let snr = s.snr_db.expect("noise around");
        assert!((snr - (20.0 * rms.log10() + 40.0)).abs() < 1e-3, "{snr}");
    }

    #[test]
    fn file_levels_split_speech_and_noise() {
        let mut l = levels();
        l.segment(&seg(400, 600), 0);
        l.trim_before(1000);
        let (totals, fills) = l.finish();
        assert!(fills.is_empty());
        let f = totals.file();
        assert!((f.noise_dbfs.expect("noise") + 40.0).abs() < 1e-3);
        assert!(f.snr_db.expect("snr") > 30.0);
        assert!((f.clipped - 1.0 / 1000.0).abs() < 1e-12);
        assert!((f.score_mean.expect("score") - (20.0 * 0.9 + 80.0 * 0.1) / 100.0).abs() < 1e-6);
    }

    #[test]
    fn a_segment_without_noise_around_takes_the_files() {
        let mut l = Levels::new(1000, FL, 0.5);
        for f in 0..30 {
            // Frames 25..30 are quiet but score at the threshold: not non-speech around the
            // segment, yet outside it, so they are the file's noise.
            let a = if f < 25 { 0.5 } else { 0.05 };
            l.push(&[a; FL], if f < 25 { 0.9 } else { 0.5 });
        }
        let s = l.segment(&seg(0, 250), 7);
        assert_eq!(s.snr_db, None, "no frame below the threshold around it");
        let (_, fills) = l.finish();
        let (i, snr) = fills[0];
        assert_eq!(i, 7);
        assert!((snr.expect("the file's noise") - 20.0).abs() < 1e-3);
    }
}
