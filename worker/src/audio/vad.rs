//! **vad**: voice activity detection engines behind one trait.
//!
//! An engine sees fixed-size frames of mono audio at its own rate and returns a speech score in
//! `[0, 1]` per frame. WebRTC VAD returns 0 or 1. An engine is stateful: create a fresh one per
//! file and call it exactly once per frame.

use serde::Serialize;
use vadflow_common::{Failure, Reason};
use webrtc_vad::{SampleRate, Vad, VadMode};

/// Which engine scores the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// WebRTC's GMM voice activity detector (libfvad).
    Webrtc,
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VadParams {
    pub engine: EngineKind,
    /// Sample rate the engine runs at: 8000, 16000, 32000 or 48000.
    pub sample_rate: u32,
    /// WebRTC aggressiveness, 0 (least) to 3 (most aggressive).
    pub mode: u8,
    /// Frame length in milliseconds: 10, 20 or 30 (WebRTC).
    pub frame_ms: u32,
}

impl Default for VadParams {
    fn default() -> Self {
        VadParams {
            engine: EngineKind::Webrtc,
            sample_rate: 16_000,
            mode: 3,
            frame_ms: 30,
        }
    }
}

impl VadParams {
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
                if self.mode > 3 {
                    return Err(format!("WebRTC mode {} must be 0 to 3", self.mode));
                }
                if ![10, 20, 30].contains(&self.frame_ms) {
                    return Err(format!(
                        "frame length {} ms must be 10, 20 or 30",
                        self.frame_ms
                    ));
                }
            }
        }
        Ok(())
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
        })
    }
}

/// A voice activity detector.
pub trait Engine {
    /// Samples per frame at [`VadParams::sample_rate`].
    fn frame_len(&self) -> usize;
    /// Speech score of the next frame, in `[0, 1]`. `frame` has exactly `frame_len()` samples
    /// in `[-1, 1]`.
    fn score(&mut self, frame: &[f32]) -> f32;
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
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
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

/// `f32` in `[-1, 1]` to 16-bit PCM, the inverse of the decoder's `s / 32768`.
#[inline]
pub fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcm_conversion_round_trips_16_bit() {
        for s in [-32768i16, -1, 0, 1, 12345, 32767] {
            assert_eq!(to_i16(f32::from(s) / 32768.0), s);
        }
        assert_eq!(to_i16(2.0), 32767);
        assert_eq!(to_i16(-2.0), -32768);
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
            mode: 4,
            ..VadParams::default()
        };
        assert!(bad_mode.validate().is_err());
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
