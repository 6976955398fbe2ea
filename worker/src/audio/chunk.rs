//! **chunk**: ASR-ready chunks. Consecutive segments are grouped into chunks no longer than
//! `max` (Whisper-style models take at most 30 s), cut at the longest pause that keeps the chunk
//! within `max`; a segment is never cut unless it alone is longer than `max`, and then it is
//! split into equal pieces. A chunk shorter than `min` is merged with a neighbour when the two
//! still fit. With channels analysed separately, each channel is chunked on its own.
//!
//! Pure and deterministic: the same segments and settings give the same chunks.

use super::pipeline::Analysis;
use super::render::ms;
use super::segment::Segment;
use serde::Serialize;
use std::ops::Range;
use std::time::Duration;

/// `--chunk-max`, `--chunk-min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    pub max: Duration,
    pub min: Duration,
}

impl ChunkParams {
    pub fn validate(&self) -> Result<(), String> {
        if self.max < Duration::from_secs(1) || self.max > Duration::from_secs(3600) {
            return Err("--chunk-max must be between 1 s and 1 h".into());
        }
        if self.min >= self.max {
            return Err("--chunk-min must be shorter than --chunk-max".into());
        }
        Ok(())
    }
}

/// A chunk: a span of the audio and the segments it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Start and end in samples at the VAD rate; `end` exclusive.
    pub start: u64,
    pub end: u64,
    pub channel: Option<u16>,
    /// Indices into the file's segments. A piece of a segment longer than `max` has that one
    /// segment, and `start`/`end` of the piece.
    pub segments: Vec<usize>,
}

impl Chunk {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The chunks of `segments` (positions at `rate` samples per second), ordered by start, then
/// channel.
pub fn chunks(segments: &[Segment], rate: u32, params: &ChunkParams) -> Vec<Chunk> {
    let samples = |d: Duration| (d.as_secs_f64() * f64::from(rate)).round() as u64;
    let (max, min) = (samples(params.max).max(1), samples(params.min));
    let mut channels: Vec<Option<u16>> = segments.iter().map(|s| s.channel).collect();
    channels.sort_unstable();
    channels.dedup();
    let mut out = Vec::new();
    for channel in channels {
        let group: Vec<usize> = (0..segments.len())
            .filter(|&i| segments[i].channel == channel)
            .collect();
        let spans: Vec<(u64, u64)> = group
            .iter()
            .map(|&i| (segments[i].start, segments[i].end))
            .collect();
        for piece in merge_short(split(&spans, max), &spans, max, min) {
            out.push(Chunk {
                start: piece.start,
                end: piece.end,
                channel,
                segments: piece.segments.map(|k| group[k]).collect(),
            });
        }
    }
    out.sort_by_key(|c| (c.start, c.channel));
    out
}

#[derive(Serialize)]
struct ChunkLine<'a> {
    audio_filepath: &'a str,
    offset: f64,
    duration: f64,
    /// How many segments the chunk holds (1 for a piece of a segment longer than the maximum).
    segments: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<u16>,
}

