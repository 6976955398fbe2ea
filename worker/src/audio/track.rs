//! The score track (`scores.bin`): every frame score the segmenter saw, per analysed signal,
//! exactly, with what is needed to segment them again without the audio: the source, the
//! engine settings, the frame length and the length of the audio. Re-segmenting a track with
//! some segmentation parameters gives the segments a full run with those parameters gives.
//!
//! Layout (little-endian): the 8 bytes `VFSCORES`, a `u32` header length, the header (JSON,
//! [`Header`]), then each signal's scores in header order: one byte per frame (0 or 1) where
//! every score is 0 or 1 (WebRTC's decisions), else one `f32` per frame (probabilities).

use super::pipeline::{Analysis, SourceInfo};
use super::segment::{Segment, SegmentParams, Segmenter};
use super::vad::VadParams;
use serde::{Deserialize, Serialize};

pub const SCORES_BIN: &str = "scores.bin";
const MAGIC: &[u8; 8] = b"VFSCORES";
/// Largest header accepted: the header is small; a larger length is a corrupt file.
const MAX_HEADER: usize = 64 * 1024;

/// How one signal's scores are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One byte per frame, 0 or 1.
    U8,
    /// One little-endian `f32` per frame.
    F32,
}

impl Encoding {
    fn width(self) -> u64 {
        match self {
            Encoding::U8 => 1,
            Encoding::F32 => 4,
        }
    }
}

/// One analysed signal: the mix, or one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalHeader {
    /// The 1-based channel, when channels were analysed separately.
    pub channel: Option<u16>,
    pub frames: u64,
    pub encoding: Encoding,
}

/// What a track says about the run that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub uri: String,
    pub source: SourceInfo,
    pub vad: VadParams,
    /// Samples per frame at `vad.sample_rate`.
    pub frame_len: u64,
    /// Length of the analysed audio, in samples at `vad.sample_rate`.
    pub total_samples: u64,
    pub signals: Vec<SignalHeader>,
}

/// A decoded track.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub header: Header,
    pub scores: Vec<Vec<f32>>,
}

/// `scores.bin` of an analysis whose per-signal scores were kept (`Sinks::track`).
pub fn encode(uri: &str, analysis: &Analysis, vad: &VadParams) -> Vec<u8> {
    let signals: Vec<SignalHeader> = analysis
        .tracks
        .iter()
        .map(|(channel, scores)| SignalHeader {
            channel: *channel,
            frames: scores.len() as u64,
            encoding: if scores.iter().all(|&s| s == 0.0 || s == 1.0) {
                Encoding::U8
            } else {
                Encoding::F32
            },
        })
        .collect();
    let header = Header {
        version: 1,
        uri: uri.to_owned(),
        source: analysis.source.clone(),
        vad: *vad,
        frame_len: analysis.frame_len,
        total_samples: analysis.total_samples,
        signals,
    };
    let json = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = Vec::with_capacity(12 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for (signal, (_, scores)) in header.signals.iter().zip(&analysis.tracks) {
        for &s in scores {
            match signal.encoding {
                Encoding::U8 => out.push(u8::from(s == 1.0)),
                Encoding::F32 => out.extend_from_slice(&s.to_le_bytes()),
            }
        }
    }
    out
}

/// Reads a track. Every length is checked against the bytes there are before anything is
/// allocated for it; an error says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Track, String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a vadflow score track (no VFSCORES signature)")?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or("truncated before the header")?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_HEADER || len > rest.len() {
        return Err(format!("header length {len} is not plausible"));
    }
    let (json, mut data) = rest.split_at(len);
    let header: Header =
        serde_json::from_slice(json).map_err(|e| format!("header is not valid: {e}"))?;
    if header.version != 1 {
        return Err(format!("track version {} is not supported", header.version));
    }
    if header.frame_len == 0 {
        return Err("frame length 0".into());
    }
    let mut scores = Vec::with_capacity(header.signals.len().min(64));
    for (i, s) in header.signals.iter().enumerate() {
        let need = s
            .frames
            .checked_mul(s.encoding.width())
            .filter(|&n| n <= data.len() as u64)
            .ok_or_else(|| format!("signal {i}: {} frames, fewer bytes than that", s.frames))?
            as usize;
        let (mine, rest) = data.split_at(need);
        scores.push(match s.encoding {
            Encoding::U8 => mine.iter().map(|&b| f32::from(b.min(1))).collect(),
            Encoding::F32 => mine
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        });
        data = rest;
    }
    if !data.is_empty() {
        return Err(format!("{} bytes after the last signal", data.len()));
    }
    Ok(Track { header, scores })
}

