//! MP4 / M4A / MOV (ISO base media files) before symphonia's demuxer reads them.
//!
//! The index of an MP4 (`moov`) is often after the media data (`mdat`): ffmpeg and most
//! recorders write it last, so a one-way stream is spooled first (`super::spool`).
//!
//! **Gapless.** symphonia's demuxer ignores the edit list, where an MP4 records the encoder's
//! priming samples (AAC: 1024 or 2112 frames) and the real duration. [`edit`] reads the first
//! edit of the first sound track, so the decoder trims them and the audio keeps its timing.
//!
//! Every box size is checked against its parent's end before anything is read from it; at most a
//! fixed number of boxes is visited per level, whatever a file declares.

use std::io::{Read, Seek, SeekFrom};
use vadflow_common::{Failure, Reason};

/// Boxes visited per level before the file is declared invalid.
const MAX_BOXES_PER_LEVEL: usize = 4096;

/// Whether `head` (the first bytes of a file) starts like an ISO base media file.
pub fn is_isomp4(head: &[u8]) -> bool {
    head.len() >= 12
        && matches!(
            &head[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"wide" | b"free" | b"skip"
        )
        && u32::from_be_bytes([head[0], head[1], head[2], head[3]]) >= 8
}

/// The part of the media timeline the file says to play: `skip` media ticks from the start, then
/// `duration` movie ticks (when given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    pub skip: u64,
    pub media_timescale: u32,
    pub duration: Option<u64>,
    pub movie_timescale: u32,
}

impl Edit {
    /// Frames to drop at the start, at `rate`.
    pub fn skip_frames(&self, rate: u32) -> u64 {
        scale(self.skip, rate, self.media_timescale)
    }

    /// Frames to keep after the skipped ones, at `rate`.
    pub fn keep_frames(&self, rate: u32) -> Option<u64> {
        self.duration
            .filter(|&d| d > 0)
            .map(|d| scale(d, rate, self.movie_timescale))
    }
}

fn scale(ticks: u64, rate: u32, timescale: u32) -> u64 {
    (u128::from(ticks) * u128::from(rate) / u128::from(timescale.max(1))) as u64
}

fn invalid(msg: String) -> Failure {
    Failure::new(Reason::InvalidAudio, msg)
}

/// A box: its type and where its body lies.
#[derive(Debug, Clone, Copy)]
struct BoxAt {
    kind: [u8; 4],
    body: u64,
    end: u64,
}

/// The child boxes of the region `[from, to)`.
fn children(r: &mut (impl Read + Seek), from: u64, to: u64) -> Result<Vec<BoxAt>, Failure> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        if out.len() == MAX_BOXES_PER_LEVEL {
            return Err(invalid(format!(
                "MP4: more than {MAX_BOXES_PER_LEVEL} boxes in one level"
            )));
        }
        let head = read_at::<8>(r, at)?;
        let kind = [head[4], head[5], head[6], head[7]];
        let (size, header) = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
            0 => (to - at, 8),
            1 => (u64::from_be_bytes(read_at::<8>(r, at + 8)?), 16),
            n => (u64::from(n), 8),
        };
        let name = String::from_utf8_lossy(&kind).into_owned();
        if size < header || at.checked_add(size).is_none_or(|end| end > to) {
            return Err(invalid(format!(
                "MP4: box '{name}' at byte {at} declares {size} bytes, past the end of its parent at {to}"
            )));
        }
        out.push(BoxAt {
            kind,
            body: at + header,
            end: at + size,
        });
        at += size;
    }
    Ok(out)
}

