//! **decode**, one packet at a time: symphonia's codecs and vadflow's ALAC, each guarded so that
//! a panic inside a codec on a corrupt packet is an undecodable packet, not the end of the
//! worker; and the mixdown of their channels into mono.

use super::alac::Alac;
use symphonia::core::audio::{Audio, AudioBuffer, GenericAudioBufferRef, sample::Sample};
use symphonia::core::codecs::audio::AudioDecoder;
use symphonia::core::packet::Packet;

pub(super) fn decode_symphonia(
    dec: &mut dyn AudioDecoder,
    packet: &Packet,
    interleaved: &mut Vec<f32>,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let buf = guarded_decode(dec, packet)?;
    // The common sample formats are mixed down straight from their planes, without an
    // interleaved copy; the values are those of `downmix_into`.
    match &buf {
        GenericAudioBufferRef::F32(b) => downmix_planes(*b, out, |x| x),
        GenericAudioBufferRef::S16(b) => downmix_planes(*b, out, |x| f32::from(x) / 32_768.0),
        // FLAC decodes to 32-bit integers, whatever the stored depth.
        GenericAudioBufferRef::S32(b) => {
            downmix_planes(*b, out, |x| (f64::from(x) / 2_147_483_648.0) as f32)
        }
        _ => {
            let channels = buf.spec().channels().count().max(1);
            interleaved.clear();
            buf.copy_to_vec_interleaved::<f32>(interleaved);
            downmix_into(interleaved, channels, out);
        }
    }
    Ok(())
}

/// Decodes one packet. A panic inside the codec library on a corrupt packet (symphonia's FLAC
/// predictor overflows on some, found by fuzzing: `fuzz/regressions/decode/`) is an undecodable
/// packet like any other, not the end of the worker.
fn guarded_decode<'d>(
    dec: &'d mut dyn AudioDecoder,
    packet: &Packet,
) -> Result<GenericAudioBufferRef<'d>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        dec.decode(packet).map(|_| ()).map_err(|e| e.to_string())
    }))
    .map_err(|_| "the codec library failed on this packet (a panic, caught)".to_owned())??;
    Ok(dec.last_decoded())
}

/// Decodes one ALAC packet, a panic (there should be none) caught as for symphonia's codecs.
pub(super) fn decode_alac(
    dec: &mut Alac,
    packet: &Packet,
    interleave: bool,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    guarded("ALAC", || dec.decode(&packet.data))?;
    if interleave {
        dec.interleave_into(out);
    } else {
        dec.mix_into(out);
    }
    Ok(())
}

/// Runs a decoder on one packet; a panic (there should be none) is an undecodable packet.
pub(super) fn guarded(codec: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| format!("the {codec} decoder failed on this packet (a panic, caught)"))?
}

/// Appends the channels of the next packet, interleaved, to `out`.
pub(super) fn decode_interleaved(
    dec: &mut dyn AudioDecoder,
    packet: &Packet,
    interleaved: &mut Vec<f32>,
    out: &mut Vec<f32>,
) -> Result<(), String> {
    let buf = guarded_decode(dec, packet)?;
    interleaved.clear();
    buf.copy_to_vec_interleaved::<f32>(interleaved);
    out.extend_from_slice(interleaved);
    Ok(())
}

/// Averages the planes of `buf` into mono, appending to `out`.
fn downmix_planes<S: Sample>(buf: &AudioBuffer<S>, out: &mut Vec<f32>, to_f32: impl Fn(S) -> f32) {
    let planes = buf.num_planes().max(1);
    let start = out.len();
    out.resize(start + buf.frames(), 0.0);
    let mixed = &mut out[start..];
    for p in 0..planes {
        if let Some(plane) = buf.plane(p) {
            for (m, &x) in mixed.iter_mut().zip(plane) {
                *m += to_f32(x);
            }
        }
    }
    if planes > 1 {
        let scale = 1.0 / planes as f32;
        for m in mixed {
            *m *= scale;
        }
    }
}

/// Averages interleaved channels into mono, appending to `out`.
pub fn downmix_into(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels == 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_channels() {
        let mut out = Vec::new();
        downmix_into(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5, 0.0]);
        downmix_into(&[0.25], 1, &mut out);
        assert_eq!(out.last(), Some(&0.25));
    }
}
