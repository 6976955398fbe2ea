//! The Silero engine: its per-frame probabilities against the reference (PyPI onnxruntime on
//! silero-vad 6.2.3's sequence model, stored in `tests/fixtures/silero/probs.json` by
//! `tests/fixtures/silero/make.sh`), and its segments on real speech.

use std::path::{Path, PathBuf};
use vadflow_common::Job;
use vadflow_common::wire::{Outcome, ResultEvent};
use vadflow_tests::audio::{float_wav_bytes, wav_bytes};
use vadflow_tests::eval::segment_match;
use vadflow_tests::{BUCKET, TestCtx, bin, corpus, segments_of, terminate};
use vadflow_worker::audio::pipeline::{Params, Sinks, analyze};
use vadflow_worker::audio::vad::EngineKind;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/silero")
}

fn silero() -> Params {
    Params::for_engine(EngineKind::Silero)
}

#[test]
fn probabilities_match_onnxruntime_within_1e4() {
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("probs.json")).expect("fixture"))
            .expect("json");
    let files = reference["files"].as_object().expect("files");
    assert_eq!(files.len(), 3);
    let mut compared = 0;
    for (name, probs) in files {
        let theirs: Vec<f64> = probs
            .as_array()
            .expect("array")
            .iter()
            .map(|p| p.as_f64().expect("number"))
            .collect();
        let mut ours = Vec::new();
        let path = fixtures().join(name);
        analyze(
            Box::new(std::fs::File::open(&path).expect("open")),
            Some("flac"),
            &silero(),
            None,
            Sinks {
                scores: Some(&mut ours),
                ..Default::default()
            },
        )
        .expect("analyze");
        assert_eq!(ours.len(), theirs.len(), "{name}: frame count");
        let (worst, at) = ours
            .iter()
            .zip(&theirs)
            .enumerate()
            .map(|(i, (a, b))| ((f64::from(*a) - b).abs(), i))
            .fold((0.0, 0), |m, x| if x.0 > m.0 { x } else { m });
        assert!(worst <= 1e-4, "{name}: frame {at} differs by {worst:e}");
        // Real content: speech and non-speech frames both occur.
        assert!(theirs.iter().any(|&p| p > 0.9) && theirs.iter().any(|&p| p < 0.1));
        compared += ours.len();
        eprintln!(
            "{name}: {} frames, largest difference {worst:.2e}",
            ours.len()
        );
    }
    assert_eq!(compared, 3 * 187);
}

/// vadflow's Silero segments are silero-vad's own (`get_speech_timestamps` with its defaults,
/// stored in `tests/fixtures/silero/timestamps.json` by `timestamps.sh`), sample for sample,
/// among them two files cut inside speech, whose last segment runs to the end of the audio.
#[test]
fn segments_equal_silero_vads_own_timestamps_to_the_end_of_the_file() {
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("timestamps.json")).expect("fixture"),
    )
    .expect("json");
    let files = reference["files"].as_object().expect("files");
    assert_eq!(files.len(), 5);
    let mut to_the_end = 0;
    for (name, want) in files {
        let theirs: Vec<(u64, u64)> = want["segments"]
            .as_array()
            .expect("segments")
            .iter()
            .map(|p| (p[0].as_u64().expect("start"), p[1].as_u64().expect("end")))
            .collect();
        let a = analyze(
            Box::new(std::fs::File::open(fixtures().join(name)).expect("open")),
            Some("flac"),
            &silero(),
            None,
            Sinks::default(),
        )
        .expect("analyze");
        assert_eq!(a.sample_rate, 16_000);
        let ours: Vec<(u64, u64)> = a.segments.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(ours, theirs, "{name}");
        let samples = want["samples"].as_u64().expect("samples");
        to_the_end += usize::from(theirs.last().is_some_and(|s| s.1 == samples));
    }
    assert_eq!(to_the_end, 2, "two files end inside speech");
}

/// A test file: 16 kHz WAV bytes and the true speech intervals, in seconds.
type Labelled = (Vec<u8>, Vec<(f64, f64)>);

/// Two corpus items in pink noise at 0 dB SNR, where WebRTC VAD marks everything as speech.
fn noisy_items() -> Vec<Labelled> {
    (0..2)
        .map(|i| {
            let item = corpus::item(i, 11);
            let samples = corpus::condition(&item, "pink-0", 11);
            (wav_bytes(corpus::RATE, 1, &samples), item.truth)
        })
        .collect()
}

/// Segment-level F1 of `found` against `truth` (IoU ≥ 0.5).
fn segment_f1(truth: &[(f64, f64)], found: &[(f64, f64)]) -> f64 {
    segment_match(truth, found).0.f1()
}

