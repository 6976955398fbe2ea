//! The decoders vadflow chose over symphonia's, checked against their sources: ALAC decodes to
//! exactly the samples that were encoded, with every predictor order that ffmpeg's encoder can
//! be made to use (the decoder's specialised and general paths), 16 and 24 bits, stereo with two
//! different signals (mid-side coding), in MP4 and in CAF, with FLAC beside it as a check of the
//! comparison itself; MP3 decodes to ffmpeg's samples; damaged files of both never panic.

use std::path::{Path, PathBuf};
use vadflow_tests::audio::wav_bytes;
use vadflow_tests::corpus::{self, Rng};
use vadflow_worker::audio::Limits;
use vadflow_worker::audio::decoder::{Decoder, DecoderChoice};

/// Every sample of a stereo `path`, interleaved, at its own rate, as the worker decodes it
/// natively.
fn samples(path: &Path) -> Vec<f32> {
    decoded(path, 2)
}

/// Every sample of `path` (of `channels` channels, interleaved), at its own rate.
fn decoded(path: &Path, channels: usize) -> Vec<f32> {
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
    assert_eq!(dec.out_channels(), channels, "{}", path.display());
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

/// Panics raised inside the ALAC and MP3 decoders (the decode loop catches them, so a count is
/// the only way to see one; debug builds also panic on arithmetic overflow).
static DECODER_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn damaged_alac_and_mp3_are_an_error_or_audio_never_a_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.location().is_some_and(|l| {
            let f = l.file();
            f.ends_with("alac.rs") || f.ends_with("mp3.rs") || f.contains("nanomp3")
        }) {
            DECODER_PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        previous(info);
    }));
    let dir: PathBuf = std::env::temp_dir().join(format!("vadflow-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let left = corpus::condition(&corpus::item(2, 5), "clean", 5);
    let right = corpus::condition(&corpus::item(3, 5), "pink-10", 5);
    let n = left.len().min(right.len()).min(16_000 * 2);
    let pcm: Vec<i16> = (0..n).flat_map(|i| [left[i], right[i]]).collect();
    let src = dir.join("src.wav");
    std::fs::write(&src, wav_bytes(16_000, 2, &pcm)).expect("write");
    let mut rng = Rng::new(29);
    let mut files = 0;
    for (name, args) in [
        ("a.m4a", vec!["-c:a", "alac"]),
        (
            "o8.m4a",
            vec![
                "-c:a",
                "alac",
                "-min_prediction_order",
                "8",
                "-max_prediction_order",
                "8",
            ],
        ),
        ("a.caf", vec!["-c:a", "alac", "-sample_fmt", "s32p"]),
        (
            "a.mp3",
            vec!["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "96k"],
        ),
        ("mp3.mkv", vec!["-c:a", "libmp3lame", "-b:a", "32k"]),
    ] {
        let good = dir.join(name);
        corpus::transcode_with(&src, &args, &good);
        let bytes = std::fs::read(&good).expect("read");
        for round in 0..150 {
            let mut bad = bytes.clone();
            // A few bytes changed anywhere past the first 64 (mostly packet data), or the file
            // cut short.
            if round % 5 == 4 {
                bad.truncate(64 + rng.below(bad.len() - 64));
            } else {
                for _ in 0..1 + rng.below(6) {
                    let at = 64 + rng.below(bad.len() - 64);
                    bad[at] = rng.below(256) as u8;
                }
            }
            let path = dir.join(format!("bad-{round}-{name}"));
            std::fs::write(&path, &bad).expect("write");
            let limits = Limits::default();
            let file = std::fs::File::open(&path).expect("open");
            let ext = path.extension().and_then(|e| e.to_str());
            if let Ok(mut dec) = Decoder::open(
                Box::new(file),
                ext,
                &limits,
                16_000,
                &DecoderChoice::default(),
                2,
            ) {
                let mut out = Vec::new();
                while let Ok(true) = dec.next_block(&mut out, &limits) {
                    out.clear();
                }
            }
            let _ = std::fs::remove_file(&path);
            files += 1;
        }
    }
    assert_eq!(files, 750);
    assert_eq!(
        DECODER_PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "panics in the ALAC or MP3 decoder"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// MP3 decodes to what ffmpeg decodes from the same file: the same number of samples (encoder
/// delay and padding trimmed from the LAME tag) and the same samples up to the rounding of two
/// floating-point decoders, at 44.1 kHz stereo (MPEG-1) and 16 kHz mono (MPEG-2).
#[test]
fn mp3_decodes_as_ffmpeg_does() {
    let dir: PathBuf = std::env::temp_dir().join(format!("vadflow-mp3-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let left = corpus::condition(&corpus::item(4, 5), "clean", 5);
    let right = corpus::condition(&corpus::item(5, 5), "pink-10", 5);
    let n = left.len().min(right.len());
    let pcm: Vec<i16> = (0..n).flat_map(|i| [left[i], right[i]]).collect();
    let src = dir.join("src.wav");
    std::fs::write(&src, wav_bytes(16_000, 2, &pcm)).expect("write");
    for (name, args, channels) in [
        (
            "s44.mp3",
            vec!["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "128k"],
            2,
        ),
        (
            "m16.mp3",
            vec!["-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k"],
            1,
        ),
    ] {
        let path = dir.join(name);
        corpus::transcode_with(&src, &args, &path);
        let ours = decoded(&path, channels);
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "f32le", "-"])
            .output()
            .expect("ffmpeg");
        assert!(out.status.success(), "ffmpeg decode of {name}");
        let theirs: Vec<f32> = out
            .stdout
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{name}: sample count against ffmpeg"
        );
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-3,
            "{name}: largest difference from ffmpeg {worst}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
