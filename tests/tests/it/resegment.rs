//! Score tracks and re-segmentation: `worker vad --outputs ...,scores.bin` stores every frame
//! score; `worker resegment` with new settings then gives exactly the segments of a full run
//! with those settings (WebRTC and Silero; a mono file and a call analysed channel by
//! channel), without the audio. A damaged track is named and the others are done.

use std::path::Path;
use std::process::Command;
use vadflow_tests::audio::{SENTENCES, compose, wav_bytes};
use vadflow_tests::bin;

fn vad(input: &Path, out: &Path, args: &[&str]) {
    let status = Command::new(bin("worker"))
        .args(["vad", "--no-progress", "--channels", "separate", "--out"])
        .arg(out)
        .arg(input)
        .args(args)
        .status()
        .expect("worker vad");
    assert!(status.success(), "worker vad {args:?}");
}

fn doc(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

/// (channel, start, end) of every segment, in order of channel, then start.
fn sorted(doc: &serde_json::Value) -> Vec<(u64, f64, f64)> {
    let mut v: Vec<(u64, f64, f64)> = doc["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| {
            (
                s["channel"].as_u64().unwrap_or(0),
                s["start"].as_f64().expect("start"),
                s["end"].as_f64().expect("end"),
            )
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    v
}

#[test]
fn resegmented_tracks_equal_full_runs_with_the_new_settings() {
    let root = std::env::temp_dir().join(format!("vadflow-reseg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let talk = compose(&SENTENCES[0..4], &[0.5, 0.25, 0.9, 0.35, 0.6]);
    std::fs::write(input.join("talk.wav"), talk.wav()).expect("write");
    // A call: one party per channel, turns alternating.
    let a = compose(&SENTENCES[4..6], &[0.3, 3.5, 0.4]);
    let b = compose(&SENTENCES[6..8], &[2.5, 2.0, 0.4]);
    let len = a.samples.len().max(b.samples.len());
    let call: Vec<i16> = (0..len)
        .flat_map(|i| {
            [
                a.samples.get(i).copied().unwrap_or(0),
                b.samples.get(i).copied().unwrap_or(0),
            ]
        })
        .collect();
    std::fs::write(input.join("call.wav"), wav_bytes(a.rate, 2, &call)).expect("write");

    let new = [
        "--min-silence",
        "0.6s",
        "--pad-start",
        "0.12s",
        "--min-speech",
        "0.4s",
        "--chunk-max",
        "5s",
    ];
    for engine in ["webrtc", "silero"] {
        let (stored, reseg, full) = (
            root.join(format!("{engine}-stored")),
            root.join(format!("{engine}-reseg")),
            root.join(format!("{engine}-full")),
        );
        vad(
            &input,
            &stored,
            &["--engine", engine, "--outputs", "segments.json,scores.bin"],
        );
        let mut extra = vec!["--engine", engine, "--segment-scores", "false"];
        extra.extend(new);
        let mut threshold = vec![];
        if engine == "silero" {
            threshold = vec!["--threshold", "0.6"];
        }
        extra.extend(&threshold);
        vad(&input, &full, &extra);
        let out = Command::new(bin("worker"))
            .args(["resegment", "--out"])
            .arg(&reseg)
            .arg(&stored)
            .args(new)
            .args(&threshold)
            .output()
            .expect("worker resegment");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("tracks=2 done=2 failed=0"));

        // Mono: the same segments.json, byte for byte, and the same chunks.
        for name in ["segments.json", "chunks.jsonl", "segments.rttm"] {
            let r = std::fs::read(reseg.join("talk.wav").join(name)).expect(name);
            let f = std::fs::read(full.join("talk.wav").join(name)).expect(name);
            assert_eq!(
                String::from_utf8_lossy(&r),
                String::from_utf8_lossy(&f),
                "{engine}: talk.wav {name}"
            );
        }
        let stored_doc = doc(&stored.join("talk.wav/segments.json"));
        let reseg_doc = doc(&reseg.join("talk.wav/segments.json"));
        assert_ne!(
            sorted(&stored_doc),
            sorted(&reseg_doc),
            "{engine}: the new settings change the segments"
        );
        // The call: each channel's segments equal; listed in the order they end.
        let (r, f) = (
            doc(&reseg.join("call.wav/segments.json")),
            doc(&full.join("call.wav/segments.json")),
        );
        assert!(sorted(&r).iter().any(|s| s.0 == 1) && sorted(&r).iter().any(|s| s.0 == 2));
        assert_eq!(sorted(&r), sorted(&f), "{engine}: call.wav");
        for field in [
            "duration",
            "parameters",
            "speech_duration",
            "channels",
            "source",
        ] {
            assert_eq!(r[field], f[field], "{engine}: call.wav {field}");
        }
        // A decision per byte for WebRTC, a probability per four for Silero.
        let bytes = std::fs::metadata(stored.join("talk.wav/scores.bin"))
            .expect("track")
            .len();
        let frames = talk.duration() / if engine == "webrtc" { 0.030 } else { 0.032 };
        let per_frame = if engine == "webrtc" { 1.0 } else { 4.0 };
        assert!(
            (bytes as f64) < frames * per_frame + 1024.0,
            "{engine}: {bytes} bytes for {frames} frames"
        );
    }

    // A damaged track is named; the good one is still done; the exit code says so.
    let stored = root.join("webrtc-stored");
    std::fs::write(
        stored.join("call.wav/scores.bin"),
        b"VFSCORES\x10\x00\x00\x00{",
    )
    .expect("write");
    let out = Command::new(bin("worker"))
        .args(["resegment", "--out"])
        .arg(root.join("again"))
        .arg(&stored)
        .env("LOG_FORMAT", "json")
        .output()
        .expect("worker resegment");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tracks=2 done=1 failed=1"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("call.wav") && err.contains("scores.bin"),
        "{err}"
    );
    assert!(root.join("again/talk.wav/segments.json").exists());
    let _ = std::fs::remove_dir_all(root);
}

/// At scale: the distributed worker writes score tracks to S3 (`--outputs ...,scores.bin`);
/// `worker resegment` re-segments everything under that prefix into another, and the segments
/// are those of a full run with the new settings. A damaged track there is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tracks_in_s3_are_resegmented_into_another_prefix() {
    use vadflow_tests::{BUCKET, TestCtx};
    let ctx = TestCtx::new("reseg-s3").await;
    let talk = compose(&SENTENCES[2..6], &[0.4, 0.3, 0.8, 0.25, 0.5]);
    let key = format!("{}talk.wav", ctx.prefix);
    ctx.put(&key, talk.wav()).await;
    ctx.insert_file(&key, chrono::Utc::now() - chrono::Duration::hours(1))
        .await;
    ctx.enqueue("yesterday", "now", None, false).await;
    let mut args = ctx.worker_args();
    args.analysis.outputs = "segments.json,scores.bin".into();
    let worker = ctx.spawn_worker(args).await;
    let collector = ctx.spawn_collector();
    ctx.wait_files("done", |rows| rows.iter().all(|r| r.status == "done"))
        .await;
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");
    let junk = format!("{}junk/scores.bin", ctx.results_prefix);
    ctx.put(&junk, b"VFSCORES\x02\x00\x00\x00{}".to_vec()).await;

    let new = ["--min-silence", "0.6s", "--pad-start", "0.12s"];
    let out = ctx
        .command("worker")
        .args(["resegment", "--out"])
        .arg(format!("s3://{BUCKET}/{}v2/", ctx.prefix))
        .arg(format!("s3://{BUCKET}/{}", ctx.results_prefix))
        .args(new)
        .output()
        .await
        .expect("worker resegment");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("tracks=2 done=1 failed=1"), "{stdout}");
    assert!(stderr.contains("junk/scores.bin"), "{stderr}");
    let reseg: serde_json::Value = serde_json::from_slice(
        &ctx.get(&format!("{}v2/{BUCKET}/{key}/segments.json", ctx.prefix))
            .await
            .expect("re-segmented segments.json in S3"),
    )
    .expect("json");

    // The full run with the same settings, locally.
    let root = std::env::temp_dir().join(format!("vadflow-reseg-s3-{}", ctx.id));
    std::fs::create_dir_all(root.join("in")).expect("mkdir");
    std::fs::write(root.join("in/talk.wav"), talk.wav()).expect("write");
    vad(&root.join("in"), &root.join("full"), &new);
    let full = doc(&root.join("full/talk.wav/segments.json"));
    assert_eq!(sorted(&reseg), sorted(&full));
    assert_eq!(reseg["parameters"], full["parameters"]);
    assert_eq!(reseg["source"]["uri"], format!("s3://{BUCKET}/{key}"));
    let _ = std::fs::remove_dir_all(root);
    ctx.cleanup().await;
}