fn assert_silero_document(doc: &serde_json::Value, truth: &[(f64, f64)], what: &str) {
    assert_eq!(doc["parameters"]["engine"], "silero", "{what}");
    assert!(
        doc["parameters"].get("mode").is_none(),
        "{what}: no WebRTC mode"
    );
    assert_eq!(doc["parameters"]["frame_ms"], 32, "{what}");
    let found = segments_of(doc);
    let f1 = segment_f1(truth, &found);
    assert!(f1 >= 0.8, "{what}: segment F1 {f1}: {found:?} vs {truth:?}");
}

#[test]
fn silero_and_auto_hold_up_in_noise_where_webrtc_does_not() {
    for (wav, truth) in noisy_items() {
        let run = |params: &Params| {
            let a = analyze(
                Box::new(std::io::Cursor::new(wav.clone())),
                Some("wav"),
                params,
                None,
                Sinks::default(),
            )
            .expect("analyze");
            let rate = f64::from(a.sample_rate);
            let found: Vec<(f64, f64)> = a
                .segments
                .iter()
                .map(|s| (s.start as f64 / rate, s.end as f64 / rate))
                .collect();
            segment_f1(&truth, &found)
        };
        let (webrtc, silero) = (run(&Params::default()), run(&silero()));
        assert!(silero >= 0.8, "silero segment F1 {silero}");
        assert!(webrtc < silero, "webrtc {webrtc} vs silero {silero}");
        // The auto engine's WebRTC help stays off in noise, where WebRTC fires everywhere.
        let auto = run(&Params::for_engine(EngineKind::Auto));
        assert!(auto >= 0.8, "auto segment F1 {auto}");
        assert!(webrtc < auto, "webrtc {webrtc} vs auto {auto}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_binary_runs_silero_end_to_end() {
    let ctx = TestCtx::new("silero").await;
    let items = noisy_items();
    let mut jobs = Vec::new();
    for (i, (wav, _)) in items.iter().enumerate() {
        let key = format!("{}noisy-{i}.wav", ctx.prefix);
        ctx.put(&key, wav.clone()).await;
        jobs.push(Job::new(BUCKET, key));
    }
    ctx.publish_jobs(&jobs).await;
    let mut command = ctx.command("worker");
    command.args(["--engine", "silero"]);
    let worker = command.spawn().expect("start the worker");
    let (conn, events) = ctx.take(&ctx.topology.results_queue(), items.len()).await;
    let _ = conn.close(200, "done".into()).await;
    for event in &events {
        let event = ResultEvent::decode(&event.data).expect("result event");
        assert_eq!(event.outcome, Outcome::Done, "{event:?}");
    }
    for (job, (_, truth)) in jobs.iter().zip(&items) {
        let prefix = format!("{}{BUCKET}/{}/", ctx.results_prefix, job.key);
        let doc: serde_json::Value = serde_json::from_slice(
            &ctx.get(&format!("{prefix}segments.json"))
                .await
                .expect("segments.json"),
        )
        .expect("json");
        assert_silero_document(&doc, truth, &job.key);
        assert!(ctx.get(&format!("{prefix}speech.wav")).await.is_some());
    }
    assert_eq!(terminate(worker).await, Some(0));
    ctx.cleanup().await;
}

#[test]
fn local_mode_runs_silero() {
    let root = std::env::temp_dir().join(format!("vadflow-silero-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (input, out) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(&input).expect("mkdir");
    let items = noisy_items();
    for (i, (wav, _)) in items.iter().enumerate() {
        std::fs::write(input.join(format!("noisy-{i}.wav")), wav).expect("write");
    }
    let status = std::process::Command::new(bin("worker"))
        .args(["vad", "--engine", "silero", "--no-progress", "--out"])
        .arg(&out)
        .arg(&input)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run worker vad");
    assert!(status.success());
    for (i, (_, truth)) in items.iter().enumerate() {
        let name = format!("noisy-{i}.wav");
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out.join(&name).join("segments.json")).expect("segments.json"),
        )
        .expect("json");
        assert_silero_document(&doc, truth, &name);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_nan_sample_does_not_silence_the_rest_of_the_file() {
    let item = corpus::item(3, 11);
    let segments = |samples: &[f32]| {
        let a = analyze(
            Box::new(std::io::Cursor::new(float_wav_bytes(
                corpus::RATE,
                1,
                samples,
            ))),
            Some("wav"),
            &silero(),
            None,
            Sinks::default(),
        )
        .expect("analyze");
        a.segments
    };
    let clean = segments(&item.samples);
    assert!(clean.len() >= 2, "{clean:?}");
    // NaN and infinities right at the start, before any speech.
    let mut broken = item.samples.clone();
    broken[100] = f32::NAN;
    broken[200] = f32::INFINITY;
    broken[300] = f32::NEG_INFINITY;
    assert_eq!(segments(&broken), clean);
}