fn read_at<const N: usize>(r: &mut (impl Read + Seek), at: u64) -> Result<[u8; N], Failure> {
    let mut buf = [0u8; N];
    r.seek(SeekFrom::Start(at))
        .and_then(|_| r.read_exact(&mut buf))
        .map_err(|e| invalid(format!("MP4: cannot read {N} bytes at byte {at}: {e}")))?;
    Ok(buf)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn find(boxes: &[BoxAt], kind: &[u8; 4]) -> Option<BoxAt> {
    boxes.iter().copied().find(|b| &b.kind == kind)
}

/// The timescale of an `mvhd` or `mdhd` box (version 0 or 1).
fn timescale(r: &mut (impl Read + Seek), b: BoxAt) -> Result<u32, Failure> {
    let head = read_at::<24>(r, b.body)?;
    Ok(if head[0] == 1 {
        be32(&head, 20)
    } else {
        be32(&head, 12)
    })
}

/// The first edit of the first sound track, when the file has `moov` and an edit list; rewinds
/// `r` to the start. A missing `moov` is left for the demuxer to report.
pub fn edit(r: &mut (impl Read + Seek)) -> Result<Option<Edit>, Failure> {
    let len = r
        .seek(SeekFrom::End(0))
        .map_err(|e| invalid(format!("MP4: cannot seek: {e}")))?;
    let found = first_sound_edit(r, len);
    r.seek(SeekFrom::Start(0))
        .map_err(|e| invalid(format!("MP4: cannot rewind: {e}")))?;
    found
}

fn first_sound_edit(r: &mut (impl Read + Seek), len: u64) -> Result<Option<Edit>, Failure> {
    let top = children(r, 0, len)?;
    let Some(moov) = find(&top, b"moov") else {
        return Ok(None);
    };
    let in_moov = children(r, moov.body, moov.end)?;
    let Some(mvhd) = find(&in_moov, b"mvhd") else {
        return Err(invalid("MP4: the moov box has no mvhd".into()));
    };
    let movie_timescale = timescale(r, mvhd)?;
    for trak in in_moov.iter().filter(|b| &b.kind == b"trak") {
        let in_trak = children(r, trak.body, trak.end)?;
        let Some(mdia) = find(&in_trak, b"mdia") else {
            continue;
        };
        let in_mdia = children(r, mdia.body, mdia.end)?;
        let (Some(hdlr), Some(mdhd)) = (find(&in_mdia, b"hdlr"), find(&in_mdia, b"mdhd")) else {
            continue;
        };
        if &read_at::<12>(r, hdlr.body)?[8..12] != b"soun" {
            continue;
        }
        let media_timescale = timescale(r, mdhd)?;
        let Some(elst) = find(&in_trak, b"edts")
            .map(|edts| children(r, edts.body, edts.end))
            .transpose()?
            .and_then(|in_edts| find(&in_edts, b"elst"))
        else {
            return Ok(None);
        };
        return read_elst(r, elst, media_timescale, movie_timescale);
    }
    Ok(None)
}

/// The first non-empty entry of an edit list (an empty one, `media_time = -1`, inserts silence
/// before the track: it is not trimmed, so it is skipped).
fn read_elst(
    r: &mut (impl Read + Seek),
    elst: BoxAt,
    media_timescale: u32,
    movie_timescale: u32,
) -> Result<Option<Edit>, Failure> {
    let head = read_at::<8>(r, elst.body)?;
    let v1 = head[0] == 1;
    let entry = if v1 { 20 } else { 12 };
    let count = u64::from(be32(&head, 4));
    // Only the first entries are read, whatever the declared count.
    for i in 0..count.min(4) {
        let at = elst.body + 8 + i * entry;
        if at + entry > elst.end {
            return Err(invalid(format!(
                "MP4: the edit list declares {count} entries but holds fewer"
            )));
        }
        let (duration, media_time) = if v1 {
            let e = read_at::<20>(r, at)?;
            (be64(&e, 0), be64(&e, 8) as i64)
        } else {
            let e = read_at::<12>(r, at)?;
            (u64::from(be32(&e, 0)), i64::from(be32(&e, 4) as i32))
        };
        if media_time < 0 {
            continue;
        }
        return Ok(Some(Edit {
            skip: media_time as u64,
            media_timescale,
            duration: (duration > 0).then_some(duration),
            movie_timescale,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    fn header_box(kind: &[u8; 4], timescale: u32) -> Vec<u8> {
        let mut body = vec![0u8; 24];
        body[12..16].copy_from_slice(&timescale.to_be_bytes());
        bx(kind, &body)
    }

    fn file(elst_entries: &[(u32, i32)]) -> Vec<u8> {
        let mut elst = vec![0u8, 0, 0, 0];
        elst.extend_from_slice(&(elst_entries.len() as u32).to_be_bytes());
        for (d, t) in elst_entries {
            elst.extend_from_slice(&d.to_be_bytes());
            elst.extend_from_slice(&t.to_be_bytes());
            elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        }
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(b"soun");
        let mdia = [header_box(b"mdhd", 44_100), bx(b"hdlr", &hdlr)].concat();
        let trak = [bx(b"edts", &bx(b"elst", &elst)), bx(b"mdia", &mdia)].concat();
        let moov = [header_box(b"mvhd", 1000), bx(b"trak", &trak)].concat();
        [
            bx(b"ftyp", b"M4A \0\0\0\0"),
            bx(b"mdat", &[0; 32]),
            bx(b"moov", &moov),
        ]
        .concat()
    }

    #[test]
    fn reads_the_priming_and_duration_of_the_sound_track() {
        let bytes = file(&[(2_000, 1024)]);
        assert!(is_isomp4(&bytes));
        let e = edit(&mut Cursor::new(bytes))
            .expect("valid")
            .expect("an edit");
        assert_eq!(e.skip_frames(44_100), 1024);
        assert_eq!(e.skip_frames(16_000), 371);
        assert_eq!(e.keep_frames(16_000), Some(32_000));
        // An empty edit first (a delay) is passed over.
        let e = edit(&mut Cursor::new(file(&[(500, -1), (2_000, 2112)])))
            .expect("valid")
            .expect("an edit");
        assert_eq!(e.skip, 2112);
    }

    #[test]
    fn refuses_boxes_past_their_parent_and_lying_counts() {
        let mut bytes = file(&[(2_000, 1024)]);
        // The moov (last box) claims more bytes than the file has.
        let pos = bytes.windows(4).rposition(|w| w == b"moov").expect("moov") - 4;
        bytes[pos..pos + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        let f = edit(&mut Cursor::new(bytes)).expect_err("past the end");
        assert_eq!(f.reason, Reason::InvalidAudio);
        assert!(f.message.contains("'moov'"), "{}", f.message);

        let mut bytes = file(&[(2_000, 1024)]);
        let pos = bytes.windows(4).position(|w| w == b"elst").expect("elst") + 8;
        bytes[pos..pos + 4].copy_from_slice(&1_000_000u32.to_be_bytes());
        let f = edit(&mut Cursor::new(bytes)).expect("the first entries suffice");
        assert_eq!(f.map(|e| e.skip), Some(1024));

        assert!(!is_isomp4(b"RIFF\0\0\0\0WAVEfmt "));
    }
}
