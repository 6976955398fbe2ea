//! ASR-ready chunks (`--chunk-max`): `chunks.jsonl` from local mode and from the distributed
//! worker, the same chunks through the same code; none over the maximum, every segment of
//! `manifest.jsonl` in exactly one chunk. The segments' scores agree between the two modes too.

use std::process::Command;
use std::time::Duration;
use vadflow_tests::audio::{SENTENCES, compose};
use vadflow_tests::{BUCKET, TestCtx, bin};

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// (offset, duration, segments) of each chunk, after checking them against the segments.
fn spans(chunks: &[serde_json::Value], manifest: &[serde_json::Value]) -> Vec<(f64, f64, u64)> {
    let chunks: Vec<(f64, f64, u64)> = chunks
        .iter()
        .map(|c| {
            (
                c["offset"].as_f64().expect("offset"),
                c["duration"].as_f64().expect("duration"),
                c["segments"].as_u64().expect("segments"),
            )
        })
        .collect();
    let mut held = 0;
    for (_, duration, n) in &chunks {
        assert!(*duration <= 6.0 + 1e-9, "a chunk over 6 s: {chunks:?}");
        held += n;
    }
    assert_eq!(held as usize, manifest.len(), "every segment in one chunk");
    for seg in manifest {
        let (s, d) = (
            seg["offset"].as_f64().expect("offset"),
            seg["duration"].as_f64().expect("duration"),
        );
        let homes = chunks
            .iter()
            .filter(|(o, cd, _)| *o <= s + 1e-9 && s + d <= o + cd + 1e-9)
            .count();
        assert_eq!(homes, 1, "segment at {s} is in {homes} chunks: {chunks:?}");
    }
    chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunks_fit_and_hold_every_segment_in_both_modes() {
    let ctx = TestCtx::new("chunks").await;
    let speech = compose(&SENTENCES[0..6], &[0.4, 0.3, 1.2, 0.25, 0.9, 0.35, 0.5]);
    assert!(speech.duration() > 12.0, "long enough for several chunks");

    // Local mode.
    let root = std::env::temp_dir().join(format!("vadflow-chunks-{}", ctx.id));
    let (input, out) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("talk.wav"), speech.wav()).expect("write");
    let status = Command::new(bin("worker"))
        .args(["vad", "--no-progress", "--chunk-max", "6s", "--out"])
        .arg(&out)
        .arg(&input)
        .status()
        .expect("worker vad");
    assert!(status.success());
    let local_chunks = lines(&std::fs::read(out.join("talk.wav/chunks.jsonl")).expect("chunks"));
    let local_manifest =
        lines(&std::fs::read(out.join("talk.wav/manifest.jsonl")).expect("manifest"));
    let local = spans(&local_chunks, &local_manifest);
    assert!(local.len() >= 3, "{local:?}");

    // The distributed worker, from S3, with the same setting.
    let key = format!("{}talk.wav", ctx.prefix);
    ctx.put(&key, speech.wav()).await;
    ctx.insert_file(&key, chrono::Utc::now() - chrono::Duration::hours(1))
        .await;
    ctx.enqueue("yesterday", "now", None, false).await;
    let mut args = ctx.worker_args();
    args.analysis.segmentation.chunk_max = Some(Duration::from_secs(6));
    let worker = ctx.spawn_worker(args).await;
    let collector = ctx.spawn_collector();
    ctx.wait_files("the file done", |rows| {
        rows.iter().all(|r| r.status == "done")
    })
    .await;
    let prefix = format!("{}{BUCKET}/{key}/", ctx.results_prefix);
    let chunks = lines(
        &ctx.get(&format!("{prefix}chunks.jsonl"))
            .await
            .expect("chunks"),
    );
    let manifest = lines(
        &ctx.get(&format!("{prefix}manifest.jsonl"))
            .await
            .expect("manifest"),
    );
    assert_eq!(
        spans(&chunks, &manifest),
        local,
        "the same chunks in both modes"
    );
    assert_eq!(
        chunks[0]["audio_filepath"].as_str(),
        Some(format!("s3://{BUCKET}/{key}").as_str())
    );
    // The segments' scores come out of the worker as out of local mode: the same code.
    let doc = |bytes: &[u8]| -> serde_json::Value { serde_json::from_slice(bytes).expect("json") };
    let remote = doc(&ctx
        .get(&format!("{prefix}segments.json"))
        .await
        .expect("segments.json"));
    let local_doc = doc(&std::fs::read(out.join("talk.wav/segments.json")).expect("segments.json"));
    assert!(remote["levels"]["snr_db"].is_number(), "{remote}");
    assert_eq!(remote["levels"], local_doc["levels"]);
    assert_eq!(remote["segments"], local_doc["segments"]);
    worker.stop().await.expect("worker stops");
    collector.stop().await.expect("collector stops");

    // A bad setting is refused at start, naming it.
    let out2 = Command::new(bin("worker"))
        .args(["vad", "--chunk-max", "30s", "--chunk-min", "40s", "--out"])
        .arg(root.join("out2"))
        .arg(&input)
        .output()
        .expect("worker vad");
    assert!(!out2.status.success());
    assert!(
        String::from_utf8_lossy(&out2.stderr).contains("--chunk-min"),
        "{}",
        String::from_utf8_lossy(&out2.stderr)
    );
    let _ = std::fs::remove_dir_all(root);
    ctx.cleanup().await;
}
