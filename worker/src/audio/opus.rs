//! Opus through libopus (the `opus` crate), from Ogg and Matroska: the identification header,
//! pre-skip and end trimming (gapless), decoding straight at the VAD rate where libopus can.

use super::decode::invalid;
use symphonia::core::packet::Packet;
use vadflow_common::{Failure, Reason};

/// Longest Opus packet: 120 ms at 48 kHz.
const OPUS_MAX_FRAME_48K: usize = 5760;

/// A libopus decoder and its gapless state.
pub(super) struct OpusState {
    decoder: opus::Decoder,
    /// Samples still to drop at the start (pre-skip), at the decode rate, all channels.
    skip: usize,
    /// Channels decoded (1, or 2 interleaved).
    width: usize,
    buf: Vec<f32>,
}

/// The fields of an Ogg Opus identification header (RFC 7845 §5.1) that decoding needs.
struct OpusHead {
    channels: u8,
    pre_skip: u16,
    output_gain: i16,
    mapping_family: u8,
}

fn parse_opus_head(data: &[u8]) -> Result<OpusHead, Failure> {
    if data.len() < 19 || &data[..8] != b"OpusHead" {
        return Err(invalid("the Opus stream has no valid OpusHead header"));
    }
    Ok(OpusHead {
        channels: data[9],
        pre_skip: u16::from_le_bytes([data[10], data[11]]),
        output_gain: i16::from_le_bytes([data[16], data[17]]),
        mapping_family: data[18],
    })
}

pub(super) fn open_opus(
    params: &symphonia::core::codecs::audio::AudioCodecParameters,
    preferred_rate: u32,
    keep_channels: usize,
) -> Result<(OpusState, u32, usize), Failure> {
    let head = parse_opus_head(params.extra_data.as_deref().unwrap_or_default())?;
    if head.mapping_family != 0 || !(1..=2).contains(&head.channels) {
        return Err(Failure::new(
            Reason::UnsupportedCodec,
            format!(
                "multichannel Opus (mapping family {}, {} channels) is not supported",
                head.mapping_family, head.channels
            ),
        ));
    }
    // libopus decodes natively at these rates; decoding straight at the VAD rate saves a resample.
    let rate = if [8_000, 12_000, 16_000, 24_000, 48_000].contains(&preferred_rate) {
        preferred_rate
    } else {
        48_000
    };
    // A mono decoder downmixes stereo streams itself; a stereo one keeps both channels.
    let stereo = head.channels == 2 && keep_channels >= 2;
    let layout = if stereo {
        opus::Channels::Stereo
    } else {
        opus::Channels::Mono
    };
    let mut decoder = opus::Decoder::new(rate, layout)
        .map_err(|e| invalid(format!("cannot create an Opus decoder: {e}")))?;
    if head.output_gain != 0 {
        decoder
            .set_gain(i32::from(head.output_gain))
            .map_err(|e| invalid(format!("invalid Opus output gain: {e}")))?;
    }
    let width = if stereo { 2 } else { 1 };
    let skip = usize::from(head.pre_skip) * rate as usize / 48_000 * width;
    let state = OpusState {
        decoder,
        skip,
        width,
        buf: vec![0.0; OPUS_MAX_FRAME_48K * rate as usize / 48_000 * width],
    };
    Ok((state, rate, usize::from(head.channels)))
}

pub(super) fn decode_opus(
    state: &mut OpusState,
    packet: &Packet,
    rate: u32,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let n = state
        .decoder
        .decode_float(&packet.data, &mut state.buf, false)
        .map_err(|e| format!("opus: {e}"))?
        * state.width;
    let to_rate = |ticks_48k: u64| (ticks_48k * u64::from(rate) / 48_000) as usize;
    let trim_end = (to_rate(packet.trim_end.get()) * state.width).min(n);
    let mut samples = &state.buf[..n - trim_end];
    let skip = state.skip.min(samples.len());
    samples = &samples[skip..];
    state.skip -= skip;
    out.extend_from_slice(samples);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_head_is_validated() {
        assert!(parse_opus_head(b"OpusHeadshort").is_err());
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        let h = parse_opus_head(&head).expect("valid");
        assert_eq!((h.channels, h.pre_skip, h.mapping_family), (2, 312, 0));
    }
}
