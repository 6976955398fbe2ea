//! The decoder's front door: checks the header of a file before a demuxer trusts it.
//!
//! The first bytes are read ahead (and replayed to the decoder). For RIFF/WAVE files the format
//! chunk is validated against the configured limits: a sample rate or channel count far out of
//! range, or a format chunk of absurd length, is refused here with its real reason, before any
//! demuxer computes or allocates with it.

use super::{Limits, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, isomp4, spool};
use std::io::{self, Read, Seek, SeekFrom};
use symphonia::core::io::MediaSource;
use vadflow_common::{Failure, Reason};

/// Bytes read ahead and inspected.
const HEAD: usize = 4096;
/// Longest plausible WAVE format chunk (WAVEFORMATEXTENSIBLE is 40 bytes).
const MAX_FMT_LEN: u32 = 256;

/// A source whose first bytes were read ahead; they are replayed before the rest.
pub struct Guarded {
    head: Vec<u8>,
    pos: usize,
    inner: Box<dyn MediaSource>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("head", &self.head.len())
            .finish_non_exhaustive()
    }
}

impl Read for Guarded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl Seek for Guarded {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        // Only a seekable inner source (a file) gets here; its position is after the head.
        self.pos = self.head.len();
        self.inner.seek(to)
    }
}

impl MediaSource for Guarded {
    fn is_seekable(&self) -> bool {
        self.inner.is_seekable()
    }
    fn byte_len(&self) -> Option<u64> {
        self.inner.byte_len()
    }
}

fn invalid(msg: String) -> Failure {
    Failure::new(Reason::InvalidAudio, msg)
}

/// What the front door hands the demuxer.
#[allow(missing_debug_implementations)]
pub struct Front {
    /// The whole file again, from its first byte.
    pub source: Box<dyn MediaSource>,
    /// An MP4's edit (priming and duration), for gapless decoding.
    pub edit: Option<isomp4::Edit>,
    /// The container is read with seeks (MP4, CAF): `source` is seekable (a spool file if the
    /// input was a one-way stream).
    pub needs_seek: bool,
    /// What the native decoders would say of a stream they cannot decode but ffmpeg may (an Ogg
    /// stream of Speex, say): the native decoder refuses with it, `--decoder auto` then tries
    /// ffmpeg.
    pub unsupported: Option<Failure>,
}

/// Reads ahead, validates what it recognises, and returns a source that replays everything.
/// An MP4 or CAF read from a one-way stream is spooled to a temporary file first ([`spool`]).
pub fn guard(mut inner: Box<dyn MediaSource>, limits: &Limits) -> Result<Front, Failure> {
    let seekable = inner.is_seekable();
    let mut head = vec![0u8; HEAD];
    let mut filled = 0;
    while filled < HEAD {
        match inner.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(invalid(format!("cannot read audio: {e}"))),
        }
    }
    head.truncate(filled);
    if filled == 0 {
        return Err(invalid("the file is empty".into()));
    }
    check_wave(&head, limits)?;
    let unsupported = check_ogg(&head).err();
    let mp4 = isomp4::is_isomp4(&head);
    let must_spool = spool::needed(&head);
    let mut source: Box<dyn MediaSource> = if seekable {
        // A seekable source is rewound instead of replayed, so its positions stay true.
        inner
            .seek(SeekFrom::Start(0))
            .map_err(|e| invalid(format!("cannot rewind: {e}")))?;
        inner
    } else {
        let replay = Guarded {
            head,
            pos: 0,
            inner,
        };
        if must_spool {
            Box::new(spool::spool(replay, limits.max_input_bytes)?)
        } else {
            Box::new(replay)
        }
    };
    let edit = if mp4 {
        isomp4::edit(&mut source)?
    } else {
        None
    };
    Ok(Front {
        source,
        edit,
        needs_seek: must_spool,
        unsupported,
    })
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Validates the format chunk of a RIFF/WAVE (or RF64/BW64) header, if there is one in `head`.
fn check_wave(head: &[u8], limits: &Limits) -> Result<(), Failure> {
    if head.len() < 12
        || !matches!(&head[0..4], b"RIFF" | b"RF64" | b"BW64")
        || &head[8..12] != b"WAVE"
    {
        return Ok(());
    }
    let mut at = 12;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let len = le32(head, at + 4);
        if id == b"fmt " {
            if !(16..=MAX_FMT_LEN).contains(&len) {
                return Err(invalid(format!(
                    "WAVE format chunk of {len} bytes is not valid"
                )));
            }
            let body = at + 8;
            if body + 16 > head.len() {
                return Ok(());
            }
            let tag = le16(head, body);
            let channels = le16(head, body + 2);
            let rate = le32(head, body + 4);
            let bits = le16(head, body + 14);
            if channels == 0 {
                return Err(invalid("the WAVE header declares zero channels".into()));
            }
            if usize::from(channels) > limits.max_channels {
                return Err(Failure::new(
                    Reason::LimitExceeded,
                    format!(
                        "{channels} channels, more than the limit of {}",
                        limits.max_channels
                    ),
                ));
            }
            if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
                return Err(Failure::new(
                    Reason::LimitExceeded,
                    format!(
                        "sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
                    ),
                ));
            }
            // PCM, float and extensible formats need a sample size; compressed ones (GSM 6.10,
            // for one) declare 0.
            let pcm = matches!(tag, 0x0001 | 0x0003 | 0xFFFE);
            if (pcm && bits == 0) || bits > 64 {
                return Err(invalid(format!("{bits} bits per sample is not valid")));
            }
            return Ok(());
        }
        // Chunks are word-aligned; a chunk running past the head ends the inspection.
        at = match at.checked_add(8 + len as usize + (len as usize & 1)) {
            Some(next) => next,
            None => return Ok(()),
        };
    }
    Ok(())
}

