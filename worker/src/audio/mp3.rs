//! **decode**, MPEG audio: MPEG-1/2/2.5 frames of layers I, II and III (MP1, MP2, MP3), demuxed by symphonia (MP3 files, Matroska,
//! MP4), decoded by nanomp3-core, a safe Rust port of minimp3 whose output is bit-identical to
//! minimp3's; 1.75× faster than symphonia's MP3 decoder on the same frames (docs/performance.md).
//!
//! Each packet is one frame (or a few). minimp3 accepts a buffer that is exactly one frame once
//! it has seen the stream's first frame, and keeps the bit reservoir between calls, so packets go
//! in one by one. The encoder delay and padding the demuxer reads from a LAME tag arrive as each
//! packet's trim, which is applied here as symphonia's decoder applies it. A frame whose
//! reservoir is missing (a stream that starts mid-way) becomes silence of its length, so the
//! timing of what follows is kept.

use nanomp3_core::{DecodeError, Decoder, MAX_SAMPLES_PER_FRAME};
use symphonia::core::packet::Packet;
use vadflow_common::telemetry::decoder_warning;

/// The MP3 decoder of one stream.
pub struct Mp3 {
    dec: Decoder,
    pcm: Vec<f32>,
    frames: Vec<f32>,
    channels: usize,
    /// A frame has been decoded: a missing reservoir is no longer the normal start.
    started: bool,
}

impl std::fmt::Debug for Mp3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3")
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl Mp3 {
    /// A decoder for a stream of `channels` (1 or 2) channels.
    pub fn new(channels: usize) -> Result<Mp3, String> {
        if !(1..=2).contains(&channels) {
            return Err(format!("mp3: {channels} channels (MP3 has 1 or 2)"));
        }
        Ok(Mp3 {
            dec: Decoder::new(),
            pcm: vec![0.0; MAX_SAMPLES_PER_FRAME],
            frames: Vec::with_capacity(4 * MAX_SAMPLES_PER_FRAME),
            channels,
            started: false,
        })
    }

    /// Decodes one packet and appends its samples (averaged to mono, or interleaved) to `out`.
    pub fn decode(
        &mut self,
        packet: &Packet,
        interleave: bool,
        out: &mut Vec<f32>,
    ) -> Result<(), String> {
        self.frames.clear();
        let ch = self.channels;
        let mut rest: &[u8] = &packet.data;
        let mut failed = None;
        while !rest.is_empty() {
            let (consumed, result) = self.dec.decode(rest, &mut self.pcm);
            rest = rest.get(consumed..).unwrap_or_default();
            match result {
                Ok(info) => {
                    self.started = true;
                    let n = info.samples_produced;
                    let got = usize::from(info.channels.num());
                    let pcm = &self.pcm[..n * got];
                    match (got, ch) {
                        (a, b) if a == b => self.frames.extend_from_slice(pcm),
                        // A stream whose frames change mode: each frame to the declared channels.
                        (1, _) => self.frames.extend(pcm.iter().flat_map(|&x| [x, x])),
                        _ => self
                            .frames
                            .extend(pcm.chunks_exact(2).map(|f| (f[0] + f[1]) * 0.5)),
                    }
                }
                Err(DecodeError::ReservoirUnavailable(info)) => {
                    let n = if info.sample_rate >= 32_000 {
                        1152
                    } else {
                        576
                    };
                    self.frames.resize(self.frames.len() + n * ch, 0.0);
                }
                Err(DecodeError::NoFrame) => break,
                Err(e) => {
                    decoder_warning(|| format!("mp3: {e}"));
                    failed = Some(e);
                }
            }
            if consumed == 0 {
                break;
            }
        }
        if self.frames.is_empty()
            && let Some(e) = failed
        {
            return Err(format!("mp3: {e}"));
        }
        let total = self.frames.len() / ch;
        let start = (packet.trim_start.get() as usize).min(total);
        let end = total
            .saturating_sub(packet.trim_end.get() as usize)
            .max(start);
        let kept = &self.frames[start * ch..end * ch];
        if interleave || ch == 1 {
            out.extend_from_slice(kept);
        } else {
            super::packet::downmix_into(kept, ch, out);
        }
        Ok(())
    }
}
