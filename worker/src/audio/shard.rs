//! **shard**: training shards. Each segment's clip (16-bit WAV at the VAD rate) and its metadata
//! (JSON) become one WebDataset sample, `{key}.wav` and `{key}.json`, appended to a POSIX tar
//! archive; an archive is closed and handed on when the next sample would take it past the
//! size limit, so a file's segments fill as few shards as the limit allows. Deterministic:
//! fixed modes, owners and times, names from the source and the segment's number.

use super::levels::SegmentScores;
use super::render::{ScoresDoc, ms};
use super::segment::Segment;
use serde::Serialize;
use std::fmt::Write as _;

/// Smallest and largest shard size accepted (`--shard-max-bytes`). A shard is held in memory
/// until it is full.
pub const MIN_SHARD_BYTES: u64 = 64 * 1024;
pub const MAX_SHARD_BYTES: u64 = 512 * 1024 * 1024;
/// Default shard size.
pub const DEFAULT_SHARD_BYTES: u64 = 16 * 1024 * 1024;

const BLOCK: usize = 512;

/// The name of shard `n` (0-based) under the results prefix.
pub fn shard_name(n: usize) -> String {
    format!("shards/{n:06}.tar")
}

/// A sample key for segment `index` (0-based) of the source `uri`: the source's file name with
/// every character but `A-Z a-z 0-9 _ -` replaced by `_` (WebDataset splits a name at its first
/// dot), then the segment's number from 1.
pub fn sample_key(uri: &str, index: usize) -> String {
    let name = uri.rsplit('/').next().unwrap_or(uri);
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    format!("{stem}_{:06}", index + 1)
}

#[derive(Serialize)]
struct SampleDoc<'a> {
    source: &'a str,
    /// The segment's number in `segments.json`, from 1.
    segment: usize,
    start: f64,
    end: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<u16>,
    sample_rate: u32,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    scores: Option<ScoresDoc>,
}

/// A sample's `.json`: where the clip comes from, and its scores as `segments.json` has them.
pub fn sample_json(
    uri: &str,
    index: usize,
    seg: &Segment,
    rate: u32,
    scores: Option<&SegmentScores>,
) -> Vec<u8> {
    serde_json::to_vec(&SampleDoc {
        source: uri,
        segment: index + 1,
        start: ms(seg.start, rate),
        end: ms(seg.end, rate),
        channel: seg.channel,
        sample_rate: rate,
        scores: scores.map(ScoresDoc::of),
    })
    .unwrap_or_default()
}

/// Builds shards; [`Shards::add`] returns a shard each time one is full.
#[derive(Debug)]
pub struct Shards {
    limit: usize,
    open: Vec<u8>,
    samples: usize,
    written: usize,
}

impl Shards {
    /// `limit` in bytes, between [`MIN_SHARD_BYTES`] and [`MAX_SHARD_BYTES`].
    pub fn new(limit: u64) -> Shards {
        Shards {
            limit: limit.clamp(MIN_SHARD_BYTES, MAX_SHARD_BYTES) as usize,
            open: Vec::new(),
            samples: 0,
            written: 0,
        }
    }

    /// Adds one sample. If the open shard cannot take it, that shard is closed first and
    /// returned with its number; a sample larger than the limit gets a shard of its own.
    pub fn add(&mut self, key: &str, json: &[u8], wav: &[u8]) -> Option<(usize, Vec<u8>)> {
        let size = entry_size(json.len()) + entry_size(wav.len());
        let full = self.samples > 0 && self.open.len() + size + 2 * BLOCK > self.limit;
        let done = if full { self.close() } else { None };
        // The .json first: readers see the metadata before the audio.
        append(&mut self.open, &format!("{key}.json"), json);
        append(&mut self.open, &format!("{key}.wav"), wav);
        self.samples += 1;
        done
    }

    /// Closes the open shard, if it holds anything.
    pub fn finish(&mut self) -> Option<(usize, Vec<u8>)> {
        self.close()
    }

    fn close(&mut self) -> Option<(usize, Vec<u8>)> {
        if self.samples == 0 {
            return None;
        }
        let mut shard = std::mem::take(&mut self.open);
        shard.resize(shard.len() + 2 * BLOCK, 0);
        self.samples = 0;
        self.written += 1;
        Some((self.written - 1, shard))
    }
}

fn entry_size(len: usize) -> usize {
    BLOCK + len.div_ceil(BLOCK) * BLOCK
}

/// Appends one regular file to a ustar archive. Names are at most 100 bytes (keys are built to
/// fit).
fn append(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut h = [0u8; BLOCK];
    let put = |h: &mut [u8; BLOCK], at: usize, bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
    };
    let name = &name.as_bytes()[..name.len().min(100)];
    put(&mut h, 0, name);
    put(&mut h, 100, b"0000644\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    let mut size = String::new();
    let _ = write!(size, "{:011o}\0", data.len());
    put(&mut h, 124, size.as_bytes());
    put(&mut h, 136, b"00000000000\0");
    put(&mut h, 148, b"        ");
    h[156] = b'0';
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let mut chk = String::new();
    let _ = write!(chk, "{sum:06o}\0 ");
    put(&mut h, 148, chk.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len() + (BLOCK - data.len() % BLOCK) % BLOCK, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_no_dots_and_stay_short() {
        assert_eq!(sample_key("s3://b/calls/a.b c.wav", 0), "a_b_c_wav_000001");
        let long = format!("s3://b/{}.flac", "x".repeat(300));
        assert!(sample_key(&long, 41).len() + ".json".len() <= 100);
    }

    #[test]
    fn shards_close_at_the_limit_and_hold_whole_samples() {
        let mut s = Shards::new(MIN_SHARD_BYTES);
        let wav = vec![7u8; 20_000];
        let mut shards = Vec::new();
        for i in 0..10 {
            if let Some(done) = s.add(&format!("k_{i:06}"), b"{}", &wav) {
                shards.push(done);
            }
        }
        shards.extend(s.finish());
        assert!(shards.len() >= 3, "{}", shards.len());
        for (n, (i, bytes)) in shards.iter().enumerate() {
            assert_eq!(*i, n);
            assert!(bytes.len() as u64 <= MIN_SHARD_BYTES);
            assert_eq!(bytes.len() % BLOCK, 0);
            assert!(bytes[bytes.len() - 2 * BLOCK..].iter().all(|&b| b == 0));
        }
        // A header's checksum is what tar computes: the sum with the field as spaces.
        let h = &shards[0].1[..BLOCK];
        let mut copy = h.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
        let field = std::str::from_utf8(&h[148..154]).expect("octal");
        assert_eq!(u32::from_str_radix(field, 8).expect("octal"), sum);
        assert!(s.finish().is_none(), "nothing left");
    }
}
