//! The `auto` engine: Silero's probability per 32 ms frame, strengthened by WebRTC's decisions
//! where the room is quiet.
//!
//! On quiet meeting audio Silero's probability sags on soft onsets and inside a speaker's turn,
//! where WebRTC VAD still hears voice; in noise and music WebRTC calls everything speech. So
//! WebRTC (mode 3, 10 ms frames, over the same audio) adds `WEIGHT` times the share of its
//! voiced frames to Silero's probability, but only while the room is quiet: among the frames
//! Silero is sure hold no speech (probability below `QUIET_P`), WebRTC has called fewer than
//! `GATE` of its frames voiced so far. The weight is below the speech threshold (0.5), so WebRTC
//! alone never starts speech; it keeps speech going and starts it sooner where Silero is unsure.
//! In a quiet room a speaker's pauses also keep Silero's probability above `HOLD` (0.22) where a
//! pause between speakers or sentences does not, so there the band from `HOLD` to the speech
//! threshold is stretched onto the band the segmenter's hysteresis holds speech in (from
//! `NEG_THRESHOLD`): speech holds down to `HOLD`, and still starts only at the threshold.
//! Measured in `bench/realaudio.sh` and `bench/eval.sh` (docs/quality.md).

use super::segment::{SILERO_THRESHOLD, SegmentParams};
use super::silero::{self, Silero};
use super::vad::{Engine, EngineKind, Precision, VadParams, WebRtc};

/// WebRTC's frame: 10 ms at 16 kHz.
const SUB: usize = 160;
/// How much a fully voiced WebRTC frame adds to Silero's probability.
const WEIGHT: f32 = 0.4;
/// Silero probabilities below this are frames sure to hold no speech.
const QUIET_P: f32 = 0.1;
/// The room is quiet while WebRTC calls fewer than this share of those frames voiced...
const GATE: f32 = 0.3;
/// ...once it has seen this many of them (about 1 s).
const MIN_EVIDENCE: u32 = 31;
/// In a quiet room, scores from `HOLD` up to `THRESHOLD` are mapped linearly onto
/// `NEG_THRESHOLD..THRESHOLD`: Silero's default thresholds, which the segmenter uses.
const HOLD: f32 = 0.22;
const THRESHOLD: f32 = SILERO_THRESHOLD;
const NEG_THRESHOLD: f32 = SegmentParams::silero_neg_threshold(SILERO_THRESHOLD);

#[allow(missing_debug_implementations)]
pub struct Fused {
    silero: Silero,
    webrtc: WebRtc,
    /// Samples of an unfinished WebRTC frame carried over to the next Silero frame.
    carry: Vec<f32>,
    quiet_frames: u32,
    quiet_voiced: f32,
    probs: Vec<f32>,
}

impl Default for Fused {
    fn default() -> Self {
        Fused::new(Precision::default())
    }
}

impl Fused {
    pub fn new(precision: Precision) -> Fused {
        let webrtc = VadParams {
            engine: EngineKind::Webrtc,
            sample_rate: silero::RATE,
            mode: Some(3),
            frame_ms: 10,
            precision,
        };
        Fused {
            silero: match precision {
                Precision::Int8 => Silero::quantised(),
                Precision::F32 => Silero::new(),
            },
            webrtc: WebRtc::new(&webrtc),
            carry: Vec::with_capacity(2 * SUB),
            quiet_frames: 0,
            quiet_voiced: 0.0,
            probs: Vec::with_capacity(silero::BLOCK),
        }
    }

    /// The share of WebRTC's frames that end within `frame` which it calls voiced.
    fn webrtc_share(&mut self, frame: &[f32]) -> f32 {
        let (mut voiced, mut frames) = (0u32, 0u32);
        let mut rest = frame;
        if !self.carry.is_empty() {
            let need = SUB - self.carry.len();
            let (head, tail) = rest.split_at(need.min(rest.len()));
            self.carry.extend_from_slice(head);
            rest = tail;
            if self.carry.len() == SUB {
                voiced += u32::from(self.webrtc.score(&self.carry) > 0.5);
                frames += 1;
                self.carry.clear();
            }
        }
        let mut chunks = rest.chunks_exact(SUB);
        for sub in &mut chunks {
            voiced += u32::from(self.webrtc.score(sub) > 0.5);
            frames += 1;
        }
        self.carry.extend_from_slice(chunks.remainder());
        if frames == 0 {
            0.0
        } else {
            voiced as f32 / frames as f32
        }
    }

    fn fuse(&mut self, p: f32, share: f32) -> f32 {
        if p < QUIET_P {
            self.quiet_frames = self.quiet_frames.saturating_add(1);
            self.quiet_voiced += share;
        }
        let quiet = self.quiet_frames >= MIN_EVIDENCE
            && self.quiet_voiced < GATE * self.quiet_frames as f32;
        if !quiet {
            return p;
        }
        let fused = (p + WEIGHT * share).min(1.0);
        if (HOLD..THRESHOLD).contains(&fused) {
            NEG_THRESHOLD + (fused - HOLD) * (THRESHOLD - NEG_THRESHOLD) / (THRESHOLD - HOLD)
        } else {
            fused
        }
    }
}

