//! **decode** of 16-bit little-endian PCM, the usual payload of WAV, straight from the packet's
//! bytes. The values are those symphonia's PCM decoder and [`super::decode`]'s mixdown give
//! (`x / 32768`, channels summed in order, then scaled by `1 / channels`), without its planar
//! buffer, the per-sample closure that fills it, and the pass that mixes it down. A trailing
//! partial frame is dropped, as symphonia drops it. Measured: docs/performance.md.

use symphonia::core::codecs::audio::AudioCodecParameters;
use symphonia::core::codecs::audio::well_known::CODEC_ID_PCM_S16LE;

/// 16-bit PCM of `channels` interleaved channels.
#[derive(Debug)]
pub struct Pcm16 {
    channels: usize,
}

impl Pcm16 {
    /// The decoder for `params`, when they are plain 16-bit little-endian PCM (every bit coded:
    /// symphonia shifts narrower coded samples, which this path does not).
    pub fn for_params(params: &AudioCodecParameters, channels: usize) -> Option<Pcm16> {
        let plain = params.codec == CODEC_ID_PCM_S16LE
            && params.bits_per_sample.is_none_or(|b| b == 16)
            && params.bits_per_coded_sample.is_none_or(|b| b == 16);
        (plain && channels > 0).then_some(Pcm16 { channels })
    }

    /// Appends the packet's whole frames to `out`: averaged into mono, or interleaved.
    pub fn decode(&self, data: &[u8], interleaved: bool, out: &mut Vec<f32>) {
        let sample = |b: &[u8]| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0;
        let whole = data.len() / (2 * self.channels) * (2 * self.channels);
        if self.channels == 1 || interleaved {
            // An iterator of known length: `extend` reserves once and the loop vectorises.
            out.extend(data[..whole].chunks_exact(2).map(sample));
            return;
        }
        let frames = data[..whole].chunks_exact(2 * self.channels);
        let scale = 1.0 / self.channels as f32;
        out.extend(frames.map(|f| f.chunks_exact(2).fold(0.0f32, |m, b| m + sample(b)) * scale));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphonia::core::audio::{Audio, Channels, GenericAudioBufferRef};
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::packet::Packet;

    /// What symphonia's decoder and `decode`'s mixdown give for the same bytes.
    fn symphonia(data: &[u8], channels: usize, interleaved: bool) -> Vec<f32> {
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_PCM_S16LE)
            .with_sample_rate(16_000)
            .with_channels(Channels::Discrete(channels as u16));
        let registered = symphonia::default::get_codecs()
            .get_audio_decoder(CODEC_ID_PCM_S16LE)
            .expect("symphonia decodes PCM");
        let mut dec =
            (registered.factory)(&params, &AudioDecoderOptions::default()).expect("a PCM decoder");
        let packet = Packet::new(0, 0i64.into(), 0u64.into(), data.to_vec());
        let buf = dec.decode(&packet).expect("whole frames decode");
        let mut out = Vec::new();
        if interleaved {
            buf.copy_to_vec_interleaved::<f32>(&mut out);
            return out;
        }
        let GenericAudioBufferRef::S16(b) = buf else {
            panic!("16-bit PCM decodes to 16-bit samples")
        };
        let mut mixed = vec![0.0f32; b.frames()];
        for p in 0..b.num_planes() {
            for (m, &x) in mixed.iter_mut().zip(b.plane(p).expect("plane")) {
                *m += f32::from(x) / 32_768.0;
            }
        }
        if b.num_planes() > 1 {
            let scale = 1.0 / b.num_planes() as f32;
            mixed.iter_mut().for_each(|m| *m *= scale);
        }
        mixed
    }

    #[test]
    fn equals_symphonia_for_mono_stereo_and_six_channels() {
        let mut rng = fastrand::Rng::with_seed(9);
        for channels in [1, 2, 6] {
            // Whole frames, extremes included, and a trailing partial frame.
            let mut data: Vec<u8> = (0..channels * 300)
                .flat_map(|_| rng.i16(..).to_le_bytes())
                .collect();
            data.extend(
                i16::MIN
                    .to_le_bytes()
                    .iter()
                    .chain(&i16::MAX.to_le_bytes())
                    .cycle()
                    .take(4 * channels),
            );
            let whole = data.clone();
            data.push(7);
            let pcm = Pcm16 { channels };
            for interleaved in [false, true] {
                let mut got = Vec::new();
                pcm.decode(&data, interleaved, &mut got);
                let want = symphonia(&whole, channels, interleaved || channels == 1);
                let frames = whole.len() / (2 * channels);
                assert_eq!(
                    got.len(),
                    if interleaved {
                        frames * channels
                    } else {
                        frames
                    }
                );
                assert_eq!(got, want, "{channels} channels, interleaved {interleaved}");
            }
        }
    }
}
