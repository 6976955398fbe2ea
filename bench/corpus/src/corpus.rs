//! The labelled evaluation corpus: espeak-ng sentences and short replies placed between known
//! silences, clean and
//! mixed with white or pink noise at 20, 10, 5 and 0 dB SNR, plus the clean audio in every
//! supported format. Deterministic for a given seed.
//!
//! Layout of the corpus directory:
//! - `truth.json`: `{"c001": [[start, end], ...], ...}` in seconds;
//! - `{condition}/{id}.wav`: 16 kHz mono 16-bit, for conditions `clean`, `white-20` … `pink-0`;
//! - `formats/{id}.{format}`: the clean audio at 44.1 kHz stereo (Opus: 48 kHz) in each format.

use crate::audio::{ESPEAK_RATE, sentence, wav_bytes};
use std::collections::BTreeMap;
use std::path::Path;
use vadflow_worker::audio::resample::Resampler;

/// Corpus sample rate.
pub const RATE: u32 = 16_000;

/// Noise conditions, in table order.
pub const CONDITIONS: [&str; 9] = [
    "clean", "white-20", "white-10", "white-5", "white-0", "pink-20", "pink-10", "pink-5", "pink-0",
];

/// Formats of the format test: (file suffix, ffmpeg codec arguments).
pub const FORMATS: &[(&str, &[&str])] = &[
    ("pcm8.wav", &["-ar", "44100", "-ac", "2", "-c:a", "pcm_u8"]),
    (
        "pcm24.wav",
        &["-ar", "44100", "-ac", "2", "-c:a", "pcm_s24le"],
    ),
    (
        "pcm32.wav",
        &["-ar", "44100", "-ac", "2", "-c:a", "pcm_s32le"],
    ),
    (
        "float.wav",
        &["-ar", "44100", "-ac", "2", "-c:a", "pcm_f32le"],
    ),
    ("flac", &["-ar", "44100", "-ac", "2", "-c:a", "flac"]),
    (
        "mp3",
        &[
            "-ar",
            "44100",
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "96k",
        ],
    ),
    (
        "ogg",
        &["-ar", "44100", "-ac", "2", "-c:a", "libvorbis", "-q:a", "4"],
    ),
    (
        "opus",
        &["-ar", "48000", "-ac", "2", "-c:a", "libopus", "-b:a", "48k"],
    ),
    // MP4 as ffmpeg writes it by default: the index (`moov`) after the media data.
    (
        "aac.m4a",
        &["-ar", "44100", "-ac", "2", "-c:a", "aac", "-b:a", "96k"],
    ),
    (
        "faststart.m4a",
        &[
            "-ar",
            "44100",
            "-ac",
            "2",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-movflags",
            "+faststart",
        ],
    ),
    ("alac.m4a", &["-ar", "44100", "-ac", "2", "-c:a", "alac"]),
    (
        "mov",
        &["-ar", "44100", "-ac", "2", "-c:a", "aac", "-b:a", "96k"],
    ),
    (
        "aac",
        &["-ar", "44100", "-ac", "2", "-c:a", "aac", "-b:a", "96k"],
    ),
    (
        "opus.webm",
        &["-ar", "48000", "-ac", "2", "-c:a", "libopus", "-b:a", "48k"],
    ),
    (
        "vorbis.webm",
        &["-ar", "44100", "-ac", "2", "-c:a", "libvorbis", "-q:a", "4"],
    ),
    (
        "mp3.mkv",
        &[
            "-ar",
            "44100",
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "96k",
        ],
    ),
    (
        "aac.mkv",
        &["-ar", "44100", "-ac", "2", "-c:a", "aac", "-b:a", "96k"],
    ),
    (
        "pcm.mkv",
        &["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"],
    ),
    ("flac.mkv", &["-ar", "44100", "-ac", "2", "-c:a", "flac"]),
    (
        "opus.mka",
        &["-ar", "48000", "-ac", "2", "-c:a", "libopus", "-b:a", "48k"],
    ),
    ("aiff", &["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16be"]),
    ("caf", &["-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le"]),
    ("alac.caf", &["-ar", "44100", "-ac", "2", "-c:a", "alac"]),
    (
        "mp2",
        &["-ar", "44100", "-ac", "2", "-c:a", "mp2", "-b:a", "192k"],
    ),
    (
        "mulaw.wav",
        &["-ar", "8000", "-ac", "2", "-c:a", "pcm_mulaw"],
    ),
    ("alaw.wav", &["-ar", "8000", "-ac", "2", "-c:a", "pcm_alaw"]),
    (
        "ima.wav",
        &["-ar", "16000", "-ac", "2", "-c:a", "adpcm_ima_wav"],
    ),
];

