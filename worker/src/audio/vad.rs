//! **vad**: voice activity detection engines behind one trait.
//!
//! An engine sees fixed-size frames of mono audio at its own rate and returns a speech score in
//! `[0, 1]` per frame: WebRTC VAD returns 0 or 1, Silero a probability. An engine is stateful:
//! create a fresh one per file and give it every frame once, in order, one at a time or in
//! blocks.

use super::silero;
use serde::Serialize;
use vadflow_common::{Failure, Reason};
use webrtc_vad::{SampleRate, Vad, VadMode};

/// Which engine scores the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// WebRTC's GMM voice activity detector (libfvad).
    Webrtc,
    /// Silero VAD v6, a neural network (16 kHz, 32 ms frames); holds up in noise.
    Silero,
    /// Silero, strengthened by WebRTC's decisions where the room is quiet (`audio::fused`).
    Auto,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Webrtc => "webrtc",
            EngineKind::Silero => "silero",
            EngineKind::Auto => "auto",
        }
    }
}

/// The arithmetic of the auto engine's Silero products.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 8-bit products where the CPU has AVX-512 VNNI (about 1.8x faster), `f32` elsewhere.
    #[default]
    Int8,
    /// `f32` on every CPU: the same results everywhere.
    F32,
}

impl Precision {
    fn is_default(&self) -> bool {
        *self == Precision::default()
    }
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct VadParams {
    pub engine: EngineKind,
    /// Sample rate the engine runs at: 8000, 16000, 32000 or 48000.
    pub sample_rate: u32,
    /// WebRTC aggressiveness, 0 (least) to 3 (most aggressive); none for Silero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u8>,
    /// Frame length in milliseconds: 10, 20 or 30 (WebRTC); 32 (Silero).
    pub frame_ms: u32,
    /// The auto engine's arithmetic (the other engines have one each).
    #[serde(default, skip_serializing_if = "Precision::is_default")]
    pub precision: Precision,
}

impl Default for VadParams {
    fn default() -> Self {
        VadParams::for_engine(EngineKind::Webrtc)
    }
}

impl VadParams {
    /// The engine's default settings.
    pub fn for_engine(engine: EngineKind) -> VadParams {
        match engine {
            EngineKind::Webrtc => VadParams {
                engine,
                sample_rate: 16_000,
                mode: Some(3),
                frame_ms: 30,
                precision: Precision::default(),
            },
            EngineKind::Silero | EngineKind::Auto => VadParams {
                engine,
                sample_rate: silero::RATE,
                mode: None,
                frame_ms: 32,
                precision: Precision::default(),
            },
        }
    }

    /// Checks the combination; called once at start-up so bad configuration fails fast.
    pub fn validate(&self) -> Result<(), String> {
        if ![8_000, 16_000, 32_000, 48_000].contains(&self.sample_rate) {
            return Err(format!(
                "VAD sample rate {} must be 8000, 16000, 32000 or 48000",
                self.sample_rate
            ));
        }
        match self.engine {
            EngineKind::Webrtc => {
                match self.mode {
                    None => return Err("the webrtc engine needs a mode (0 to 3)".into()),
                    Some(m) if m > 3 => return Err(format!("WebRTC mode {m} must be 0 to 3")),
                    Some(_) => {}
                }
                if ![10, 20, 30].contains(&self.frame_ms) {
                    return Err(format!(
                        "frame length {} ms must be 10, 20 or 30",
                        self.frame_ms
                    ));
                }
            }
            EngineKind::Silero | EngineKind::Auto => {
                let name = self.engine.as_str();
                if self.sample_rate != silero::RATE {
                    return Err(format!(
                        "the {name} engine runs at 16000 Hz, not {}",
                        self.sample_rate
                    ));
                }
                if self.mode.is_some() {
                    return Err("a mode applies to the webrtc engine only".into());
                }
                if self.frame_ms != 32 {
                    return Err(format!(
                        "the {name} engine runs on 32 ms frames, not {} ms",
                        self.frame_ms
                    ));
                }
            }
        }
        Ok(())
    }

    /// Length of a frame.
    pub fn frame_duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.frame_ms))
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        (self.sample_rate * self.frame_ms / 1000) as usize
    }

    /// A fresh engine for one file.
    pub fn engine(&self) -> Result<Box<dyn Engine>, Failure> {
        self.validate()
            .map_err(|e| Failure::new(Reason::Internal, e))?;
        Ok(match self.engine {
            EngineKind::Webrtc => Box::new(WebRtc::new(self)),
            EngineKind::Silero => Box::new(silero::Silero::new()),
            EngineKind::Auto => Box::new(super::fused::Fused::new(self.precision)),
        })
    }
}

/// A voice activity detector.
pub trait Engine {
    /// Samples per frame at [`VadParams::sample_rate`].
    fn frame_len(&self) -> usize;
    /// Frames the engine prefers to score at once ([`Engine::score_frames`]).
    fn block_frames(&self) -> usize {
        1
    }
    /// Speech score of the next frame, in `[0, 1]`. `frame` has exactly `frame_len()` samples
    /// in `[-1, 1]`.
    fn score(&mut self, frame: &[f32]) -> f32;
    /// Scores the next frames: `samples` holds whole frames; one score per frame is appended to
    /// `scores`. The same as calling [`Engine::score`] on each frame in turn.
    fn score_frames(&mut self, samples: &[f32], scores: &mut Vec<f32>) {
        let n = self.frame_len();
        for frame in samples.chunks_exact(n) {
            scores.push(self.score(frame));
        }
    }
}

