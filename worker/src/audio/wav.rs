//! Writing 16-bit mono PCM WAV: the header, patched once the length is known.

/// Size of the canonical 44-byte header.
pub const HEADER_LEN: usize = 44;

/// The RIFF/WAVE header for `samples` 16-bit mono samples at `rate`.
///
/// Lengths past 4 GiB cannot be expressed; they are saturated (readers then read to the end).
pub fn header(rate: u32, samples: u64) -> [u8; HEADER_LEN] {
    let data_len = u32::try_from(samples.saturating_mul(2)).unwrap_or(u32::MAX - 36);
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Appends samples as little-endian 16-bit PCM.
pub fn extend_pcm(out: &mut Vec<u8>, samples: &[i16]) {
    out.reserve(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// A whole WAV file in memory (for short clips).
pub fn encode(rate: u32, samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + samples.len() * 2);
    out.extend_from_slice(&header(rate, samples.len() as u64));
    extend_pcm(&mut out, samples);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_describes_the_data() {
        let wav = encode(16_000, &[1, -2, 3]);
        assert_eq!(wav.len(), 50);
        assert_eq!(&wav[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]), 42);
        assert_eq!(
            u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]),
            16_000
        );
        assert_eq!(u32::from_le_bytes([wav[40], wav[41], wav[42], wav[43]]), 6);
        assert_eq!(&wav[44..46], &1i16.to_le_bytes());
    }
}