/// How a format keeps time: (where its audio starts late, the range of its length beyond that).
///
/// Where the container does not record the encoder's delay, the audio starts that late, as it
/// does in every decoder: ADTS and AAC in Matroska by one AAC frame (ffmpeg's encoder primes 1024
/// samples), MP3 in Matroska by LAME's 576 + the decoder's 529 samples (measured against the source by
/// cross-correlation; ffmpeg's the same). MP2's filterbank delay (481) is trimmed by the decoder.
/// Where it does not record the padding of the last frame (Matroska's DiscardPadding is not read;
/// ADTS and IMA ADPCM have none), up to a frame or block of it remains at the end. ffmpeg's MP2
/// encoder drops the last partial frame (up to 26 ms at 44.1 kHz).
pub fn timing(suffix: &str) -> (f64, std::ops::Range<f64>) {
    const EXACT: std::ops::Range<f64> = -0.005..0.005;
    match suffix {
        "aac" | "aac.mkv" => (1024.0 / 44_100.0, -0.005..0.050),
        "mp3.mkv" => (1105.0 / 44_100.0, -0.005..0.050),
        "mp2" => (0.0, -0.027..0.050),
        "opus.webm" | "opus.mka" | "vorbis.webm" => (0.0, -0.005..0.025),
        "ima.wav" => (0.0, -0.005..0.130),
        _ => (0.0, EXACT),
    }
}

const VOICES: [&str; 6] = [
    "en-us",
    "en-gb",
    "en-us+f3",
    "en-gb-scotland",
    "en-029+f2",
    "en-gb-x-rp",
];

/// Short replies, as they occur in calls and voice notes; one in four utterances is one.
const SHORT: [&str; 8] = [
    "Yes.", "No.", "Okay.", "Thanks.", "Hello?", "Sure.", "Right.", "Goodbye.",
];

const POOL: [&str; 24] = [
    "The quick brown fox jumps over the lazy dog.",
    "Voice activity detection finds where the speech is.",
    "Please leave a message after the tone.",
    "The meeting has been moved to Thursday afternoon.",
    "Our records show that your payment was received.",
    "Could you repeat the last part of the address?",
    "Thank you for calling, have a wonderful day.",
    "The train to the airport leaves every twenty minutes.",
    "I would like to book a table for four people.",
    "The weather tomorrow will be cloudy with light rain.",
    "Your order number is seven three nine two.",
    "We are sorry, all our agents are busy right now.",
    "She sells sea shells by the sea shore.",
    "The library closes at nine on weekdays.",
    "Please hold while I transfer your call.",
    "Can you hear me clearly on this line?",
    "The package was delivered to the front door.",
    "Remember to bring your passport and ticket.",
    "The results will be published next Monday.",
    "Turn left at the second traffic light.",
    "He asked for a glass of water and a coffee.",
    "The battery is almost empty, please charge it.",
    "Our office is open from eight until six.",
    "Good morning, how can I help you today?",
];

/// A small deterministic generator (SplitMix64), so the corpus does not depend on a crate's
/// random stream across versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// One clean corpus file at [`RATE`], with its ground truth.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub samples: Vec<f32>,
    pub truth: Vec<(f64, f64)>,
}

fn to_rate(samples: &[i16]) -> Vec<f32> {
    let input: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let mut r = Resampler::new(ESPEAK_RATE, RATE).expect("resampler");
    let mut out = Vec::new();
    r.process(&input, &mut out).expect("resample");
    r.finish(&mut out).expect("resample");
    out
}

/// Makes item `index` of the corpus with `seed`.
pub fn item(index: usize, seed: u64) -> Item {
    let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let voice = VOICES[rng.below(VOICES.len())];
    let n = 3 + rng.below(4);
    let mut samples: Vec<f32> = Vec::new();
    let mut truth = Vec::new();
    let silence = |secs: f64| vec![0.0f32; (secs * f64::from(RATE)) as usize];
    samples.extend(silence(rng.range(0.3, 1.5)));
    for i in 0..n {
        if i > 0 {
            samples.extend(silence(rng.range(0.6, 2.5)));
        }
        let text = if rng.below(4) == 0 {
            SHORT[rng.below(SHORT.len())]
        } else {
            POOL[rng.below(POOL.len())]
        };
        let speech = to_rate(&sentence(text, voice));
        let start = samples.len() as f64 / f64::from(RATE);
        samples.extend_from_slice(&speech);
        truth.push((start, samples.len() as f64 / f64::from(RATE)));
    }
    samples.extend(silence(rng.range(0.3, 1.5)));
    Item {
        id: format!("c{:03}", index + 1),
        samples,
        truth,
    }
}