impl Engine for silero::Silero {
    fn frame_len(&self) -> usize {
        silero::FRAME
    }
    fn block_frames(&self) -> usize {
        silero::BLOCK
    }
    fn score(&mut self, frame: &[f32]) -> f32 {
        silero::Silero::score(self, frame)
    }
    fn score_frames(&mut self, samples: &[f32], scores: &mut Vec<f32>) {
        silero::Silero::score_frames(self, samples, scores);
    }
}

/// WebRTC VAD (libfvad, the same GMM detector as py-webrtcvad).
#[allow(missing_debug_implementations)]
pub struct WebRtc {
    vad: Vad,
    frame_len: usize,
    pcm: Vec<i16>,
}

impl WebRtc {
    pub fn new(params: &VadParams) -> WebRtc {
        let rate = match params.sample_rate {
            8_000 => SampleRate::Rate8kHz,
            32_000 => SampleRate::Rate32kHz,
            48_000 => SampleRate::Rate48kHz,
            _ => SampleRate::Rate16kHz,
        };
        let mode = match params.mode {
            Some(0) => VadMode::Quality,
            Some(1) => VadMode::LowBitrate,
            Some(2) => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        let frame_len = params.frame_len();
        WebRtc {
            vad: Vad::new_with_rate_and_mode(rate, mode),
            frame_len,
            pcm: vec![0; frame_len],
        }
    }
}

impl Engine for WebRtc {
    fn frame_len(&self) -> usize {
        self.frame_len
    }

    fn score(&mut self, frame: &[f32]) -> f32 {
        // `frame` always has frame_len samples (the pipeline guarantees it), so the VAD never sees
        // an empty or odd-sized frame, which would panic or fail inside libfvad.
        for (dst, &x) in self.pcm.iter_mut().zip(frame) {
            *dst = to_i16(x);
        }
        match self.vad.is_voice_segment(&self.pcm) {
            Ok(true) => 1.0,
            _ => 0.0,
        }
    }
}

/// `f32` in `[-1, 1]` to 16-bit PCM, the inverse of the decoder's `s / 32768`: scaled, clamped
/// and rounded to nearest (ties to even). Branch-free and without a float-to-int cast or a call
/// to `round`, so that loops over it vectorise (it runs on every sample).
#[inline(always)]
pub fn to_i16(x: f32) -> i16 {
    // Adding 1.5 · 2^23 rounds to an integer held in the low mantissa bits (exact for |v| <
    // 2^22). NaN (a corrupt float file) becomes silence.
    const SHIFT: f32 = 12_582_912.0;
    let x = if x.is_nan() { 0.0 } else { x };
    let v = (x * 32768.0).clamp(-32768.0, 32767.0);
    (v + SHIFT).to_bits().wrapping_sub(SHIFT.to_bits()) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_conversion_round_trips_16_bit() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(to_i16(f32::from(s) / 32768.0), s);
        }
        assert_eq!(to_i16(2.0), 32767);
        assert_eq!(to_i16(-2.0), -32768);
        assert_eq!(to_i16(f32::INFINITY), 32767);
        assert_eq!(to_i16(f32::NEG_INFINITY), -32768);
        assert_eq!(to_i16(f32::NAN), 0);
        // Rounds to nearest.
        assert_eq!(to_i16(100.4 / 32768.0), 100);
        assert_eq!(to_i16(100.6 / 32768.0), 101);
        assert_eq!(to_i16(-100.6 / 32768.0), -101);
    }

    #[test]
    fn validates_parameters() {
        assert!(VadParams::default().validate().is_ok());
        let bad_rate = VadParams {
            sample_rate: 44_100,
            ..VadParams::default()
        };
        assert!(bad_rate.validate().is_err());
        let bad_mode = VadParams {
            mode: Some(4),
            ..VadParams::default()
        };
        assert!(bad_mode.validate().is_err());
        let silero = VadParams::for_engine(EngineKind::Silero);
        assert!(silero.validate().is_ok());
        assert_eq!(silero.frame_len(), silero::FRAME);
        for bad in [
            VadParams {
                sample_rate: 8_000,
                ..silero
            },
            VadParams {
                mode: Some(3),
                ..silero
            },
            VadParams {
                frame_ms: 30,
                ..silero
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let bad_frame = VadParams {
            frame_ms: 25,
            ..VadParams::default()
        };
        assert!(bad_frame.validate().is_err());
    }

    #[test]
    fn silence_is_not_speech_and_a_loud_voiced_signal_is() {
        let p = VadParams::default();
        let mut vad = p.engine().expect("engine");
        let n = vad.frame_len();
        let silence = vec![0.0f32; n];
        assert_eq!(vad.score(&silence), 0.0);
        // A harmonic-rich 150 Hz buzz with formant-like energy triggers the detector.
        let mut any = false;
        for f in 0..50 {
            let frame: Vec<f32> = (0..n)
                .map(|i| {
                    let t = (f * n + i) as f32 / p.sample_rate as f32;
                    (1..20)
                        .map(|h| {
                            (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32
                        })
                        .sum::<f32>()
                        * 0.2
                })
                .collect();
            any |= vad.score(&frame) == 1.0;
        }
        assert!(any);
    }
}