/// `chunks.jsonl`: the chunks, NeMo-style, one line per chunk in time order.
pub fn chunks_jsonl(uri: &str, analysis: &Analysis, params: &ChunkParams) -> Vec<u8> {
    let rate = analysis.sample_rate;
    let mut out = Vec::new();
    for c in chunks(&analysis.segments, rate, params) {
        let line = ChunkLine {
            audio_filepath: uri,
            offset: ms(c.start, rate),
            duration: ms(c.len(), rate),
            segments: c.segments.len(),
            channel: c.channel,
        };
        if serde_json::to_writer(&mut out, &line).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// A chunk within one channel: its span and the range of that channel's segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    start: u64,
    end: u64,
    segments: Range<usize>,
}

/// Cuts time-ordered `spans` into chunks of at most `max` samples, each cut at the longest
/// pause among those that keep the chunk within `max` (ties: the later one, for longer chunks).
fn split(spans: &[(u64, u64)], max: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < spans.len() {
        let (start, end) = spans[i];
        if end - start > max {
            // One segment longer than the maximum: equal pieces, each at most `max`.
            let n = (end - start).div_ceil(max);
            for p in 0..n {
                out.push(Piece {
                    start: start + (end - start) * p / n,
                    end: start + (end - start) * (p + 1) / n,
                    segments: i..i + 1,
                });
            }
            i += 1;
            continue;
        }
        // Segments i..j fit in a chunk starting at `start`.
        let mut j = i + 1;
        while j < spans.len() && spans[j].1 - start <= max {
            j += 1;
        }
        let k = if j == spans.len() {
            j
        } else {
            // The chunk ends after segment k - 1, for k in i + 1..=j: at the longest pause.
            (i + 1..=j)
                .max_by_key(|&k| (spans[k].0.saturating_sub(spans[k - 1].1), k))
                .unwrap_or(j)
        };
        out.push(Piece {
            start,
            end: spans[k - 1].1,
            segments: i..k,
        });
        i = k;
    }
    out
}

/// Merges each chunk shorter than `min` into the neighbour across the shorter pause, when the
/// two together still fit in `max`. Pieces of one long segment are never merged.
fn merge_short(mut pieces: Vec<Piece>, spans: &[(u64, u64)], max: u64, min: u64) -> Vec<Piece> {
    let whole = |p: &Piece| {
        p.segments.len() > 1 || {
            let (s, e) = spans[p.segments.start];
            p.start == s && p.end == e
        }
    };
    let mut i = 0;
    while i < pieces.len() {
        let short = pieces[i].end - pieces[i].start < min && whole(&pieces[i]);
        let fits = |a: &Piece, b: &Piece| whole(a) && whole(b) && b.end - a.start <= max;
        let left = (i > 0 && short && fits(&pieces[i - 1], &pieces[i]))
            .then(|| pieces[i].start - pieces[i - 1].end);
        let right = (i + 1 < pieces.len() && short && fits(&pieces[i], &pieces[i + 1]))
            .then(|| pieces[i + 1].start - pieces[i].end);
        let into_left = match (left, right) {
            (Some(l), Some(r)) => l <= r,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => {
                i += 1;
                continue;
            }
        };
        let (a, b) = if into_left { (i - 1, i) } else { (i, i + 1) };
        let b_piece = pieces.remove(b);
        let merged = &mut pieces[a];
        merged.end = b_piece.end;
        merged.segments = merged.segments.start..b_piece.segments.end;
        // Look again at the merged chunk: it may still be short.
        i = a;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 1000; // one sample per millisecond: positions read as ms

    fn seg(start: u64, end: u64) -> Segment {
        Segment {
            start,
            end,
            channel: None,
        }
    }

    fn params(max_ms: u64, min_ms: u64) -> ChunkParams {
        ChunkParams {
            max: Duration::from_millis(max_ms),
            min: Duration::from_millis(min_ms),
        }
    }

    /// Every property the chunks promise, on `segments` (time-ordered, one channel).
    fn check(segments: &[Segment], p: &ChunkParams) -> Vec<Chunk> {
        let max = p.max.as_millis() as u64;
        let out = chunks(segments, RATE, p);
        let mut seen = vec![0usize; segments.len()];
        for c in &out {
            assert!(c.len() <= max, "chunk over the maximum: {c:?}");
            assert!(!c.segments.is_empty());
            for &i in &c.segments {
                seen[i] += 1;
            }
            if c.segments.len() == 1 && segments[c.segments[0]].len() > max {
                continue; // a piece of a long segment
            }
            let first = &segments[c.segments[0]];
            let last = &segments[*c.segments.last().expect("one")];
            assert_eq!((c.start, c.end), (first.start, last.end), "{c:?}");
        }
        for (i, n) in seen.iter().enumerate() {
            let long = segments[i].len() > max;
            assert!(
                *n == 1 || (long && *n as u64 == segments[i].len().div_ceil(max)),
                "segment {i} is in {n} chunks"
            );
        }
        out
    }

    #[test]
    fn short_files_are_one_chunk() {
        let s = [seg(100, 900), seg(1500, 2500)];
        let out = check(&s, &params(30_000, 0));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].start, out[0].end), (100, 2500));
    }

    #[test]
    fn cuts_at_the_longest_pause_that_fits() {
        // Pauses of 200, 900 and 300 ms; 8 s of it does not fit in 6 s: the cut is at the 900.
        let s = [
            seg(0, 1000),
            seg(1200, 2800),
            seg(3700, 5000),
            seg(5300, 8000),
        ];
        let out = check(&s, &params(6000, 0));
        let bounds: Vec<(u64, u64)> = out.iter().map(|c| (c.start, c.end)).collect();
        assert_eq!(bounds, vec![(0, 2800), (3700, 8000)]);
    }

    #[test]
    fn a_segment_longer_than_the_maximum_is_split_evenly() {
        let s = [seg(0, 500), seg(1000, 26_000), seg(27_000, 28_000)];
        let out = check(&s, &params(10_000, 0));
        let long: Vec<(u64, u64)> = out
            .iter()
            .filter(|c| c.segments == vec![1])
            .map(|c| (c.start, c.end))
            .collect();
        assert_eq!(long, vec![(1000, 9333), (9333, 17666), (17666, 26000)]);
    }

    #[test]
    fn short_chunks_join_a_neighbour_when_they_fit() {
        // Max 8 s. From 0, D does not fit: the cut is at the 3 s pause after A. From B, D does
        // not fit either: the cut is at the 2 s pause after B. A and B are each 1 s long; with a
        // 1.5 s minimum, A joins B (together 5 s, within 8 s).
        let s = [
            seg(0, 1000),
            seg(4000, 5000),
            seg(7000, 7500),
            seg(7600, 12_500),
        ];
        let bounds = |out: Vec<Chunk>| out.iter().map(|c| (c.start, c.end)).collect::<Vec<_>>();
        assert_eq!(
            bounds(check(&s, &params(8000, 0))),
            vec![(0, 1000), (4000, 5000), (7000, 12_500)]
        );
        assert_eq!(
            bounds(check(&s, &params(8000, 1500))),
            vec![(0, 5000), (7000, 12_500)]
        );
    }

    #[test]
    fn channels_are_chunked_apart() {
        let mut s = vec![seg(0, 1000), seg(500, 1500), seg(2000, 3000)];
        s[0].channel = Some(1);
        s[1].channel = Some(2);
        s[2].channel = Some(1);
        let out = chunks(&s, RATE, &params(30_000, 0));
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].channel, out[0].segments.clone()),
            (Some(1), vec![0, 2])
        );
        assert_eq!(
            (out[1].channel, out[1].segments.clone()),
            (Some(2), vec![1])
        );
    }

    /// Random segment lists: the properties hold, and every cut is at a pause at least as long
    /// as every other pause it could have been made at.
    #[test]
    fn random_segments_keep_every_promise() {
        let mut rng = fastrand::Rng::with_seed(16);
        for _ in 0..2000 {
            let n = rng.usize(1..60);
            let mut t = rng.u64(0..2000);
            let mut s = Vec::new();
            for _ in 0..n {
                let len = if rng.u8(0..20) == 0 {
                    rng.u64(20_000..70_000)
                } else {
                    rng.u64(200..8000)
                };
                s.push(seg(t, t + len));
                t += len + rng.u64(0..3000);
            }
            let p = params(rng.u64(5_000..31_000), 0);
            let max = p.max.as_millis() as u64;
            let out = check(&s, &p);
            for pair in out.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if s[a.segments[0]].len() > max || s[b.segments[0]].len() > max {
                    continue;
                }
                let cut = b.start - a.end;
                // Any other cut after a's first segment that kept a within max.
                let first = a.segments[0];
                let mut k = first + 1;
                while k < s.len() && s[k].end - a.start <= max {
                    assert!(s[k].start - s[k - 1].end <= cut, "a longer pause at {k}");
                    k += 1;
                }
            }
            check(&s, &params(p.max.as_millis() as u64, rng.u64(0..4000)));
        }
    }
}