/// Refuses an Ogg file whose first stream is a codec vadflow does not decode, naming it (the
/// demuxer would only report running out of data).
fn check_ogg(head: &[u8]) -> Result<(), Failure> {
    if head.len() < 27 || &head[0..4] != b"OggS" {
        return Ok(());
    }
    let data = 27 + usize::from(head[26]);
    let Some(packet) = head.get(data..) else {
        return Ok(());
    };
    let known: [&[u8]; 4] = [b"OpusHead", b"\x01vorbis", b"\x7fFLAC", b"fishead\0"];
    if packet.len() < 8 || known.iter().any(|k| packet.starts_with(k)) {
        return Ok(());
    }
    let name = if packet.starts_with(b"Speex   ") {
        "Speex"
    } else if packet.starts_with(b"\x80theora") {
        "Theora"
    } else if packet.starts_with(b"PCM     ") {
        "Ogg PCM"
    } else {
        "an unknown codec"
    };
    Err(Failure::new(
        Reason::UnsupportedCodec,
        format!("the Ogg stream holds {name}, which is not supported (Opus, Vorbis and FLAC are)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(fmt_len: u32, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let mut h = b"RIFF\0\0\0\0WAVE".to_vec();
        h.extend_from_slice(b"LIST");
        h.extend_from_slice(&4u32.to_le_bytes());
        h.extend_from_slice(b"INFO");
        h.extend_from_slice(b"fmt ");
        h.extend_from_slice(&fmt_len.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&channels.to_le_bytes());
        h.extend_from_slice(&rate.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&bits.to_le_bytes());
        h
    }

    #[test]
    fn checks_the_format_chunk_after_other_chunks() {
        let l = Limits::default();
        assert!(check_wave(&header(16, 2, 44_100, 16), &l).is_ok());
        let reason = |h: Vec<u8>| check_wave(&h, &l).map_err(|f| f.reason);
        assert_eq!(
            reason(header(16, 65_535, 44_100, 16)),
            Err(Reason::LimitExceeded)
        );
        assert_eq!(reason(header(16, 0, 44_100, 16)), Err(Reason::InvalidAudio));
        assert_eq!(
            reason(header(16, 1, 4_000_000_000, 16)),
            Err(Reason::LimitExceeded)
        );
        assert_eq!(
            reason(header(0xFFFF_FFF0, 1, 16_000, 16)),
            Err(Reason::InvalidAudio)
        );
        assert_eq!(reason(header(16, 1, 16_000, 0)), Err(Reason::InvalidAudio));
        let mut speex = b"OggS\0\x02".to_vec();
        speex.resize(26, 0);
        speex.push(1);
        speex.push(80);
        speex.extend_from_slice(b"Speex   1.2");
        assert_eq!(
            check_ogg(&speex).map_err(|f| f.reason),
            Err(Reason::UnsupportedCodec)
        );
        let mut opus = speex.clone();
        opus.truncate(28);
        opus.extend_from_slice(b"OpusHead\x01\x02");
        assert!(check_ogg(&opus).is_ok());
        // Not a WAVE file: nothing to say.
        assert!(check_wave(b"fLaC\0\0\0\x22", &l).is_ok());
    }

    #[test]
    fn replays_the_head_to_an_unseekable_reader() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let src = symphonia::core::io::ReadOnlySource::new(std::io::Cursor::new(data.clone()));
        let mut g = guard(Box::new(src), &Limits::default())
            .expect("not a wave")
            .source;
        let mut out = Vec::new();
        g.read_to_end(&mut out).expect("read");
        assert_eq!(out, data);
    }
}
