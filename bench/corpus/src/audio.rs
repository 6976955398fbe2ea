//! Real speech for tests: espeak-ng sentences placed between known silences.
//!
//! The ground truth of a composed file is where each sentence's audible part was placed (the
//! sentence is trimmed of espeak's own leading and trailing silence first).

use std::path::{Path, PathBuf};
use std::process::Command;

/// espeak-ng's output rate.
pub const ESPEAK_RATE: u32 = 22_050;

/// A composed recording.
#[derive(Debug, Clone)]
pub struct Speech {
    /// 16-bit mono PCM.
    pub samples: Vec<i16>,
    pub rate: u32,
    /// Where speech was placed, in seconds.
    pub truth: Vec<(f64, f64)>,
}

impl Speech {
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate)
    }

    /// As a 16-bit mono WAV file.
    pub fn wav(&self) -> Vec<u8> {
        wav_bytes(self.rate, 1, &self.samples)
    }
}

/// A 16-bit PCM WAV file of interleaved samples.
pub fn wav_bytes(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let mut out = wav_header(1, rate, channels, 16, samples.len());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A 32-bit IEEE float WAV file of interleaved samples.
pub fn float_wav_bytes(rate: u32, channels: u16, samples: &[f32]) -> Vec<u8> {
    let mut out = wav_header(3, rate, channels, 32, samples.len());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A canonical 44-byte WAV header (`format` 1: PCM, 3: IEEE float), ready for the data.
fn wav_header(format: u16, rate: u32, channels: u16, bits: u16, samples: usize) -> Vec<u8> {
    let bytes_per_sample = u32::from(bits / 8);
    let data_len = samples as u32 * bytes_per_sample;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * bytes_per_sample * u32::from(channels)).to_le_bytes());
    out.extend_from_slice(&(bits / 8 * channels).to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}

/// Reads the samples of a 16-bit PCM mono WAV (enough for espeak-ng's output).
pub fn read_wav_i16(bytes: &[u8]) -> Result<Vec<i16>, String> {
    let pos = bytes
        .windows(4)
        .position(|w| w == b"data")
        .ok_or("no data chunk")?;
    let data = bytes.get(pos + 8..).ok_or("short data chunk")?;
    Ok(data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect())
}

fn cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("vadflow-test-espeak");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// One sentence spoken by espeak-ng, trimmed to its audible part. Cached across tests.
pub fn sentence(text: &str, voice: &str) -> Vec<i16> {
    let name = format!(
        "{:016x}.wav",
        text.bytes()
            .chain(voice.bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b))
                .wrapping_mul(0x100_0000_01b3))
    );
    let path = cache_dir().join(name);
    if !path.exists() {
        // Unique per call: tests in one process may render the same sentence at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
        let status = Command::new("espeak-ng")
            .args(["-v", voice, "-s", "160", "-w"])
            .arg(&tmp)
            .arg(text)
            .status()
            .expect("espeak-ng must be installed (deploy/local/up.sh installs it)");
        assert!(status.success(), "espeak-ng failed for {text:?}");
        std::fs::rename(&tmp, &path).expect("cache espeak output");
    }
    let samples = read_wav_i16(&std::fs::read(&path).expect("read espeak output")).expect("wav");
    trim(&samples)
}

/// Drops leading and trailing near-silence (below about -40 dBFS).
pub fn trim(samples: &[i16]) -> Vec<i16> {
    let loud = |s: &&i16| s.unsigned_abs() > 330;
    let start = samples.iter().position(|s| loud(&s)).unwrap_or(0);
    let end = samples.iter().rposition(|s| loud(&s)).map_or(0, |e| e + 1);
    samples[start..end.max(start)].to_vec()
}

/// Places `sentences` after the given silences: `gaps[i]` seconds before sentence `i`, and
/// `gaps[n]` after the last one.
pub fn compose(sentences: &[&str], gaps: &[f64]) -> Speech {
    assert_eq!(
        gaps.len(),
        sentences.len() + 1,
        "one gap before each sentence and one at the end"
    );
    let rate = ESPEAK_RATE;
    let mut samples = Vec::new();
    let mut truth = Vec::new();
    for (i, text) in sentences.iter().enumerate() {
        samples.extend(std::iter::repeat_n(
            0i16,
            (gaps[i] * f64::from(rate)) as usize,
        ));
        let s = sentence(text, "en-us");
        let start = samples.len() as f64 / f64::from(rate);
        samples.extend_from_slice(&s);
        truth.push((start, samples.len() as f64 / f64::from(rate)));
    }
    samples.extend(std::iter::repeat_n(
        0i16,
        (gaps[sentences.len()] * f64::from(rate)) as usize,
    ));
    Speech {
        samples,
        rate,
        truth,
    }
}

/// Sentences for fixtures.
pub const SENTENCES: [&str; 8] = [
    "The quick brown fox jumps over the lazy dog.",
    "Voice activity detection finds where the speech is.",
    "Please leave a message after the tone.",
    "The meeting has been moved to Thursday afternoon.",
    "Our records show that your payment was received.",
    "Could you repeat the last part of the address?",
    "Thank you for calling, have a wonderful day.",
    "The train to the airport leaves every twenty minutes.",
];

/// Encodes a WAV file to another format with ffmpeg (`ext`: flac, mp3, ogg, opus, wav).
pub fn transcode(wav: &Path, ext: &str, out: &Path) {
    let codec: &[&str] = match ext {
        "flac" => &["-c:a", "flac"],
        "mp3" => &["-c:a", "libmp3lame", "-b:a", "64k"],
        "ogg" => &["-c:a", "libvorbis", "-q:a", "4"],
        "opus" => &["-c:a", "libopus", "-b:a", "32k"],
        _ => &["-c:a", "pcm_s16le"],
    };
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(wav)
        .args(codec)
        .arg(out)
        .status()
        .expect("ffmpeg must be installed (deploy/local/up.sh installs it)");
    assert!(status.success(), "ffmpeg failed encoding {}", out.display());
}