impl Engine for Fused {
    fn frame_len(&self) -> usize {
        silero::FRAME
    }
    fn block_frames(&self) -> usize {
        silero::BLOCK
    }
    fn score(&mut self, frame: &[f32]) -> f32 {
        let p = self.silero.score(frame);
        let share = self.webrtc_share(frame);
        self.fuse(p, share)
    }
    fn score_frames(&mut self, samples: &[f32], scores: &mut Vec<f32>) {
        let mut probs = std::mem::take(&mut self.probs);
        probs.clear();
        self.silero.score_frames(samples, &mut probs);
        for (frame, &p) in samples.chunks_exact(silero::FRAME).zip(&probs) {
            let share = self.webrtc_share(frame);
            scores.push(self.fuse(p, share));
        }
        self.probs = probs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webrtc_frames_are_counted_once_across_silero_frames() {
        let mut f = Fused::default();
        let silence = vec![0.0f32; silero::FRAME];
        // 512 samples hold 3 whole 10 ms frames and 32 samples over; the fifth Silero frame has
        // 4 (the carried samples complete one).
        let mut total = 0;
        for _ in 0..5 {
            let before = f.carry.len();
            let _ = f.webrtc_share(&silence);
            total += (before + silero::FRAME) / SUB;
        }
        assert_eq!(total, 5 * silero::FRAME / SUB);
        assert_eq!(f.carry.len(), 5 * silero::FRAME % SUB);
    }

    #[test]
    fn webrtc_adds_to_silero_only_once_the_room_is_known_quiet() {
        let mut f = Fused::default();
        // Before a second of evidence, nothing is added.
        assert_eq!(f.fuse(0.2, 1.0), 0.2);
        for _ in 0..MIN_EVIDENCE {
            assert_eq!(f.fuse(0.01, 0.0), 0.01);
        }
        assert!((f.fuse(0.2, 1.0) - 0.6).abs() < 1e-6);
        // WebRTC alone does not reach the speech threshold.
        assert!(f.fuse(0.0, 1.0) < 0.5);
        // A quiet room holds speech down to HOLD: those scores reach the negative threshold,
        // keep their order, and none reaches the speech threshold.
        assert!(f.fuse(HOLD - 0.01, 0.0) < NEG_THRESHOLD);
        assert!((f.fuse(HOLD, 0.0) - NEG_THRESHOLD).abs() < 1e-6);
        let (a, b) = (f.fuse(0.3, 0.0), f.fuse(0.45, 0.0));
        assert!(NEG_THRESHOLD < a && a < b && b < THRESHOLD, "{a} {b}");
        assert_eq!(f.fuse(0.7, 0.0), 0.7);
        // A room where WebRTC fires on what Silero calls non-speech is not quiet.
        let mut noisy = Fused::default();
        for _ in 0..100 {
            noisy.fuse(0.01, 1.0);
        }
        assert_eq!(noisy.fuse(0.2, 1.0), 0.2);
        assert_eq!(noisy.fuse(0.3, 0.0), 0.3, "no hold outside a quiet room");
    }

    #[test]
    fn precision_chooses_the_arithmetic_of_silero() {
        // A vowel-like tone switched on and off, in a little noise: probabilities up to about 0.5.
        let mut rng = fastrand::Rng::with_seed(3);
        let audio: Vec<f32> = (0..silero::FRAME * 200)
            .map(|i| {
                let t = i as f32 / silero::RATE as f32;
                let on = if (t * 1.5) % 1.0 < 0.6 { 1.0 } else { 0.0 };
                let voice: f32 = (1..8)
                    .map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                on * 0.2 * voice + 0.01 * (rng.f32() - 0.5)
            })
            .collect();
        let mut reference = Vec::new();
        Silero::new().score_frames(&audio, &mut reference);
        let probs = |precision| {
            let mut f = Fused::new(precision);
            let mut p = Vec::new();
            f.silero.score_frames(&audio, &mut p);
            p
        };
        assert_eq!(
            probs(Precision::F32),
            reference,
            "f32 is the silero engine's arithmetic"
        );
        let diffs: Vec<f32> = probs(Precision::Int8)
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let worst = diffs.iter().fold(0.0f32, |m, &d| m.max(d));
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        eprintln!("8 bits against f32: largest difference {worst}, mean {mean}");
        assert!(
            worst < 0.25 && mean < 0.02,
            "8 bits stay close to f32: {worst}, {mean}"
        );
        assert_eq!(
            worst > 0.0,
            Silero::quantised_here(),
            "8 bits are used where the CPU has VNNI"
        );
        let top = reference.iter().fold(0.0f32, |m, &p| m.max(p));
        eprintln!("highest probability {top}");
        assert!(top > 0.2, "the signal moves the probability: {top}");
    }
}