/// Segments the track's scores again with `params`: the analysis a full run with those
/// parameters gives (its segments, frames and speech frames; no levels, which need the
/// audio). With channels separate, segments are listed in the order they end.
pub fn resegment(track: &Track, params: &SegmentParams) -> Analysis {
    let h = &track.header;
    let rate = h.vad.sample_rate;
    let frame_len = usize::try_from(h.frame_len).unwrap_or(usize::MAX);
    let mut segments: Vec<Segment> = Vec::new();
    let (mut frames, mut speech_frames) = (0u64, 0u64);
    for (signal, scores) in h.signals.iter().zip(&track.scores) {
        let mut segmenter = Segmenter::new(params, rate, frame_len);
        for &score in scores {
            segmenter.push(score);
            frames += 1;
            speech_frames += u64::from(score >= params.threshold);
        }
        segmenter.finish(h.total_samples);
        segments.extend(segmenter.take_ready().map(|mut s| {
            s.channel = signal.channel;
            s
        }));
    }
    if h.signals.len() > 1 {
        segments.sort_by_key(|s| (s.end, s.channel));
    }
    Analysis {
        source: h.source.clone(),
        sample_rate: rate,
        total_samples: h.total_samples,
        frames,
        speech_frames,
        separate_channels: h.signals.first().is_some_and(|s| s.channel.is_some()),
        segments,
        segment_scores: Vec::new(),
        levels: None,
        frame_len: h.frame_len,
        tracks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(tracks: Vec<(Option<u16>, Vec<f32>)>) -> Analysis {
        Analysis {
            source: SourceInfo {
                codec: "flac".into(),
                sample_rate: 44_100,
                channels: 2,
            },
            sample_rate: 16_000,
            total_samples: 16_000 * 3,
            frames: 0,
            speech_frames: 0,
            separate_channels: tracks.len() > 1,
            segments: Vec::new(),
            segment_scores: Vec::new(),
            levels: None,
            frame_len: 480,
            tracks,
        }
    }

    #[test]
    fn tracks_round_trip_exactly_and_decisions_take_one_byte() {
        let probs: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin().abs()).collect();
        let bits: Vec<f32> = (0..100).map(|i| f32::from(u8::from(i % 7 < 3))).collect();
        let a = analysis(vec![(Some(1), probs.clone()), (Some(2), bits.clone())]);
        let bytes = encode("s3://b/k.flac", &a, &VadParams::default());
        let t = decode(&bytes).expect("decodes");
        assert_eq!(t.scores, vec![probs, bits]);
        assert_eq!(t.header.signals[0].encoding, Encoding::F32);
        assert_eq!(t.header.signals[1].encoding, Encoding::U8);
        assert_eq!(t.header.total_samples, 48_000);
        let header_len = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
        assert_eq!(bytes.len(), 12 + header_len + 100 * 4 + 100);
    }

    #[test]
    fn damaged_tracks_are_errors_never_allocations() {
        let a = analysis(vec![(None, vec![0.5; 50])]);
        let bytes = encode("x.wav", &a, &VadParams::default());
        assert!(decode(b"RIFF....").is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).is_err(), "trailing bytes");
        // A header claiming 2^60 frames is refused before any allocation.
        let json = String::from_utf8_lossy(&bytes[12..]).into_owned();
        let json = &json[..json.find("}]}").expect("end") + 3];
        let huge = json.replace("\"frames\":50", "\"frames\":1152921504606846976");
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&(huge.len() as u32).to_le_bytes());
        forged.extend_from_slice(huge.as_bytes());
        let err = decode(&forged).expect_err("refused");
        assert!(err.contains("frames"), "{err}");
        let mut long = MAGIC.to_vec();
        long.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(
            decode(&long)
                .expect_err("refused")
                .contains("header length")
        );
    }
}
