//! Kernel benchmarks, one thread: the VAD engines on 16 kHz audio, and decode + resample to
//! 16 kHz per format. Prints real-time factors per core (audio seconds per CPU second) and, given
//! the reference figures measured in the same bench run (`bench/kernels.sh`), the ratios.
//!
//! `cargo bench -p vadflow-worker --bench kernels -- --audio 1h.wav [--formats DIR]
//!     [--reference reference.json] [--runs N]`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vadflow_worker::audio::Limits;
use vadflow_worker::audio::decoder::{Decoder, DecoderChoice};
use vadflow_worker::audio::resample::Resampler;
use vadflow_worker::audio::silero::{BLOCK, FRAME, Silero};
use vadflow_worker::audio::vad::VadParams;

struct Args {
    audio: PathBuf,
    formats: Option<PathBuf>,
    reference: Option<PathBuf>,
    runs: usize,
    /// Run only the kernels whose name contains this (for profiling).
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        audio: PathBuf::new(),
        formats: None,
        reference: None,
        runs: 5,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--audio" => a.audio = PathBuf::from(value()),
            "--formats" => a.formats = Some(PathBuf::from(value())),
            "--reference" => a.reference = Some(PathBuf::from(value())),
            "--runs" => a.runs = value().parse().expect("--runs N"),
            "--only" => a.only = Some(value()),
            // cargo bench passes --bench; ignore it and anything else of the harness.
            _ => {}
        }
    }
    assert!(
        !a.audio.as_os_str().is_empty(),
        "usage: kernels --audio FILE [--formats DIR] [--reference JSON] [--runs N]"
    );
    a
}

/// Decodes a whole file to mono at its own rate (Opus: 16 kHz); returns the samples and rate.
/// The worker's decoder on `path`, mono, native decoders.
fn open(path: &Path, limits: &Limits) -> Decoder {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let file = std::fs::File::open(path).expect("open the audio");
    Decoder::open(
        Box::new(file),
        ext.as_deref(),
        limits,
        16_000,
        &DecoderChoice::default(),
        1,
    )
    .expect("open")
}

fn decode_only(path: &Path) -> (Vec<f32>, u32) {
    let limits = Limits::default();
    let mut dec = open(path, &limits);
    let mut out = Vec::new();
    while dec.next_block(&mut out, &limits).expect("decode") {}
    (out, dec.sample_rate())
}

/// Decodes and resamples a whole file to 16 kHz mono.
fn decode(path: &Path) -> Vec<f32> {
    let limits = Limits::default();
    let mut dec = open(path, &limits);
    let mut rs = Resampler::new(dec.sample_rate(), 16_000).expect("resampler");
    let (mut block, mut out) = (Vec::new(), Vec::new());
    loop {
        block.clear();
        let more = dec.next_block(&mut block, &limits).expect("decode");
        if more {
            rs.process(&block, &mut out).expect("resample");
        } else {
            rs.finish(&mut out).expect("resample");
            return out;
        }
    }
}

/// Median wall time of `runs` runs of `f`, in seconds.
fn median_s(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

struct Row {
    name: String,
    audio_s: f64,
    median_s: f64,
    frames: Option<usize>,
    reference: Option<(String, f64)>,
}

fn reference_rtf(reference: &serde_json::Value, key: &str) -> Option<(String, f64)> {
    let r = reference.get(key)?;
    let rtf = r["audio_s"].as_f64()? / r["median_s"].as_f64()?;
    Some((r["name"].as_str().unwrap_or(key).to_owned(), rtf))
}

/// The kernels run, with their figures.
struct Bench {
    runs: usize,
    only: Option<String>,
    reference: serde_json::Value,
    rows: Vec<Row>,
}

impl Bench {
    /// Times `f` (which processes `audio_s` seconds of audio in `frames` frames) unless
    /// `--only` excludes it; `reference` is the key of its reference figures.
    fn run(
        &mut self,
        name: &str,
        audio_s: f64,
        frames: Option<usize>,
        reference: &str,
        f: impl FnMut(),
    ) {
        if self
            .only
            .as_ref()
            .is_some_and(|o| !name.contains(o.as_str()))
        {
            return;
        }
        let median_s = median_s(self.runs, f);
        self.rows.push(Row {
            name: name.to_owned(),
            audio_s,
            median_s,
            frames,
            reference: reference_rtf(&self.reference, reference),
        });
    }

    fn print(&self) {
        println!(
            "| kernel (one thread, median of {} runs) | audio | wall | real-time factor per core | frames/s | reference | reference RTF | ratio |",
            self.runs
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let rtf = r.audio_s / r.median_s;
            let frames = r
                .frames
                .map_or(String::new(), |f| format!("{:.0}", f as f64 / r.median_s));
            let (rname, rrtf, ratio) = match &r.reference {
                Some((name, x)) => (name.clone(), format!("{x:.0}×"), format!("{:.2}", rtf / x)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "| {} | {:.0} s | {:.3} s | {rtf:.0}× | {frames} | {rname} | {rrtf} | {ratio} |",
                r.name, r.audio_s, r.median_s
            );
        }
    }
}

fn main() {
    let args = args();
    let reference: serde_json::Value = args
        .reference
        .as_ref()
        .map(|p| {
            serde_json::from_slice(&std::fs::read(p).expect("read the reference")).expect("json")
        })
        .unwrap_or(serde_json::Value::Null);
    let mut bench = Bench {
        runs: args.runs,
        only: args.only.clone(),
        reference,
        rows: Vec::new(),
    };
    let audio = decode(&args.audio);
    let audio_s = audio.len() as f64 / 16_000.0;

    let webrtc = VadParams::default();
    let n = webrtc.frame_len();
    bench.run(
        "vad webrtc (mode 3, 30 ms frames)",
        audio_s,
        Some(audio.len() / n),
        "webrtcvad",
        || {
            let mut e = webrtc.engine().expect("engine");
            let mut speech = 0u32;
            for frame in audio.chunks_exact(n) {
                speech += u32::from(e.score(black_box(frame)) > 0.5);
            }
            black_box(speech);
        },
    );

    let whole = &audio[..audio.len() / FRAME * FRAME];
    let mut probs = Vec::with_capacity(whole.len() / FRAME);
    bench.run(
        &format!("vad silero (blocks of {BLOCK} frames)"),
        audio_s,
        Some(whole.len() / FRAME),
        "silero_onnxruntime",
        || {
            probs.clear();
            Silero::new().score_frames(black_box(whole), &mut probs);
            black_box(&probs);
        },
    );
    // The one-frame path (live input), on a tenth of the audio.
    let tenth = &whole[..whole.len() / 10 / FRAME * FRAME];
    bench.run(
        "vad silero (one frame at a time)",
        tenth.len() as f64 / 16_000.0,
        Some(tenth.len() / FRAME),
        "silero_onnxruntime",
        || {
            let mut s = Silero::new();
            for frame in tenth.chunks_exact(FRAME) {
                black_box(s.score(black_box(frame)));
            }
        },
    );

    if let Some(dir) = &args.formats {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read --formats")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let decoded_s = decode(&path).len() as f64 / 16_000.0;
            bench.run(
                &format!("decode only (no resampling): {name}"),
                decoded_s,
                None,
                "",
                || {
                    black_box(decode_only(&path));
                },
            );
            bench.run(
                &format!("decode + resample to 16 kHz: {name}"),
                decoded_s,
                None,
                &format!("decode {name}"),
                || {
                    black_box(decode(&path));
                },
            );
        }
    }
    bench.print();
}
