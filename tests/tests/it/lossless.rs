//! Lossless codecs decode to exactly the samples that were encoded: ALAC with every predictor
//! order that ffmpeg's encoder can be made to use (the decoder's specialised and general paths),
//! 16 and 24 bits, stereo with two different signals (mid-side coding), in MP4 and in CAF; FLAC
//! beside it as a check of the comparison itself.

use std::path::{Path, PathBuf};
use vadflow_tests::audio::wav_bytes;
use vadflow_tests::corpus::{self, Rng};
use vadflow_worker::audio::Limits;
use vadflow_worker::audio::decoder::{Decoder, DecoderChoice};

/// Every sample of `path`, interleaved, at its own rate, as the worker decodes it natively.
fn samples(path: &Path) -> Vec<f32> {
    let limits = Limits::default();
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let file = std::fs::File::open(path).expect("open");
    let mut dec = Decoder::open(
        Box::new(file),
        ext.as_deref(),
        &limits,
        16_000,
        &DecoderChoice::default(),
        2,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(dec.out_channels(), 2, "{}", path.display());
    let mut out = Vec::new();
    while dec
        .next_block(&mut out, &limits)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {}
    out
}

/// A 24-bit PCM WAV of interleaved samples.
fn wav24(rate: u32, channels: u16, samples: &[i32]) -> Vec<u8> {
    let data = samples.len() as u32 * 3;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * u32::from(channels) * 3).to_le_bytes());
    w.extend_from_slice(&(channels * 3).to_le_bytes());
    w.extend_from_slice(&24u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes()[..3]);
    }
    w
}

#[test]
fn alac_and_flac_decode_to_the_source_samples() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("vadflow-lossless-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // Two different utterances, one per channel, with their pauses (runs of zeros).
    let left = corpus::condition(&corpus::item(0, 5), "clean", 5);
    let right = corpus::condition(&corpus::item(1, 5), "pink-10", 5);
    let n = left.len().min(right.len()).min(16_000 * 12);
    let mut rng = Rng::new(11);
    let mut pcm16 = Vec::with_capacity(2 * n);
    let mut pcm24 = Vec::with_capacity(2 * n);
    for i in 0..n {
        for s in [left[i], right[i]] {
            pcm16.push(s);
            pcm24.push((i32::from(s) << 8) | rng.below(256) as i32);
        }
    }
    let sources = [
        ("s16", wav_bytes(16_000, 2, &pcm16)),
        ("s24", wav24(16_000, 2, &pcm24)),
    ];
    let mut checked = 0;
    for (depth, bytes) in &sources {
        let src = dir.join(format!("{depth}.wav"));
        std::fs::write(&src, bytes).expect("write");
        let want = samples(&src);
        assert_eq!(want.len(), 2 * n, "{depth}: the WAV itself");
        let mut cases: Vec<(String, Vec<String>)> = vec![
            ("x.flac".into(), vec!["-c:a".into(), "flac".into()]),
            ("alac.caf".into(), vec!["-c:a".into(), "alac".into()]),
        ];
        // ffmpeg's ALAC encoder takes orders 1 to 30; these reach every specialised order and
        // the general loop.
        for order in [1, 2, 3, 4, 5, 6, 7, 8, 12, 30] {
            let o = order.to_string();
            cases.push((
                format!("o{order}.m4a"),
                [
                    "-c:a",
                    "alac",
                    "-min_prediction_order",
                    &o,
                    "-max_prediction_order",
                    &o,
                ]
                .map(String::from)
                .to_vec(),
            ));
        }
        for (name, args) in cases {
            let out = dir.join(format!("{depth}-{name}"));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            corpus::transcode_with(&src, &args, &out);
            let got = samples(&out);
            assert_eq!(got.len(), want.len(), "{}: sample count", out.display());
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            assert!(
                first.is_none(),
                "{}: sample {} differs from the source",
                out.display(),
                first.unwrap_or_default()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
    let _ = std::fs::remove_dir_all(&dir);
}
