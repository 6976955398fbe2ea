//! **decode**: any supported container and codec to mono `f32` at the source rate, streaming.
//!
//! symphonia demuxes WAV (PCM, float, µ-law, A-law, IMA ADPCM), FLAC, MP1/MP2/MP3, Ogg, MP4 / M4A /
//! MOV, ADTS, Matroska / WebM, AIFF / AIFC and CAF, and decodes PCM, FLAC, Vorbis and AAC-LC;
//! nanomp3-core decodes MPEG audio, layers I to III ([`super::mp3`]), vadflow's own decoder ALAC
//! ([`super::alac`]), libopus Opus from Ogg and Matroska ([`super::opus`]): each where it was
//! measurably faster (docs/performance.md). Encoder delay and padding are trimmed (gapless)
//! wherever the container records them, MP4's edit list included ([`super::isomp4`]), so the same
//! audio keeps the same timing in every format. Channels are averaged into mono.

use super::alac::Alac;
use super::guard::Front;
use super::mp3::Mp3;
use super::opus::{OpusState, decode_opus, open_opus};
use super::packet::{decode_alac, decode_interleaved, decode_symphonia, guarded};
use super::pcm::Pcm16;
use super::{Limits, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known::{
    CODEC_ID_ALAC, CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_MP3, CODEC_ID_OPUS,
};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymErr;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::well_known::FORMAT_ID_ADTS;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use vadflow_common::{Failure, Reason};

/// The error of a file no native demuxer recognises.
pub const NOT_RECOGNISED: &str = "not a recognised audio format (no known container signature)";
/// Undecodable packets tolerated (and skipped) before the file is declared invalid.
const MAX_BAD_PACKETS: u32 = 10;
/// Delay of the MPEG audio synthesis filterbank, in samples.
const MPA_FILTERBANK_DELAY: u64 = 481;
/// The native streaming decoder, producing mono samples.
pub struct Native {
    format: Box<dyn FormatReader>,
    track_id: u32,
    codec: Codec,
    sample_rate: u32,
    channels: usize,
    /// Frames the container declares, when it does (used to detect truncation).
    declared_frames: Option<u64>,
    max_frames: u64,
    frames_out: u64,
    bad_packets: u32,
    interleaved: Vec<f32>,
    codec_name: &'static str,
    trim: Trim,
    /// Channels in the output: 1 (averaged), or all of the source's, interleaved.
    out_channels: usize,
}

/// Frames the container says are not part of the audio (an MP4's edit list): priming at the
/// start, padding after the real duration.
#[derive(Debug, Default)]
struct Trim {
    skip: u64,
    keep: Option<u64>,
}

impl Trim {
    /// Applies to the frames (of `channels` interleaved samples) appended to `out` after
    /// `before`.
    fn apply(&mut self, out: &mut Vec<f32>, before: usize, channels: usize) {
        let skip = (self.skip as usize).min((out.len() - before) / channels);
        if skip > 0 {
            out.drain(before..before + skip * channels);
            self.skip -= skip as u64;
        }
        if let Some(keep) = &mut self.keep {
            let n = ((out.len() - before) / channels).min(*keep as usize);
            out.truncate(before + n * channels);
            *keep -= n as u64;
        }
    }
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Native")
            .field("codec", &self.codec_name)
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

enum Codec {
    Symphonia(Box<dyn AudioDecoder>),
    Alac(Box<Alac>),
    Mp3(Box<Mp3>),
    Opus(OpusState),
    Pcm16(Pcm16),
}

pub(super) fn invalid(msg: impl Into<String>) -> Failure {
    Failure::new(Reason::InvalidAudio, msg)
}

fn from_symphonia(e: SymErr) -> Failure {
    match e {
        SymErr::Unsupported(what) => {
            Failure::new(Reason::UnsupportedCodec, format!("unsupported: {what}"))
        }
        SymErr::LimitError(what) => Failure::new(Reason::LimitExceeded, format!("limit: {what}")),
        SymErr::IoError(io) => invalid(format!("cannot read audio: {io}")),
        other => invalid(format!("not decodable audio: {other}")),
    }
}

impl Native {
    /// Probes the container (past its front door, [`super::guard`]) and opens the first audio
    /// track. A source of 2 to `keep_channels` channels is decoded with its channels interleaved
    /// ([`Native::out_channels`]); any other is averaged to mono.
    ///
    /// `extension` is a hint (from the key or file name). `preferred_rate` is the rate the
    /// caller will resample to; codecs that can decode directly at that rate (Opus) do so.
    pub fn open(
        front: Front,
        extension: Option<&str>,
        limits: &Limits,
        preferred_rate: u32,
        keep_channels: usize,
    ) -> Result<Native, Failure> {
        if let Some(refused) = front.unsupported {
            return Err(refused);
        }
        let source = front.source;
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(ext) = extension {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| match e {
                SymErr::Unsupported(what) if what.contains("no suitable format reader") => {
                    invalid(NOT_RECOGNISED)
                }
                SymErr::Unsupported(what) if what.contains("unsupported") => {
                    Failure::new(Reason::UnsupportedCodec, format!("unsupported: {what}"))
                }
                SymErr::Unsupported(what) => invalid(format!("not valid audio: {what}")),
                // The probe read to the end without finding a container it knows.
                SymErr::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    invalid(NOT_RECOGNISED)
                }
                other => from_symphonia(other),
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .or_else(|| format.first_track(TrackType::Audio))
            .ok_or_else(|| invalid("the file has no audio track"))?;
        let track_id = track.id;
        let track_delay = track.delay;
        // ADTS has no length field: its demuxer estimates one from the bitrate, which is no
        // promise to check truncation against.
        let declared_frames = track
            .num_frames
            .filter(|_| format.format_info().format != FORMAT_ID_ADTS);
        let params = match &track.codec_params {
            Some(CodecParameters::Audio(p)) => p.clone(),
            _ => return Err(invalid("the audio track has no codec parameters")),
        };

        let channels = params.channels.as_ref().map(|c| c.count());
        if let Some(n) = channels
            && n > limits.max_channels
        {
            return Err(Failure::new(
                Reason::LimitExceeded,
                format!(
                    "{n} channels, more than the limit of {}",
                    limits.max_channels
                ),
            ));
        }
        let keep = |n: usize| {
            if (2..=keep_channels).contains(&n) {
                n
            } else {
                1
            }
        };
        let (codec, sample_rate, channels, codec_name) = if params.codec == CODEC_ID_OPUS {
            let (state, rate, channels) = open_opus(&params, preferred_rate, keep_channels)?;
            (Codec::Opus(state), rate, channels, "opus")
        } else if params.codec == CODEC_ID_ALAC {
            let dec = Alac::new(params.extra_data.as_deref())
                .map_err(|e| Failure::new(Reason::InvalidAudio, e))?;
            let rate = params
                .sample_rate
                .ok_or_else(|| invalid("the stream does not declare a sample rate"))?;
            check_rate(rate)?;
            let channels = dec.channels();
            (Codec::Alac(Box::new(dec)), rate, channels, "alac")
        } else if [CODEC_ID_MP1, CODEC_ID_MP2, CODEC_ID_MP3].contains(&params.codec) {
            let rate = params
                .sample_rate
                .ok_or_else(|| invalid("the stream does not declare a sample rate"))?;
            check_rate(rate)?;
            let channels =
                channels.ok_or_else(|| invalid("the stream does not declare its channels"))?;
            let dec = Mp3::new(channels).map_err(invalid)?;
            let name = match params.codec {
                CODEC_ID_MP1 => "mp1",
                CODEC_ID_MP2 => "mp2",
                _ => "mp3",
            };
            (Codec::Mp3(Box::new(dec)), rate, channels, name)
        } else {
            let rate = params
                .sample_rate
                .ok_or_else(|| invalid("the stream does not declare a sample rate"))?;
            check_rate(rate)?;
            let registered = symphonia::default::get_codecs()
                .get_audio_decoder(params.codec)
                .ok_or_else(|| {
                    Failure::new(
                        Reason::UnsupportedCodec,
                        format!("codec {} is not supported", params.codec),
                    )
                })?;
            let name = registered.codec.info.short_name;
            let channels =
                channels.ok_or_else(|| invalid("the stream does not declare its channels"))?;
            let codec = match Pcm16::for_params(&params, channels) {
                Some(pcm) => Codec::Pcm16(pcm),
                None => Codec::Symphonia(
                    (registered.factory)(&params, &AudioDecoderOptions::default())
                        .map_err(from_symphonia)?,
                ),
            };
            (codec, rate, channels, name)
        };
        if channels == 0 {
            return Err(invalid("the stream declares zero channels"));
        }
        let max_frames = limits
            .max_duration
            .as_secs()
            .saturating_mul(u64::from(sample_rate));
        let mut decoder = Native {
            format,
            track_id,
            codec,
            sample_rate,
            channels,
            declared_frames: None,
            max_frames,
            frames_out: 0,
            bad_packets: 0,
            interleaved: Vec::new(),
            codec_name,
            trim: Trim::default(),
            out_channels: keep(channels),
        };
        if let (
            Some(edit),
            Codec::Symphonia(_) | Codec::Pcm16(_) | Codec::Alac(_) | Codec::Mp3(_),
        ) = (front.edit, &decoder.codec)
        {
            decoder.trim = Trim {
                skip: edit.skip_frames(sample_rate),
                keep: edit.keep_frames(sample_rate),
            };
        } else if [CODEC_ID_MP1, CODEC_ID_MP2].contains(&params.codec) && track_delay.is_none() {
            // Layers I and II carry no delay field; their synthesis filterbank delays the audio
            // by 481 samples (512 − 31), which every decoder outputs first.
            decoder.trim.skip = MPA_FILTERBANK_DELAY;
        }
        if let Some(n) = declared_frames.filter(|_| {
            matches!(
                decoder.codec,
                Codec::Symphonia(_) | Codec::Pcm16(_) | Codec::Alac(_) | Codec::Mp3(_)
            )
        }) {
            let bytes = params
                .bits_per_coded_sample
                .or(params.bits_per_sample)
                .unwrap_or(16);
            decoder.declared_frames =
                plausible_declared_frames(n, channels, u64::from(bytes).div_ceil(8));
            if n > max_frames && decoder.declared_frames.is_some() {
                return Err(too_long(limits));
            }
        }
        Ok(decoder)
    }

    /// Output sample rate (the source rate, or the decode rate chosen for Opus).
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Channels of the source, before downmixing.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Short name of the codec, e.g. `pcm_s16le`, `mp3`, `opus`.
    pub fn codec_name(&self) -> &'static str {
        self.codec_name
    }

    /// Channels in the output of [`Native::next_block`]: 1, or the source's, interleaved.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Decodes the next packet and appends its samples (mono, or [`Native::out_channels`]
    /// interleaved) to `out`. Returns `false` at the end of the stream.
    pub fn next_block(&mut self, out: &mut Vec<f32>, limits: &Limits) -> Result<bool, Failure> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return self.finish(),
                Err(SymErr::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return self.finish();
                }
                Err(SymErr::ResetRequired) => {
                    return Err(Failure::new(
                        Reason::UnsupportedCodec,
                        "the stream changes its format midway (chained streams are not supported)",
                    ));
                }
                Err(e) => return Err(from_symphonia(e)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let before = out.len();
            let decoded = match &mut self.codec {
                Codec::Symphonia(dec) if self.out_channels > 1 => {
                    decode_interleaved(dec.as_mut(), &packet, &mut self.interleaved, out)
                }
                Codec::Symphonia(dec) => {
                    decode_symphonia(dec.as_mut(), &packet, &mut self.interleaved, out)
                }
                Codec::Alac(dec) => decode_alac(dec, &packet, self.out_channels > 1, out),
                Codec::Mp3(dec) => {
                    guarded("MP3", || dec.decode(&packet, self.out_channels > 1, out))
                }
                Codec::Opus(state) => decode_opus(state, &packet, self.sample_rate, out),
                Codec::Pcm16(pcm) => {
                    pcm.decode(&packet.data, self.out_channels > 1, out);
                    Ok(())
                }
            };
            if let Err(why) = decoded {
                vadflow_common::telemetry::decoder_warning(|| why.clone());
                self.bad_packets += 1;
                if self.bad_packets > MAX_BAD_PACKETS {
                    return Err(invalid(format!(
                        "more than {MAX_BAD_PACKETS} undecodable packets; last: {why}"
                    )));
                }
                continue;
            }
            self.frames_out += ((out.len() - before) / self.out_channels) as u64;
            if self.frames_out > self.max_frames {
                return Err(too_long(limits));
            }
            self.trim.apply(out, before, self.out_channels);
            if out.len() > before {
                return Ok(true);
            }
        }
    }

    fn finish(&mut self) -> Result<bool, Failure> {
        if let Some(declared) = self.declared_frames {
            // Allow for a partial last packet and codec rounding: 1 % plus 100 ms.
            let slack = declared / 100 + u64::from(self.sample_rate) / 10;
            if self.frames_out + slack < declared {
                let rate = f64::from(self.sample_rate);
                return Err(invalid(format!(
                    "truncated: the header declares {:.2} s of audio but the data ends after {:.2} s",
                    declared as f64 / rate,
                    self.frames_out as f64 / rate
                )));
            }
        }
        if self.frames_out == 0 {
            return Err(invalid("the stream holds no audio samples"));
        }
        Ok(false)
    }
}

pub(super) fn too_long(limits: &Limits) -> Failure {
    Failure::new(
        Reason::LimitExceeded,
        format!(
            "audio is longer than the limit of {} s",
            limits.max_duration.as_secs()
        ),
    )
}

fn check_rate(rate: u32) -> Result<(), Failure> {
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(Failure::new(
            Reason::LimitExceeded,
            format!("sample rate {rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"),
        ));
    }
    Ok(())
}

/// A streamed WAV has no known length and declares the largest size (or zero) instead; such a
/// declaration is not a promise, so it is not used to detect truncation.
fn plausible_declared_frames(frames: u64, channels: usize, bytes_per_sample: u64) -> Option<u64> {
    let declared_bytes = frames
        .saturating_mul(channels as u64)
        .saturating_mul(bytes_per_sample.max(1));
    (frames > 0 && declared_bytes < 0xFFFF_0000).then_some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_wav_sizes_are_not_trusted() {
        assert_eq!(plausible_declared_frames(0, 1, 2), None);
        assert_eq!(plausible_declared_frames(0xFFFF_FFFF / 4, 2, 2), None);
        assert_eq!(plausible_declared_frames(16_000, 1, 2), Some(16_000));
    }
}