/// The power of `samples` inside the truth intervals.
fn speech_power(item: &Item) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for &(s, e) in &item.truth {
        let a = (s * f64::from(RATE)) as usize;
        let b = ((e * f64::from(RATE)) as usize).min(item.samples.len());
        for &x in &item.samples[a..b] {
            sum += f64::from(x) * f64::from(x);
        }
        n += b - a;
    }
    sum / n.max(1) as f64
}

/// `item` under `condition` (`clean`, `white-10`, `pink-0`, ...), as 16-bit samples.
pub fn condition(item: &Item, condition: &str, seed: u64) -> Vec<i16> {
    let mut out: Vec<f64> = item.samples.iter().map(|&x| f64::from(x)).collect();
    if let Some((kind, snr)) = condition.split_once('-') {
        let snr: f64 = snr.parse().expect("SNR in dB");
        let mut rng = Rng::new(
            seed.wrapping_add(snr.to_bits())
                .wrapping_add(kind.len() as u64),
        );
        let mut noise: Vec<f64> = match kind {
            "white" => (0..out.len()).map(|_| rng.gauss()).collect(),
            "pink" => pink(&mut rng, out.len()),
            other => panic!("unknown noise {other}"),
        };
        let noise_power = noise.iter().map(|x| x * x).sum::<f64>() / noise.len().max(1) as f64;
        let target = speech_power(item) / 10f64.powf(snr / 10.0);
        let gain = (target / noise_power).sqrt();
        for (x, n) in out.iter_mut().zip(noise.iter_mut()) {
            *x += *n * gain;
        }
    }
    out.iter()
        .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Pink (1/f) noise: Paul Kellet's refined filter over white Gaussian noise.
fn pink(rng: &mut Rng, n: usize) -> Vec<f64> {
    let (mut b0, mut b1, mut b2, mut b3, mut b4, mut b5, mut b6) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    (0..n)
        .map(|_| {
            let w = rng.gauss();
            b0 = 0.99886 * b0 + w * 0.0555179;
            b1 = 0.99332 * b1 + w * 0.0750759;
            b2 = 0.96900 * b2 + w * 0.1538520;
            b3 = 0.86650 * b3 + w * 0.3104856;
            b4 = 0.55000 * b4 + w * 0.5329522;
            b5 = -0.7616 * b5 - w * 0.0168980;
            let p = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
            b6 = w * 0.115926;
            p
        })
        .collect()
}

/// Writes the corpus: `files` items, every condition, and (with `formats`) every format.
pub fn generate(dir: &Path, files: usize, seed: u64, formats: bool) -> std::io::Result<()> {
    let mut truth = BTreeMap::new();
    for c in CONDITIONS {
        std::fs::create_dir_all(dir.join(c))?;
    }
    if formats {
        std::fs::create_dir_all(dir.join("formats"))?;
    }
    for i in 0..files {
        let it = item(i, seed);
        for c in CONDITIONS {
            let pcm = condition(&it, c, seed ^ i as u64);
            std::fs::write(
                dir.join(c).join(format!("{}.wav", it.id)),
                wav_bytes(RATE, 1, &pcm),
            )?;
        }
        if formats {
            let clean = dir.join("clean").join(format!("{}.wav", it.id));
            for (suffix, args) in FORMATS {
                let out = dir.join("formats").join(format!("{}.{suffix}", it.id));
                transcode_with(&clean, args, &out);
            }
        }
        truth.insert(it.id.clone(), it.truth);
    }
    std::fs::write(dir.join("truth.json"), serde_json::to_vec_pretty(&truth)?)?;
    Ok(())
}

/// `input` converted by ffmpeg with `args` into `out`; panics if ffmpeg fails.
pub fn transcode_with(input: &Path, args: &[&str], out: &Path) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg must be installed (deploy/local/up.sh installs it)");
    assert!(status.success(), "ffmpeg failed for {}", out.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_is_what_was_asked() {
        let it = Item {
            id: "t".into(),
            samples: (0..32_000)
                .map(|i| ((i as f32) * 0.05).sin() * 0.3)
                .collect(),
            truth: vec![(0.0, 2.0)],
        };
        for c in ["white-10", "pink-0", "white-20"] {
            let mixed = condition(&it, c, 7);
            let clean = condition(&it, "clean", 7);
            let (mut s, mut n) = (0.0f64, 0.0f64);
            for (m, c0) in mixed.iter().zip(&clean) {
                s += f64::from(*c0).powi(2);
                n += (f64::from(*m) - f64::from(*c0)).powi(2);
            }
            let snr: f64 = c
                .split_once('-')
                .map(|(_, v)| v.parse().expect("num"))
                .expect("snr");
            let got = 10.0 * (s / n).log10();
            assert!((got - snr).abs() < 0.3, "{c}: {got:.2} dB");
        }
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = (0..3)
            .map({
                let mut r = Rng::new(1);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..3)
            .map({
                let mut r = Rng::new(1);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
    }
}
